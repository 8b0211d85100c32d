// Scalar row helpers for code outside the Highway kernels (e.g. src/infer's MLA prefill). The
// vectorised, run-time dispatched versions are in kernels/vec_math-inl.h.
#pragma once
#include <cmath>

namespace t6::detail {

// p[j] = exp(p[j] - m) for j < n; returns the float sum of the results.
inline float exp_shift_sum(float* p, int n, float m) {
    float s = 0.0f;
    for (int j = 0; j < n; j++) {
        p[j] = std::exp(p[j] - m);
        s += p[j];
    }
    return s;
}

// max of p[0..n), n >= 1.
inline float row_max(const float* p, int n) {
    float m = p[0];
    for (int j = 1; j < n; j++) m = p[j] > m ? p[j] : m;
    return m;
}

// sum_i a[i] b[i], and y[i] += a x[i], for i < n.
[[gnu::always_inline]] inline float dot(const float* a, const float* b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
[[gnu::always_inline]] inline void axpy(float* y, float a, const float* x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

}  // namespace t6::detail

namespace t6 {

// y[j] = exp(x[j]) by the vector exp of the decoding softmax (vec_math-inl.h ExpSoftmax: for
// x <= 88; below -87 it gives 0) at the SIMD target in force; defined with FlashTPA
// (flash_tpa_decode.cpp), for tests.
void exp_softmax(float* y, const float* x, int n);

}  // namespace t6
