// Double-precision attention reference shared by the decoding-kernel tests (test_simd_decode,
// test_q8_cache): the softmax of one head's scores applied to its values, written plainly.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

namespace t6::test {

// o (Dv) = softmax(s) . value(j, d) in double, for one head: scores s[j] (already scaled),
// value(j, d) the value of cached token j at dimension d.
template <typename ValueFn>
void softmax_apply(const std::vector<double>& s, int Dv, ValueFn value, float* o) {
    double mx = -1e300, sum = 0;
    for (double x : s) mx = std::max(mx, x);
    std::vector<double> p(s.size());
    for (size_t j = 0; j < s.size(); j++) sum += (p[j] = std::exp(s[j] - mx));
    for (int d = 0; d < Dv; d++) {
        double acc = 0;
        for (size_t j = 0; j < s.size(); j++) acc += p[j] / sum * value(int(j), d);
        o[d] = float(acc);
    }
}

}  // namespace t6::test
