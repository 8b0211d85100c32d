// q8 / q4 weights x int8 activations (kernels/int8_linear.h): activation quantization, the
// scalar reference, and the Highway kernel.
//
// The kernel is written once against Google Highway and compiled per target (foreach_target.h),
// dispatched at run time (HWY_DYNAMIC_DISPATCH). It tiles MR activation rows by OR weight rows
// like linear_tiling-inl.h, but walks whole blocks of 32: per block the activation codes of the MR
// rows are widened to int16 once; for each of the OR weight rows the 32 weight codes are widened
// to int16 (q8: sign-extended bytes; q4: the nibbles masked and shifted) and multiplied pairwise
// into int32 lanes (ReorderWidenMulAccumulate: vpmaddwd on AVX2 and AVX-512, 16 resp. 32 codes
// per instruction), then the block's int32 partial sums are converted to float32 and
// multiply-added with the block's scale product dw * dx into the float32 accumulators (one per
// row pair). q4's minimum adds m * dx * sum_j qx per block (the activation code sum is formed
// once per row and block, added in scalar code). Accumulators: MR*OR = 16 on AVX-512, 8 on AVX2,
// reduced four at a time by tiling::Sum4. The activation codes are zero past `cols`, so the last
// (partial) block needs no scalar tail. The next tile's weight codes are prefetched block by
// block. HWY_SCALAR runs the reference loop. Work is split over OpenMP threads in groups of 64
// outputs.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/int8_linear.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/int8_linear.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/linear_tiling-inl.h"

// Defined on the first of the per-target passes (foreach_target.h re-includes this file).
#ifndef T6_KERNELS_INT8_LINEAR_SCALAR_
#define T6_KERNELS_INT8_LINEAR_SCALAR_
namespace t6 {
namespace int8_detail {

// Rows [0, X.rows) x outputs [o0, o1), block by block in scalar code: the reference.
// q8: y += dw dx sum_j qw qx;  q4 (w = q dw + m): y += dw dx sum_j qw qx + m dx sum_j qx.
inline void ScalarRows(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta, int o0,
                       int o1) {
    const int nb = W.blocks_per_row(), cb = W.code_bytes();
    const bool q4 = W.scheme == QuantScheme::q4;
    for (int o = o0; o < o1; o++) {
        const uint8_t* wq = W.codes.data() + size_t(o) * nb * cb;
        const float* wd = W.scale.data() + size_t(o) * nb;
        for (int n = 0; n < X.rows; n++) {
            const int8_t* xq =
                reinterpret_cast<const int8_t*>(X.codes.data()) + size_t(n) * nb * kQuantBlock;
            const float* xd = X.scale.data() + size_t(n) * nb;
            float s = 0.0f;
            for (int b = 0; b < nb; b++) {
                int32_t is = 0, sx = 0;
                for (int j = 0; j < kQuantBlock; j++) {
                    const int32_t x = xq[b * kQuantBlock + j];
                    int32_t w;
                    if (q4) {
                        const uint8_t byte = wq[size_t(b) * cb + (j & 15)];
                        w = j < 16 ? byte & 15 : byte >> 4;
                    } else {
                        w = int8_t(wq[size_t(b) * cb + j]);
                    }
                    is += w * x;
                    sx += x;
                }
                s += float(is) * (wd[b] * xd[b]);
                if (q4) s += W.min[size_t(o) * nb + b] * xd[b] * float(sx);
            }
            float& y = out[size_t(n) * W.rows + o];
            y = (beta != 0.0f ? beta * y : 0.0f) + s;
        }
    }
}

}  // namespace int8_detail
}  // namespace t6
#endif  // T6_KERNELS_INT8_LINEAR_SCALAR_

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kGroup = 64;  // outputs per parallel work item

#if HWY_TARGET != HWY_SCALAR
using D16 = hn::ScalableTag<int16_t>;
using D8 = hn::Rebind<int8_t, D16>;
using D32 = hn::Repartition<int32_t, D16>;
using DF = hn::Repartition<float, D16>;
using V16 = hn::Vec<D16>;
using V32 = hn::Vec<D32>;
using VF = hn::Vec<DF>;
static_assert(kQuantBlock % hn::MaxLanes(D16()) == 0, "int16 vectors must tile a block");

// One row of codes and scales (q8 / q4 weights or q8 activations).
struct Row {
    const uint8_t* q;
    const float* d;
    const float* m;  // q4 weights only
};
Row RowOf(const QuantMatrix& M, int r) {
    const size_t blk = size_t(r) * M.blocks_per_row();
    return {M.codes.data() + blk * M.code_bytes(), M.scale.data() + blk,
            M.min.size() ? M.min.data() + blk : nullptr};
}

// Codes [h L16, (h+1) L16) of a weight block as int16: q8 sign-extended; q4 from the nibbles
// (byte j holds code j low and code j + 16 high).
template <QuantScheme S>
HWY_INLINE V16 LoadCodes(const uint8_t* blk, int h) {
    const D16 d16;
    if constexpr (S == QuantScheme::q8) {
        const D8 d8;
        return hn::PromoteTo(
            d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(blk) + h * hn::Lanes(d16)));
    } else if constexpr (hn::MaxLanes(D16()) == kQuantBlock) {
        // One vector is the whole block: the 16 bytes' low nibbles, then their high ones.
        const hn::Half<D16> dh;
        const hn::Rebind<uint8_t, hn::Half<D16>> du8;
        const auto v = hn::BitCast(
            dh, hn::PromoteTo(hn::RebindToUnsigned<decltype(dh)>(), hn::LoadU(du8, blk)));
        const auto lo = hn::And(v, hn::Set(dh, int16_t(15)));
        const auto hi = hn::ShiftRight<4>(v);
        return hn::Combine(d16, hi, lo);
    } else {
        const hn::Rebind<uint8_t, D16> du8;
        const int c = h * int(hn::Lanes(d16));
        auto v = hn::BitCast(
            d16, hn::PromoteTo(hn::RebindToUnsigned<D16>(), hn::LoadU(du8, blk + (c & 15))));
        if (c >= kQuantBlock / 2) v = hn::ShiftRight<4>(v);
        return hn::And(v, hn::Set(d16, int16_t(15)));
    }
}

// MR activation rows by OR weight rows over nb blocks: the MR*OR dot products into r[OR*m + k].
template <QuantScheme S, int MR, int OR>
HWY_INLINE void Tile(const Row* x, const Row* w, const Row* next, int nb, float* HWY_RESTRICT r) {
    constexpr bool kQ4 = S == QuantScheme::q4;
    constexpr int kCodeBytes = kQ4 ? kQuantBlock / 2 : kQuantBlock;
    constexpr int kAcc = MR * OR;
    static_assert(kAcc % 4 == 0, "accumulators are reduced four at a time");
    const D16 d16;
    const D8 d8;
    const D32 d32;
    const DF df;
    constexpr int kH = kQuantBlock / hn::MaxLanes(D16());  // int16 vectors per block
    const int L16 = int(hn::Lanes(d16));
    VF a[kAcc];
    for (int i = 0; i < kAcc; i++) a[i] = hn::Zero(df);
    float mins[kAcc] = {};  // q4: the sum over blocks of m dx sum_j qx
    for (int b = 0; b < nb; b++) {
        const size_t c0 = size_t(b) * kQuantBlock, w0 = size_t(b) * kCodeBytes;
        if (next != nullptr)
            for (int k = 0; k < OR; k++) __builtin_prefetch(next[k].q + w0);
        V16 xv[MR][kH];
        float dx[MR];
        for (int m = 0; m < MR; m++) {
            for (int h = 0; h < kH; h++)
                xv[m][h] = hn::PromoteTo(
                    d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(x[m].q) + c0 + h * L16));
            dx[m] = x[m].d[b];
        }
        float xsum[MR] = {};  // q4: dx sum_j qx per row
        if constexpr (kQ4) {
            for (int m = 0; m < MR; m++) {
                V32 t0 = hn::Zero(d32), t1 = hn::Zero(d32);
                for (int h = 0; h < kH; h++)
                    t0 = hn::ReorderWidenMulAccumulate(d32, xv[m][h], hn::Set(d16, int16_t(1)), t0,
                                                       t1);
                const V32 t = hn::SumOfLanes(d32, hn::RearrangeToOddPlusEven(t0, t1));
                xsum[m] = dx[m] * float(hn::GetLane(t));
            }
        }
        for (int k = 0; k < OR; k++) {
            V32 s0[MR], s1[MR];
            for (int m = 0; m < MR; m++) s0[m] = s1[m] = hn::Zero(d32);
            for (int h = 0; h < kH; h++) {
                const V16 wv = LoadCodes<S>(w[k].q + w0, h);
                for (int m = 0; m < MR; m++)
                    s0[m] = hn::ReorderWidenMulAccumulate(d32, wv, xv[m][h], s0[m], s1[m]);
            }
            const float dw = w[k].d[b];
            for (int m = 0; m < MR; m++) {
                const VF blk = hn::ConvertTo(df, hn::RearrangeToOddPlusEven(s0[m], s1[m]));
                a[OR * m + k] = hn::MulAdd(blk, hn::Set(df, dw * dx[m]), a[OR * m + k]);
                if constexpr (kQ4) mins[OR * m + k] += w[k].m[b] * xsum[m];
            }
        }
    }
    const hn::Full128<float> d4;
    for (int i = 0; i < kAcc; i += 4)
        hn::StoreU(tiling::Sum4(a[i], a[i + 1], a[i + 2], a[i + 3]), d4, r + i);
    if constexpr (kQ4)
        for (int i = 0; i < kAcc; i++) r[i] += mins[i];
}

template <QuantScheme S, int MR, int OR>
void TiledRows(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta, int o0, int o1) {
    const int N = X.rows, OC = W.rows, nb = W.blocks_per_row();
    for (int o = o0; o < o1; o += OR) {
        // Rows past the end repeat the last one (computed, not stored).
        Row w[OR], next[OR];
        for (int k = 0; k < OR; k++) w[k] = RowOf(W, std::min(o + k, OC - 1));
        for (int k = 0; k < OR; k++) next[k] = RowOf(W, std::min(o + OR + k, OC - 1));
        for (int n0 = 0; n0 < N; n0 += MR) {
            Row x[MR];
            for (int m = 0; m < MR; m++) x[m] = RowOf(X, std::min(n0 + m, N - 1));
            float r[MR * OR];
            Tile<S, MR, OR>(x, w, n0 == 0 && o + OR < o1 ? next : nullptr, nb, r);
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
void GroupRows(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta, int o0, int o1) {
#if HWY_TARGET == HWY_SCALAR
    int8_detail::ScalarRows(out, X, W, beta, o0, o1);
#else
    // Float accumulators: 16 of AVX-512's 32 registers, 8 of AVX2's 16 (plus the int16
    // activations, the int32 block sums and a weight vector).
    constexpr int kAcc = hn::MaxLanes(DF()) >= 16 ? 16 : 8;
    if (X.rows == 1)
        TiledRows<S, 1, kAcc>(out, X, W, beta, o0, o1);
    else if (X.rows == 2 || kAcc == 8)
        TiledRows<S, 2, kAcc / 2>(out, X, W, beta, o0, o1);
    else
        TiledRows<S, 4, kAcc / 4>(out, X, W, beta, o0, o1);
#endif
}

}  // namespace

void LinearA8Codes(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta) {
    const int groups = (W.rows + kGroup - 1) / kGroup;
    // Small matrices (tests, tiny models) on one thread: a parallel region costs more.
#pragma omp parallel for schedule(dynamic, 2) if (size_t(W.rows) * W.cols >= (size_t(1) << 16))
    for (int g = 0; g < groups; g++) {
        const int o0 = g * kGroup, o1 = std::min(W.rows, o0 + kGroup);
        if (W.scheme == QuantScheme::q8)
            GroupRows<QuantScheme::q8>(out, X, W, beta, o0, o1);
        else
            GroupRows<QuantScheme::q4>(out, X, W, beta, o0, o1);
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "core/error.h"

namespace t6 {

HWY_EXPORT(LinearA8Codes);

void quantize_activations_q8(QuantMatrix& X, const float* x, int N, int C) {
    if (X.scheme != QuantScheme::q8 || X.rows != N || X.cols != C)
        X.allocate(QuantScheme::q8, N, C);
    const int nb = X.blocks_per_row();
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            const size_t blk = size_t(n) * nb + b;
            const float* v = x + size_t(n) * C + size_t(b) * kQuantBlock;
            const int len = std::min(kQuantBlock, C - b * kQuantBlock);
            quantize_block_q8(v, len, X.codes.data() + blk * kQuantBlock, X.scale.data() + blk);
            float s = 0.0f;
            for (int i = 0; i < len; i++) s += v[i] * 0.0f;  // NaN if any v[i] is not finite
            if (s != 0.0f) X.scale[blk] = std::numeric_limits<float>::quiet_NaN();
        }
}

static void check_shapes(const QuantMatrix& X, const QuantMatrix& W) {
    if (X.scheme != QuantScheme::q8 || X.cols != W.cols)
        fail("internal: int8 product of mismatched operands (", X.rows, " x ", X.cols, ", ",
             quant_scheme_name(W.scheme), " ", W.rows, " x ", W.cols, ")");
}

void linear_a8_codes(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta) {
    check_shapes(X, W);
    if (X.rows <= 0 || W.rows <= 0) return;
    HWY_DYNAMIC_DISPATCH(LinearA8Codes)(out, X, W, beta);
}

void linear_a8_reference(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta) {
    check_shapes(X, W);
    int8_detail::ScalarRows(out, X, W, beta, 0, W.rows);
}

// Rows up to which the int8 kernel runs; above, the float32 GEMM over dequantized operands.
constexpr int kFewRows = 16;

void linear_a8(float* out, const float* inp, const QuantMatrix& W, int N, float beta) {
    if (N <= 0 || W.rows <= 0) return;
    thread_local QuantMatrix X;
    quantize_activations_q8(X, inp, N, W.cols);
    if (N <= kFewRows) {
        linear_a8_codes(out, X, W, beta);
        return;
    }
    std::vector<float> xd(size_t(N) * W.cols);
    dequantize_matrix(X, xd.data());
    linear_quant(out, xd.data(), W, N, beta);
}

}  // namespace t6
#endif  // HWY_ONCE
