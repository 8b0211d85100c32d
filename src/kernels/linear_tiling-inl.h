// The register tiling of the few-row linear layers (the decoding GEMV), written once over a
// weight source: out[n,o] = beta * out[n,o] + sum_c inp[n,c] w[o,c], float32 inputs, outputs and
// accumulation, the weights produced in registers by the source (float32 loads, bf16 widened,
// q8 / q4 codes dequantized). Used by linear_bf16.cpp (f32, bf16) and quant_linear.cpp (q8, q4);
// int8_linear.cpp reuses Sum4. Include from a file compiled with hwy/foreach_target.h, after
// hwy/highway.h (Highway's "-inl.h" convention: the guard re-includes it once per target).
// Everything is in t6::HWY_NAMESPACE::tiling.
//
// Each target tiles MR input rows by OR weight rows in MR*OR vector accumulators (16 on AVX-512's
// 32 registers, 8 on AVX2's 16; 8 on AVX-512 too for one input row over widened weights, see
// GroupRows): every weight vector is loaded (and widened) once and used for all
// MR rows, so the weights stream through once per MR rows at memory speed. The accumulators are
// reduced four at a time by a transpose-and-add (Sum4) into one 128-bit vector of four dot
// products. Columns are walked in steps of Src::Step(L) (a multiple of the L lanes: L for dense
// weights, a 32-weight block for quantized ones); the C % Step tail columns are added in scalar
// code (Src::At). At the start of each step the source may prefetch the next tile's rows
// (Src::Prefetch): with only 2-4 rows in flight (N >= 3) the hardware prefetchers alone leave the
// weights latency-bound. HWY_SCALAR runs the plain scalar loop (ScalarRows): the reference.
//
// A source Src has: a Row type (one weight row's storage) and
//   Row RowAt(int o) const             row o
//   static int Step(int L)             columns per step (a multiple of L)
//   static float At(const Row&, int c) the weight at column c (scalar)
//   static VF Load(DF, const Row&, int c)      L weights from column c on (c a multiple of L)
//   void Prefetch(const Row&, int c) const    at the start of each step of the current tile (may
//                                             be static)
#if defined(T6_KERNELS_LINEAR_TILING_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef T6_KERNELS_LINEAR_TILING_INL_H_
#undef T6_KERNELS_LINEAR_TILING_INL_H_
#else
#define T6_KERNELS_LINEAR_TILING_INL_H_
#endif

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE::tiling {
namespace hn = hwy::HWY_NAMESPACE;

// Rows [0, N) x outputs [o0, o1), one dot product at a time: the scalar reference.
template <class Src>
void ScalarRows(const Src& src, float* out, const float* inp, int N, int C, int OC, float beta,
                int o0, int o1) {
    for (int o = o0; o < o1; o++) {
        const typename Src::Row w = src.RowAt(o);
        for (int n = 0; n < N; n++) {
            const float* x = inp + size_t(n) * C;
            float s = 0.0f;
            for (int c = 0; c < C; c++) s += x[c] * Src::At(w, c);
            float& y = out[size_t(n) * OC + o];
            y = (beta != 0.0f ? beta * y : 0.0f) + s;
        }
    }
}

#if HWY_TARGET != HWY_SCALAR
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

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
template <int MR, int OR, class Src>
HWY_INLINE void Tile(const Src& src, const float* const* x, const typename Src::Row* w,
                     const typename Src::Row* next, int C, float* HWY_RESTRICT r) {
    constexpr int kAcc = MR * OR;
    static_assert(kAcc % 4 == 0, "accumulators are reduced four at a time");
    const DF d;
    const int L = int(hn::Lanes(d));
    const int S = Src::Step(L);
    const int Cv = C - C % S;
    VF a[kAcc];
    for (int i = 0; i < kAcc; i++) a[i] = hn::Zero(d);
    for (int c0 = 0; c0 < Cv; c0 += S) {
        if (next != nullptr)
            for (int k = 0; k < OR; k++) src.Prefetch(next[k], c0);
        for (int c = c0; c < c0 + S; c += L) {
            VF xv[MR];
            for (int m = 0; m < MR; m++) xv[m] = hn::LoadU(d, x[m] + c);
            for (int k = 0; k < OR; k++) {
                const VF wv = Src::Load(d, w[k], c);
                for (int m = 0; m < MR; m++) a[OR * m + k] = hn::MulAdd(xv[m], wv, a[OR * m + k]);
            }
        }
    }
    const hn::Full128<float> d4;
    for (int i = 0; i < kAcc; i += 4)
        hn::StoreU(Sum4(a[i], a[i + 1], a[i + 2], a[i + 3]), d4, r + i);
    for (int c = Cv; c < C; c++)
        for (int k = 0; k < OR; k++) {
            const float wv = Src::At(w[k], c);
            for (int m = 0; m < MR; m++) r[OR * m + k] += x[m][c] * wv;
        }
}

// Outputs [o0, o1) for all N rows, OR weight rows by MR input rows at a time, each tile computed
// by tile(x, w, next, C, r) (Tile above, or a source's own: quant_linear.cpp's one-row q8 / q4
// tile) into r[OR * m + k].
template <int MR, int OR, class Src, class TileFn>
HWY_INLINE void TiledRowsWith(const Src& src, float* out, const float* inp, int N, int C, int OC,
                              float beta, int o0, int o1, const TileFn& tile) {
    using Row = typename Src::Row;
    for (int o = o0; o < o1; o += OR) {
        // Rows past the end repeat the last one (computed, not stored).
        Row w[OR], next[OR];
        for (int k = 0; k < OR; k++) w[k] = src.RowAt(std::min(o + k, OC - 1));
        for (int k = 0; k < OR; k++) next[k] = src.RowAt(std::min(o + OR + k, OC - 1));
        for (int n0 = 0; n0 < N; n0 += MR) {
            const float* x[MR];
            for (int m = 0; m < MR; m++) x[m] = inp + size_t(std::min(n0 + m, N - 1)) * C;
            float r[MR * OR];
            tile(x, w, n0 == 0 && o + OR < o1 ? next : nullptr, C, r);
            for (int m = 0; m < MR && n0 + m < N; m++)
                for (int k = 0; k < OR && o + k < o1; k++) {
                    float& y = out[size_t(n0 + m) * OC + o + k];
                    y = (beta != 0.0f ? beta * y : 0.0f) + r[OR * m + k];
                }
        }
    }
}
template <int MR, int OR, class Src>
void TiledRows(const Src& src, float* out, const float* inp, int N, int C, int OC, float beta,
               int o0, int o1) {
    using Row = typename Src::Row;
    TiledRowsWith<MR, OR>(src, out, inp, N, C, OC, beta, o0, o1,
                          [&src](const float* const* x, const Row* w, const Row* next, int C_,
                                 float* r) HWY_ATTR { Tile<MR, OR, Src>(src, x, w, next, C_, r); });
}
#endif  // HWY_TARGET != HWY_SCALAR

// Outputs [o0, o1) for all N rows, on this target's tiling (or the scalar loop).
template <class Src>
void GroupRows(const Src& src, float* out, const float* inp, int N, int C, int OC, float beta,
               int o0, int o1) {
#if HWY_TARGET == HWY_SCALAR
    ScalarRows(src, out, inp, N, C, OC, beta, o0, o1);
#else
    // Accumulators: 16 of AVX-512's 32 registers, 8 of AVX2's 16 (plus MR inputs and a weight).
    constexpr int kAcc = hn::MaxLanes(DF()) >= 16 ? 16 : 8;
    // One input row over weights widened in registers (bf16, q8, q4: every source but float32
    // rows): 8 weight rows at a time on AVX-512 too. With 16, the rows' pointers (and q8/q4's
    // scale pointers) with the next tile's do not fit the general registers and are reloaded
    // from the stack at every vector (perf annotate). Measured on the Zen 4 machine (2026-12-02),
    // two threads, medians of alternating rounds (the host was noisy):
    // - 36 matrices 2048 x 768 and a 50304 x 768 lm_head, ms per pass: q4 (71 MB) 7.5-8.5 ->
    //   6.2-6.9 (faster in 6 of 6 rounds); q8 (107 MB) 8.4-12.6 -> 7.2-12.2, median 9.4 -> 8.9
    //   (10 of 15);
    // - `t6 bench decode --contexts 64` (weights alone): bf16, small-t6 / small-mha / small-gqa,
    //   14.8 / 15.5 / 16.6 -> 14.2 / 15.3 / 14.7 ms (12 of 15); q4, small-t6 and small-mha,
    //   10.5-12.7 -> 7.4-9.7 ms (4 rounds).
    //   float32 rows were no faster with 8 (25.1 / 22.6 / 21.8 -> 21.5 / 24.5 / 22.2 ms, 8 of 15)
    //   and keep 16.
    constexpr bool kWidened = !std::is_same_v<typename Src::Row, const float*>;
    constexpr int kRows1 = kWidened ? 8 : kAcc;
    if (N == 1)
        TiledRows<1, kRows1>(src, out, inp, N, C, OC, beta, o0, o1);
    else if (N == 2)
        TiledRows<2, kAcc / 2>(src, out, inp, N, C, OC, beta, o0, o1);
    else
        TiledRows<4, kAcc / 4>(src, out, inp, N, C, OC, beta, o0, o1);
#endif
}

}  // namespace t6::HWY_NAMESPACE::tiling
HWY_AFTER_NAMESPACE();

#endif  // T6_KERNELS_LINEAR_TILING_INL_H_ toggle
