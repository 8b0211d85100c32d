// Wall-clock timing helpers shared by the trainer, the benchmarks and the study.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

namespace t6 {

// Seconds of steady (monotonic) clock since t0.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median of timings (mean of the middle two for an even count); v must not be empty.
inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace t6
