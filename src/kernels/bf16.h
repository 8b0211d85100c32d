// bfloat16 storage: the upper 16 bits of a float32, rounded to nearest, ties to even. Used by the
// bf16 KV cache, bf16 decoding weights and the bf16 matmul precision.
#pragma once
#include <cstddef>
#include <cstdint>

namespace t6 {

inline uint16_t float_to_bf16(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}

inline float bf16_to_float(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}

// dst[i] = float_to_bf16(src[i]) for n values: vectorised (AVX-512 BF16 where built for it) and
// spread over the OpenMP threads when n is large.
void to_bf16(uint16_t* dst, const float* src, size_t n);

// The same on the calling thread only.
void to_bf16_serial(uint16_t* dst, const float* src, size_t n);

}  // namespace t6
