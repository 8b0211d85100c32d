#include "kernels/bf16.h"

#include <immintrin.h>

#include <algorithm>

namespace t6 {

void to_bf16_serial(uint16_t* dst, const float* src, size_t n) {
    size_t i = 0;
#if defined(__AVX512BF16__)
    for (; i + 16 <= n; i += 16) {
        const __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                            reinterpret_cast<const __m256i&>(v));
    }
#endif
    for (; i < n; i++) dst[i] = float_to_bf16(src[i]);
}

void to_bf16(uint16_t* dst, const float* src, size_t n) {
    constexpr size_t kChunk = 1 << 14;
    const long chunks = long((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (long c = 0; c < chunks; c++) {
        const size_t i0 = size_t(c) * kChunk;
        to_bf16_serial(dst + i0, src + i0, std::min(kChunk, n - i0));
    }
}

}  // namespace t6
