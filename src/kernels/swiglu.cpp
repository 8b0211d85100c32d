#include "kernels/swiglu.h"

#include <cmath>

#include "kernels/vec_math.h"

namespace t6 {

// silu(a) * b with silu(z) = z * sigmoid(z); d silu/dz = sig * (1 + z * (1 - sig)).
namespace {

inline float sigmoid(float z) {
    return 1.0f / (1.0f + std::exp(-z));
}

constexpr size_t kChunk = 4096;  // elements per OpenMP work item

void forward_range(float* out, const float* a, const float* b, size_t i0, size_t i1) {
    size_t i = i0;
#ifdef __AVX512F__
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= i1; i += 16) {
        const __m512 z = _mm512_loadu_ps(a + i);
        const __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, detail::exp512(-z)));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(z, sig), _mm512_loadu_ps(b + i)));
    }
#endif
    for (; i < i1; i++) out[i] = a[i] * sigmoid(a[i]) * b[i];
}

void backward_range(float* da, float* db, const float* dout, const float* a, const float* b,
                    size_t i0, size_t i1) {
    size_t i = i0;
#ifdef __AVX512F__
    const __m512 one = _mm512_set1_ps(1.0f);
    for (; i + 16 <= i1; i += 16) {
        const __m512 z = _mm512_loadu_ps(a + i);
        const __m512 g = _mm512_loadu_ps(dout + i);
        const __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, detail::exp512(-z)));
        const __m512 dsilu = _mm512_mul_ps(sig, _mm512_fmadd_ps(z, _mm512_sub_ps(one, sig), one));
        _mm512_storeu_ps(db + i, _mm512_mul_ps(g, _mm512_mul_ps(z, sig)));
        _mm512_storeu_ps(da + i, _mm512_mul_ps(_mm512_mul_ps(g, _mm512_loadu_ps(b + i)), dsilu));
    }
#endif
    for (; i < i1; i++) {
        const float z = a[i], sig = sigmoid(z), g = dout[i];
        db[i] = g * z * sig;
        da[i] = g * b[i] * (sig * (1.0f + z * (1.0f - sig)));
    }
}

}  // namespace

void swiglu_forward(float* out, const float* a, const float* b, size_t n) {
    const long nchunks = long((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < nchunks; c++) {
        const size_t i0 = size_t(c) * kChunk;
        forward_range(out, a, b, i0, i0 + kChunk < n ? i0 + kChunk : n);
    }
}

void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                     size_t n) {
    const long nchunks = long((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < nchunks; c++) {
        const size_t i0 = size_t(c) * kChunk;
        backward_range(da, db, dout, a, b, i0, i0 + kChunk < n ? i0 + kChunk : n);
    }
}

}  // namespace t6
