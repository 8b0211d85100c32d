// Few-row linear layers (the decoding GEMV): out[n,o] = beta * out[n,o] + sum_c inp[n,c] W[o,c],
// W float32 or bf16 (widened exactly to float32: bits << 16), float32 accumulation.
//
// Written once against Google Highway and compiled per target (foreach_target.h); the best target
// allowed by simd_target() runs (HWY_DYNAMIC_DISPATCH). Each target tiles MR input rows by OR
// weight rows in MR*OR vector accumulators (16 on AVX-512's 32 registers, 8 on AVX2's 16): every
// weight vector is loaded (and widened) once and used for all MR rows, so the weights stream
// through once per MR rows at memory speed. The accumulators are reduced four at a time by a
// transpose-and-add (Sum4) into one 128-bit vector of four dot products; the C % Lanes tail
// columns are added in scalar code. While a tile streams its rows it prefetches the next tile's
// (one line per 64 bytes read): with only 2-4 rows in flight (N >= 3) the hardware prefetchers
// alone leave the weights latency-bound. HWY_SCALAR runs the plain scalar loop: the reference.
// Work is split over OpenMP threads in groups of 64 outputs.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/bf16.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/linear_bf16.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kGroup = 64;  // outputs per parallel work item (a multiple of every OR below)

inline float WeightValue(float w) {
    return w;
}
inline float WeightValue(uint16_t w) {
    return bf16_to_float(w);
}

// Rows [0, N) x outputs [o0, o1), one dot product at a time: the scalar reference.
template <typename WT>
void ScalarRows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta, int o0,
                int o1) {
    for (int n = 0; n < N; n++)
        for (int o = o0; o < o1; o++) {
            const WT* w = W + size_t(o) * C;
            const float* x = inp + size_t(n) * C;
            float s = 0.0f;
            for (int c = 0; c < C; c++) s += x[c] * WeightValue(w[c]);
            float& y = out[size_t(n) * OC + o];
            y = (beta != 0.0f ? beta * y : 0.0f) + s;
        }
}

#if HWY_TARGET != HWY_SCALAR
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// One vector of weights from p on, as float32.
HWY_INLINE VF LoadW(DF d, const float* HWY_RESTRICT p) {
    return hn::LoadU(d, p);
}
HWY_INLINE VF LoadW(DF d, const uint16_t* HWY_RESTRICT p) {
    const hn::Rebind<uint16_t, DF> d16;
    const hn::RebindToUnsigned<DF> du;
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, p))));
}

// The lane sums of each 128-bit block added together.
HWY_INLINE hn::Vec128<float> SumBlocks(hn::Vec128<float> v) {
    return v;
}
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
HWY_INLINE hn::Vec128<float> SumBlocks(hn::Vec256<float> v) {
    const hn::Full128<float> d4;
    return hn::Add(hn::LowerHalf(d4, v), hn::UpperHalf(d4, v));
}
#endif
#if HWY_TARGET == HWY_AVX3
HWY_INLINE hn::Vec128<float> SumBlocks(hn::Vec512<float> v) {
    const hn::Full256<float> d8;
    return SumBlocks(hn::Add(hn::LowerHalf(d8, v), hn::UpperHalf(d8, v)));
}
#endif

// [sum a, sum b, sum c, sum d]: interleave-and-add within 128-bit blocks (32-bit, then 64-bit
// lanes), then the blocks added together.
HWY_INLINE hn::Vec128<float> Sum4(VF a, VF b, VF c, VF d) {
    const DF df;
    const hn::Repartition<uint64_t, DF> d64;
    // Per block: [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d.
    const VF ab = hn::Add(hn::InterleaveLower(df, a, b), hn::InterleaveUpper(df, a, b));
    const VF cd = hn::Add(hn::InterleaveLower(df, c, d), hn::InterleaveUpper(df, c, d));
    const auto ab64 = hn::BitCast(d64, ab), cd64 = hn::BitCast(d64, cd);
    // Per block: [a, b, c, d] partial sums.
    const VF s = hn::Add(hn::BitCast(df, hn::InterleaveLower(d64, ab64, cd64)),
                         hn::BitCast(df, hn::InterleaveUpper(d64, ab64, cd64)));
    return SumBlocks(s);
}

// MR input rows by OR weight rows: the MR*OR dot products of length C into r[OR * m + k].
template <int MR, int OR, typename WT>
HWY_INLINE void Tile(const float* const* x, const WT* const* w, const WT* const* next, int C,
                     float* HWY_RESTRICT r) {
    constexpr int kAcc = MR * OR;
    static_assert(kAcc % 4 == 0, "accumulators are reduced four at a time");
    const DF d;
    const int L = int(hn::Lanes(d));
    const int Cv = C - C % L;
    VF a[kAcc];
    for (int i = 0; i < kAcc; i++) a[i] = hn::Zero(d);
    for (int c = 0; c < Cv; c += L) {
        VF xv[MR];
        for (int m = 0; m < MR; m++) xv[m] = hn::LoadU(d, x[m] + c);
        // One cache line of the next tile's rows per 64 bytes of this one's.
        if (next != nullptr && (c * sizeof(WT)) % 64 == 0)
            for (int k = 0; k < OR; k++) __builtin_prefetch(next[k] + c);
        for (int k = 0; k < OR; k++) {
            const VF wv = LoadW(d, w[k] + c);
            for (int m = 0; m < MR; m++) a[OR * m + k] = hn::MulAdd(xv[m], wv, a[OR * m + k]);
        }
    }
    const hn::Full128<float> d4;
    for (int i = 0; i < kAcc; i += 4)
        hn::StoreU(Sum4(a[i], a[i + 1], a[i + 2], a[i + 3]), d4, r + i);
    for (int c = Cv; c < C; c++)
        for (int m = 0; m < MR; m++)
            for (int k = 0; k < OR; k++) r[OR * m + k] += x[m][c] * WeightValue(w[k][c]);
}

template <int MR, int OR, typename WT>
void TiledRows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta, int o0,
               int o1) {
    for (int o = o0; o < o1; o += OR) {
        // Rows past the end repeat the last one (computed, not stored).
        const WT* w[OR];
        for (int k = 0; k < OR; k++) w[k] = W + size_t(std::min(o + k, OC - 1)) * C;
        const WT* next[OR];
        for (int k = 0; k < OR; k++) next[k] = W + size_t(std::min(o + OR + k, OC - 1)) * C;
        for (int n0 = 0; n0 < N; n0 += MR) {
            const float* x[MR];
            for (int m = 0; m < MR; m++) x[m] = inp + size_t(std::min(n0 + m, N - 1)) * C;
            float r[MR * OR];
            Tile<MR, OR>(x, w, n0 == 0 && o + OR < o1 ? next : nullptr, C, r);
            for (int m = 0; m < MR && n0 + m < N; m++)
                for (int k = 0; k < OR && o + k < o1; k++) {
                    float& y = out[size_t(n0 + m) * OC + o + k];
                    y = (beta != 0.0f ? beta * y : 0.0f) + r[OR * m + k];
                }
        }
    }
}
#endif  // HWY_TARGET != HWY_SCALAR

template <typename WT>
void GroupRows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta, int o0,
               int o1) {
#if HWY_TARGET == HWY_SCALAR
    ScalarRows(out, inp, W, N, C, OC, beta, o0, o1);
#else
    // Accumulators: 16 of AVX-512's 32 registers, 8 of AVX2's 16 (plus MR inputs and a weight).
    constexpr int kAcc = hn::MaxLanes(DF()) >= 16 ? 16 : 8;
    if (N == 1)
        TiledRows<1, kAcc>(out, inp, W, N, C, OC, beta, o0, o1);
    else if (N == 2)
        TiledRows<2, kAcc / 2>(out, inp, W, N, C, OC, beta, o0, o1);
    else
        TiledRows<4, kAcc / 4>(out, inp, W, N, C, OC, beta, o0, o1);
#endif
}

template <typename WT>
void FewRows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta) {
    if (N <= 0 || OC <= 0) return;
    const int groups = (OC + kGroup - 1) / kGroup;
#pragma omp parallel for schedule(dynamic, 2)
    for (int g = 0; g < groups; g++) {
        const int o0 = g * kGroup, o1 = std::min(OC, o0 + kGroup);
        GroupRows(out, inp, W, N, C, OC, beta, o0, o1);
    }
}

}  // namespace

void LinearBf16(float* out, const float* inp, const uint16_t* W, int N, int C, int OC, float beta) {
    FewRows(out, inp, W, N, C, OC, beta);
}
void LinearF32FewRows(float* out, const float* inp, const float* W, int N, int C, int OC,
                      float beta) {
    FewRows(out, inp, W, N, C, OC, beta);
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/linear_bf16.h"

namespace t6 {

HWY_EXPORT(LinearBf16);
HWY_EXPORT(LinearF32FewRows);

void linear_bf16(float* out, const float* inp, const uint16_t* W, int N, int C, int OC,
                 float beta) {
    HWY_DYNAMIC_DISPATCH(LinearBf16)(out, inp, W, N, C, OC, beta);
}

void linear_f32_few_rows(float* out, const float* inp, const float* W, int N, int C, int OC,
                         float beta) {
    HWY_DYNAMIC_DISPATCH(LinearF32FewRows)(out, inp, W, N, C, OC, beta);
}

}  // namespace t6
#endif  // HWY_ONCE
