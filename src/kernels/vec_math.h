// Internal SIMD helpers shared by the kernels (not part of the public kernel API).
// exp512: a vectorised float32 exp, |rel err| < 2 ulp on the range used here (Cody-Waite range
// reduction x = n*ln2 + r, |r| <= ln2/2, degree-6 Taylor/minimax-style polynomial for e^r, then
// scaling by 2^n with vscalefps, which also flushes very negative inputs (masked scores = -inf)
// cleanly to 0).
#pragma once
#include <cmath>

#ifdef __AVX512F__
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps() (a self-initialised variable),
// which trips -Wmaybe-uninitialized after inlining; the warning is location-based, so silence it
// for the header's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace t6::detail {

#ifdef __AVX512F__
// Lane k of the result is the sum of the 16 lanes of v[k].
inline __m512 hsum16(const __m512* v) {
    __m512 x[8], y[4];
    // x[k], per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] of a = v[2k], b = v[2k+1].
    for (int k = 0; k < 8; k++)
        x[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]),
                             _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
    // y[k], per 128-bit lane L: the sums over lane L of v[4k], ..., v[4k+3].
    for (int k = 0; k < 4; k++) {
        const __m512d a = _mm512_castps_pd(x[2 * k]), b = _mm512_castps_pd(x[2 * k + 1]);
        y[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    const __m512 z0 = _mm512_add_ps(_mm512_shuffle_f32x4(y[0], y[1], 0x88),
                                    _mm512_shuffle_f32x4(y[0], y[1], 0xdd));
    const __m512 z1 = _mm512_add_ps(_mm512_shuffle_f32x4(y[2], y[3], 0x88),
                                    _mm512_shuffle_f32x4(y[2], y[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(z0, z1, 0x88), _mm512_shuffle_f32x4(z0, z1, 0xdd));
}

inline __m512 exp512(__m512 x) {
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f);
    const __m512 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    // Clamp: below -104 the result underflows to 0 anyway; above 88.7 it overflows.
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.7228f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, ln2_hi, x);
    r = _mm512_fnmadd_ps(n, ln2_lo, r);
    // e^r for |r| <= 0.347: Cephes expf coefficients.
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 r2 = _mm512_mul_ps(r, r);
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}
#endif

// p[j] = exp(p[j] - m) for j < n; returns the float sum of the results.
inline float exp_shift_sum(float* p, int n, float m) {
#ifdef __AVX512F__
    const __m512 vm = _mm512_set1_ps(m);
    __m512 acc = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(p + j), vm));
        _mm512_storeu_ps(p + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (j < n) {
        __mmask16 mk = (__mmask16)((1u << (n - j)) - 1u);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, p + j), vm));
        _mm512_mask_storeu_ps(p + j, mk, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mk, e));
    }
    return _mm512_reduce_add_ps(acc);
#else
    float s = 0.0f;
    for (int j = 0; j < n; j++) {
        p[j] = std::exp(p[j] - m);
        s += p[j];
    }
    return s;
#endif
}

// max of p[0..n), n >= 1.
inline float row_max(const float* p, int n) {
#ifdef __AVX512F__
    __m512 acc = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 16 <= n; j += 16) acc = _mm512_max_ps(acc, _mm512_loadu_ps(p + j));
    if (j < n) {
        __mmask16 mk = (__mmask16)((1u << (n - j)) - 1u);
        acc = _mm512_mask_max_ps(acc, mk, acc, _mm512_maskz_loadu_ps(mk, p + j));
    }
    return _mm512_reduce_max_ps(acc);
#else
    float m = p[0];
    for (int j = 1; j < n; j++) m = p[j] > m ? p[j] : m;
    return m;
#endif
}

}  // namespace t6::detail
