// Array conversions float32 <-> bf16 (see bf16.h for the rounding), written once against Google
// Highway and compiled per SIMD target. Per vector of 32-bit lanes u (the float bits):
//   nan  = (u & 0x7fffffff) > 0x7f800000            (signed compare: both sides are >= 0)
//   bf16 = nan ? (u >> 16) | 0x40 : (u + 0x7fff + ((u >> 16) & 1)) >> 16
// then narrowed to 16 bits (DemoteTo from int32 saturates, and every value fits); the rounded
// float32 is bf16 << 16. Widening is PromoteTo u16 -> u32 and a shift left by 16. Tails shorter
// than a vector use the scalar functions. (AVX512-BF16's vcvtneps2bf16 is not used: it flushes
// denormal inputs to zero, which float_to_bf16 does not.)
#include <algorithm>

#include "kernels/bf16.h"

#include "core/parallel_items.h"
#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/bf16.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DU = hn::RebindToUnsigned<DF>;
using DI = hn::RebindToSigned<DF>;

// The float32 bits of src rounded to bf16, in the upper 16 bits (the lower 16 are zero).
HWY_INLINE hn::Vec<DU> RoundedBits(hn::Vec<DF> v) {
    const DU du;
    const DI di;
    auto u = hn::BitCast(du, v);
#if HWY_TARGET != HWY_SCALAR && HWY_ARCH_X86
    // Keeps u in a register: GCC otherwise folds the load into each of the four operations that
    // read u, and four 64-byte loads per vector halve the AVX-512 loop's speed.
    asm("" : "+v"(u.raw));
#endif
    const auto abs = hn::BitCast(di, hn::And(u, hn::Set(du, 0x7fffffffu)));
    const auto nan = hn::RebindMask(du, hn::Gt(abs, hn::Set(di, 0x7f800000)));
    const auto odd = hn::And(hn::ShiftRight<16>(u), hn::Set(du, 1u));
    const auto rounded = hn::Add(u, hn::Add(hn::Set(du, 0x7fffu), odd));
    const auto quiet = hn::Or(u, hn::Set(du, 0x400000u));
    return hn::And(hn::IfThenElse(nan, quiet, rounded), hn::Set(du, 0xffff0000u));
}

void ToBf16(uint16_t* HWY_RESTRICT dst, const float* HWY_RESTRICT src, size_t n) {
    const DF df;
    const DI di;
    const hn::Rebind<uint16_t, DF> d16;
    // HWY_SCALAR: the plain loop below (which the compiler vectorises for the SSE2 baseline).
    const size_t L = HWY_TARGET == HWY_SCALAR ? n + 1 : hn::Lanes(df);
    size_t i = 0;
    for (; i + L <= n; i += L) {
        const auto h = hn::BitCast(di, hn::ShiftRight<16>(RoundedBits(hn::LoadU(df, src + i))));
        hn::StoreU(hn::DemoteTo(d16, h), d16, dst + i);
    }
    for (; i < n; i++) dst[i] = float_to_bf16(src[i]);
}

void RoundToBf16(float* dst, const float* src, size_t n) {
    const DF df;
    const size_t L = HWY_TARGET == HWY_SCALAR ? n + 1 : hn::Lanes(df);
    size_t i = 0;
    for (; i + L <= n; i += L)
        hn::StoreU(hn::BitCast(df, RoundedBits(hn::LoadU(df, src + i))), df, dst + i);
    for (; i < n; i++) dst[i] = bf16_to_float(float_to_bf16(src[i]));
}

void Bf16ToFloat(float* HWY_RESTRICT dst, const uint16_t* HWY_RESTRICT src, size_t n) {
    const DF df;
    const DU du;
    const hn::Rebind<uint16_t, DF> d16;
    const size_t L = HWY_TARGET == HWY_SCALAR ? n + 1 : hn::Lanes(df);
    size_t i = 0;
    for (; i + L <= n; i += L)
        hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, src + i)))),
                   df, dst + i);
    for (; i < n; i++) dst[i] = bf16_to_float(src[i]);
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(ToBf16);
HWY_EXPORT(RoundToBf16);
HWY_EXPORT(Bf16ToFloat);

namespace {

// Runs f(i0, len) over chunks of n, on the OpenMP threads when there is more than one chunk
// (core/parallel_items.h: one chunk on the calling thread).
template <typename F>
void chunked(size_t n, F f) {
    constexpr size_t kChunk = 1 << 14;
    const long chunks = long((n + kChunk - 1) / kChunk);
    parallel_items(chunks, [&](long c) {
        const size_t i0 = size_t(c) * kChunk;
        f(i0, std::min(kChunk, n - i0));
    });
}

}  // namespace

void to_bf16_serial(uint16_t* dst, const float* src, size_t n) {
    HWY_DYNAMIC_DISPATCH(ToBf16)(dst, src, n);
}

void to_bf16(uint16_t* dst, const float* src, size_t n) {
    chunked(n, [&](size_t i0, size_t len) { to_bf16_serial(dst + i0, src + i0, len); });
}

void round_to_bf16_serial(float* dst, const float* src, size_t n) {
    HWY_DYNAMIC_DISPATCH(RoundToBf16)(dst, src, n);
}

void round_to_bf16(float* dst, const float* src, size_t n) {
    chunked(n, [&](size_t i0, size_t len) { round_to_bf16_serial(dst + i0, src + i0, len); });
}

void bf16_to_float_serial(float* dst, const uint16_t* src, size_t n) {
    HWY_DYNAMIC_DISPATCH(Bf16ToFloat)(dst, src, n);
}

}  // namespace t6
#endif  // HWY_ONCE
