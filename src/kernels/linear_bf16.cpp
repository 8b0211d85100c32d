#include "kernels/linear_bf16.h"

#include <algorithm>

#include "kernels/flash_decode.h"  // float_to_bf16, bf16_to_float
#include "kernels/vec_math.h"

namespace t6 {

namespace {

#ifdef __AVX512F__
inline __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// 16 weights from column c on, widened to float32 (masked past the row's end).
inline __m512 load_w(const uint16_t* w, __mmask16 mk) {
    return widen(_mm256_maskz_loadu_epi16(mk, w));
}
inline __m512 load_w(const float* w, __mmask16 mk) {
    return _mm512_maskz_loadu_ps(mk, w);
}

// MR input rows x[m] by 16/MR weight rows w[k]: 16 dot products of length C, accumulated 16
// lanes wide and reduced together; lane k + (16/MR) m of the result is x_m . w_k. Each weight
// vector is widened once and used for all MR rows.
template <int MR, typename WT>
inline __m512 dots(const float* const* x, const WT* const* w, int C) {
    constexpr int OR = 16 / MR;
    __m512 a[16];
    for (int i = 0; i < 16; i++) a[i] = _mm512_setzero_ps();
    for (int c = 0; c < C; c += 16) {
        const __mmask16 mk = C - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (C - c)) - 1);
        __m512 xv[MR];
        for (int m = 0; m < MR; m++) xv[m] = _mm512_maskz_loadu_ps(mk, x[m] + c);
        for (int k = 0; k < OR; k++) {
            const __m512 wv = load_w(w[k] + c, mk);
            for (int m = 0; m < MR; m++) a[OR * m + k] = _mm512_fmadd_ps(xv[m], wv, a[OR * m + k]);
        }
    }
    return detail::hsum16(a);
}

template <int MR, typename WT>
void linear_rows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta,
                 int o0, int o1) {
    constexpr int OR = 16 / MR;
    for (int o = o0; o < o1; o += OR) {
        const WT* w[OR];
        for (int k = 0; k < OR; k++) w[k] = W + size_t(std::min(o + k, OC - 1)) * C;
        for (int n0 = 0; n0 < N; n0 += MR) {
            const float* x[MR];
            for (int m = 0; m < MR; m++) x[m] = inp + size_t(std::min(n0 + m, N - 1)) * C;
            alignas(64) float r[16];
            _mm512_store_ps(r, dots<MR, WT>(x, w, C));
            for (int m = 0; m < MR && n0 + m < N; m++)
                for (int k = 0; k < OR && o + k < o1; k++) {
                    float& y = out[size_t(n0 + m) * OC + o + k];
                    y = (beta != 0.0f ? beta * y : 0.0f) + r[OR * m + k];
                }
        }
    }
}
#endif

inline float weight_value(float w) {
    return w;
}
inline float weight_value(uint16_t w) {
    return bf16_to_float(w);
}

template <typename WT>
void linear_few_rows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta) {
    if (N <= 0 || OC <= 0) return;
    constexpr int kGroup = 64;  // outputs per parallel work item
    const int groups = (OC + kGroup - 1) / kGroup;
#pragma omp parallel for schedule(dynamic, 2)
    for (int g = 0; g < groups; g++) {
        const int o0 = g * kGroup, o1 = std::min(OC, o0 + kGroup);
#ifdef __AVX512F__
        if (N == 1)
            linear_rows<1>(out, inp, W, N, C, OC, beta, o0, o1);
        else if (N == 2)
            linear_rows<2>(out, inp, W, N, C, OC, beta, o0, o1);
        else
            linear_rows<4>(out, inp, W, N, C, OC, beta, o0, o1);
#else
        for (int n = 0; n < N; n++)
            for (int o = o0; o < o1; o++) {
                const WT* w = W + size_t(o) * C;
                const float* x = inp + size_t(n) * C;
                float s = 0.0f;
                for (int c = 0; c < C; c++) s += x[c] * weight_value(w[c]);
                float& y = out[size_t(n) * OC + o];
                y = (beta != 0.0f ? beta * y : 0.0f) + s;
            }
#endif
    }
}

}  // namespace

void linear_bf16(float* out, const float* inp, const uint16_t* W, int N, int C, int OC,
                 float beta) {
    linear_few_rows(out, inp, W, N, C, OC, beta);
}

void linear_f32_few_rows(float* out, const float* inp, const float* W, int N, int C, int OC,
                         float beta) {
    linear_few_rows(out, inp, W, N, C, OC, beta);
}

}  // namespace t6
