// bfloat16 storage: the upper 16 bits of a float32, rounded to nearest, ties to even. Used by the
// bf16 KV cache, bf16 decoding weights and the bf16 matmul precision.
//
// float_to_bf16(x): NaN -> (bits >> 16) | 0x40 (stays a quiet NaN); otherwise
//   (bits + 0x7fff + ((bits >> 16) & 1)) >> 16, round to nearest even on the dropped 16 bits
//   (denormals rounded like any other value, overflow rounds to inf). bf16_to_float is exact.
// The array versions are vectorised with Google Highway per SIMD target (kernels/bf16.cpp) and
// give exactly the scalar functions' bits on every target.
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

// dst[i] = float_to_bf16(src[i]) for n values: vectorised for the SIMD target in force and spread
// over the OpenMP threads when n is large.
void to_bf16(uint16_t* dst, const float* src, size_t n);

// The same on the calling thread only.
void to_bf16_serial(uint16_t* dst, const float* src, size_t n);

// dst[i] = bf16_to_float(float_to_bf16(src[i])): float32 values rounded to bf16 precision
// (dst may equal src). Threaded like to_bf16; the _serial version runs on the calling thread.
void round_to_bf16(float* dst, const float* src, size_t n);
void round_to_bf16_serial(float* dst, const float* src, size_t n);

// dst[i] = bf16_to_float(src[i]), on the calling thread.
void bf16_to_float_serial(float* dst, const uint16_t* src, size_t n);

}  // namespace t6
