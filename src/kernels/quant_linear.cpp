// The quantized few-row linear layer (kernels/quant.h): out[n,o] = beta * out[n,o] +
// sum_c inp[n,c] w'[o,c], with w' the dequantized q8 / q4 weights, float32 arithmetic.
//
// Written once against Google Highway and compiled per target (foreach_target.h), dispatched at
// run time like linear_bf16.cpp, whose tiling it follows: MR input rows by OR weight rows in
// MR*OR vector accumulators (16 on AVX-512, 8 on AVX2). Per vector of L weights (L divides the
// block of 32) the codes are loaded (L bytes for q8, L nibbles of one half of a q4 block's 16
// bytes), widened to int32, converted to float32 and scaled (q8: q * d; q4: fma(q, d, m)), which
// gives exactly the dequantized weights w'; every such vector is then used for all MR input rows.
// Activations stay float32, so the result equals the float32 product with w' up to summation
// order (no activation quantization). Columns past the last whole block are added in scalar
// code. While a tile streams its codes it prefetches the next tile's. HWY_SCALAR runs the scalar
// loop. Work is split over OpenMP threads in groups of 64 outputs.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/quant.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/quant_linear.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kGroup = 64;  // outputs per parallel work item

// One weight row's storage.
struct Row {
    const uint8_t* codes;
    const float* scale;
    const float* min;  // q4 only
};

Row RowOf(const QuantMatrix& W, int o) {
    const size_t blk = size_t(o) * W.blocks_per_row();
    return {W.codes.data() + blk * W.code_bytes(), W.scale.data() + blk,
            W.min.size() ? W.min.data() + blk : nullptr};
}

// The dequantized weight at column c of a row (scalar; the tails and the reference).
template <QuantScheme S>
inline float WeightAt(const Row& r, int c) {
    const int b = c / kQuantBlock, j = c % kQuantBlock;
    if constexpr (S == QuantScheme::q8) {
        return float(int8_t(r.codes[size_t(b) * kQuantBlock + j])) * r.scale[b];
    } else {
        const uint8_t byte = r.codes[size_t(b) * (kQuantBlock / 2) + (j & 15)];
        return std::fma(float(j < 16 ? byte & 15 : byte >> 4), r.scale[b], r.min[b]);
    }
}

template <QuantScheme S>
void ScalarRows(float* out, const float* inp, const QuantMatrix& W, int N, float beta, int o0,
                int o1) {
    const int C = W.cols, OC = W.rows;
    for (int o = o0; o < o1; o++) {
        const Row r = RowOf(W, o);
        for (int n = 0; n < N; n++) {
            const float* x = inp + size_t(n) * C;
            float s = 0.0f;
            for (int c = 0; c < C; c++) s += x[c] * WeightAt<S>(r, c);
            float& y = out[size_t(n) * OC + o];
            y = (beta != 0.0f ? beta * y : 0.0f) + s;
        }
    }
}

#if HWY_TARGET != HWY_SCALAR
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
static_assert(hn::MaxLanes(DF()) <= kQuantBlock / 2, "a vector must fit in half a block");

// L dequantized weights of a row from column c on (c a multiple of L).
template <QuantScheme S>
HWY_INLINE VF LoadW(DF d, const Row& r, int c) {
    const int b = c / kQuantBlock, j = c % kQuantBlock;
    const hn::RebindToSigned<DF> di;
    if constexpr (S == QuantScheme::q8) {
        const hn::Rebind<int8_t, DF> d8;
        const auto q = hn::LoadU(d8, reinterpret_cast<const int8_t*>(r.codes) + c);
        return hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, q)), hn::Set(d, r.scale[b]));
    } else {
        const hn::Rebind<uint8_t, DF> d8;
        const hn::RebindToUnsigned<DF> du;
        auto q =
            hn::PromoteTo(du, hn::LoadU(d8, r.codes + size_t(b) * (kQuantBlock / 2) + (j & 15)));
        if (j >= 16) q = hn::ShiftRight<4>(q);
        q = hn::And(q, hn::Set(du, 15u));
        return hn::MulAdd(hn::ConvertTo(d, hn::BitCast(di, q)), hn::Set(d, r.scale[b]),
                          hn::Set(d, r.min[b]));
    }
}

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

// [sum a, sum b, sum c, sum d] (see linear_bf16.cpp).
HWY_INLINE hn::Vec128<float> Sum4(VF a, VF b, VF c, VF d) {
    const DF df;
    const hn::Repartition<uint64_t, DF> d64;
    const VF ab = hn::Add(hn::InterleaveLower(df, a, b), hn::InterleaveUpper(df, a, b));
    const VF cd = hn::Add(hn::InterleaveLower(df, c, d), hn::InterleaveUpper(df, c, d));
    const auto ab64 = hn::BitCast(d64, ab), cd64 = hn::BitCast(d64, cd);
    const VF s = hn::Add(hn::BitCast(df, hn::InterleaveLower(d64, ab64, cd64)),
                         hn::BitCast(df, hn::InterleaveUpper(d64, ab64, cd64)));
    return SumBlocks(s);
}

// MR input rows by OR weight rows: the MR*OR dot products of length C into r[OR * m + k].
template <QuantScheme S, int MR, int OR>
HWY_INLINE void Tile(const float* const* x, const Row* w, const Row* next, int C,
                     float* HWY_RESTRICT r) {
    constexpr int kAcc = MR * OR;
    static_assert(kAcc % 4 == 0, "accumulators are reduced four at a time");
    constexpr int kCodeBytes = S == QuantScheme::q8 ? kQuantBlock : kQuantBlock / 2;
    const DF d;
    const int L = int(hn::Lanes(d));
    const int Cb = C - C % kQuantBlock;  // whole blocks
    VF a[kAcc];
    for (int i = 0; i < kAcc; i++) a[i] = hn::Zero(d);
    for (int c0 = 0; c0 < Cb; c0 += kQuantBlock) {
        // The next tile's codes of this block (one line per row covers a q8 block twice over).
        if (next != nullptr)
            for (int k = 0; k < OR; k++)
                __builtin_prefetch(next[k].codes + size_t(c0 / kQuantBlock) * kCodeBytes);
        for (int c = c0; c < c0 + kQuantBlock; c += L) {
            VF xv[MR];
            for (int m = 0; m < MR; m++) xv[m] = hn::LoadU(d, x[m] + c);
            for (int k = 0; k < OR; k++) {
                const VF wv = LoadW<S>(d, w[k], c);
                for (int m = 0; m < MR; m++) a[OR * m + k] = hn::MulAdd(xv[m], wv, a[OR * m + k]);
            }
        }
    }
    const hn::Full128<float> d4;
    for (int i = 0; i < kAcc; i += 4)
        hn::StoreU(Sum4(a[i], a[i + 1], a[i + 2], a[i + 3]), d4, r + i);
    for (int c = Cb; c < C; c++)
        for (int k = 0; k < OR; k++) {
            const float wv = WeightAt<S>(w[k], c);
            for (int m = 0; m < MR; m++) r[OR * m + k] += x[m][c] * wv;
        }
}

template <QuantScheme S, int MR, int OR>
void TiledRows(float* out, const float* inp, const QuantMatrix& W, int N, float beta, int o0,
               int o1) {
    const int C = W.cols, OC = W.rows;
    for (int o = o0; o < o1; o += OR) {
        // Rows past the end repeat the last one (computed, not stored).
        Row w[OR], next[OR];
        for (int k = 0; k < OR; k++) w[k] = RowOf(W, std::min(o + k, OC - 1));
        for (int k = 0; k < OR; k++) next[k] = RowOf(W, std::min(o + OR + k, OC - 1));
        for (int n0 = 0; n0 < N; n0 += MR) {
            const float* x[MR];
            for (int m = 0; m < MR; m++) x[m] = inp + size_t(std::min(n0 + m, N - 1)) * C;
            float r[MR * OR];
            Tile<S, MR, OR>(x, w, n0 == 0 && o + OR < o1 ? next : nullptr, C, r);
            for (int m = 0; m < MR && n0 + m < N; m++)
                for (int k = 0; k < OR && o + k < o1; k++) {
                    float& y = out[size_t(n0 + m) * OC + o + k];
                    y = (beta != 0.0f ? beta * y : 0.0f) + r[OR * m + k];
                }
        }
    }
}
#endif  // HWY_TARGET != HWY_SCALAR

template <QuantScheme S>
void GroupRows(float* out, const float* inp, const QuantMatrix& W, int N, float beta, int o0,
               int o1) {
#if HWY_TARGET == HWY_SCALAR
    ScalarRows<S>(out, inp, W, N, beta, o0, o1);
#else
    constexpr int kAcc = hn::MaxLanes(DF()) >= 16 ? 16 : 8;
    if (N == 1)
        TiledRows<S, 1, kAcc>(out, inp, W, N, beta, o0, o1);
    else if (N == 2)
        TiledRows<S, 2, kAcc / 2>(out, inp, W, N, beta, o0, o1);
    else
        TiledRows<S, 4, kAcc / 4>(out, inp, W, N, beta, o0, o1);
#endif
}

}  // namespace

void LinearQuantFewRows(float* out, const float* inp, const QuantMatrix& W, int N, float beta) {
    if (N <= 0 || W.rows <= 0) return;
    const int groups = (W.rows + kGroup - 1) / kGroup;
    // Small matrices (tests, tiny models) on one thread: a parallel region costs more.
#pragma omp parallel for schedule(dynamic, 2) if (size_t(W.rows) * W.cols >= (size_t(1) << 16))
    for (int g = 0; g < groups; g++) {
        const int o0 = g * kGroup, o1 = std::min(W.rows, o0 + kGroup);
        if (W.scheme == QuantScheme::q8)
            GroupRows<QuantScheme::q8>(out, inp, W, N, beta, o0, o1);
        else
            GroupRows<QuantScheme::q4>(out, inp, W, N, beta, o0, o1);
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(LinearQuantFewRows);

void linear_quant_few_rows(float* out, const float* inp, const QuantMatrix& W, int N, float beta) {
    HWY_DYNAMIC_DISPATCH(LinearQuantFewRows)(out, inp, W, N, beta);
}

}  // namespace t6
#endif  // HWY_ONCE
