// The quantized few-row linear layer (kernels/quant.h): out[n,o] = beta * out[n,o] +
// sum_c inp[n,c] w'[o,c], with w' the dequantized q8 / q4 weights, float32 arithmetic.
//
// Written once against Google Highway and compiled per target (foreach_target.h), dispatched at
// run time; the register tiling is linear_tiling-inl.h's (shared with linear_bf16.cpp), over a
// source that walks the columns a block of 32 at a time. Per vector of L weights (L divides the
// block of 32) the codes are loaded (L bytes for q8, L nibbles of one half of a q4 block's 16
// bytes), widened to int32, converted to float32 and scaled (q8: q * d; q4: fma(q, d, m)), which
// gives exactly the dequantized weights w'; every such vector is then used for all MR input rows.
// Activations stay float32, so the result equals the float32 product with w' up to summation
// order (no activation quantization; int8_linear.cpp is the q8 x int8 variant). Columns past the
// last whole block are added in scalar code. At each block a tile prefetches the next tile's
// codes of that block. HWY_SCALAR runs the scalar loop. Work is split over OpenMP threads in
// groups of 64 outputs.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/quant.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/quant_linear.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/linear_tiling-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kGroup = 64;  // outputs per parallel work item

// One weight row's storage.
struct QRow {
    const uint8_t* codes;
    const float* scale;
    const float* min;  // q4 only
};

// The q8 / q4 rows of W: the weight source of the tiling.
template <QuantScheme S>
struct QuantSrc {
    using Row = QRow;
    static constexpr int kCodeBytes = S == QuantScheme::q8 ? kQuantBlock : kQuantBlock / 2;
    const QuantMatrix* W;
    Row RowAt(int o) const {
        const size_t blk = size_t(o) * W->blocks_per_row();
        return {W->codes.data() + blk * kCodeBytes, W->scale.data() + blk,
                W->min.size() ? W->min.data() + blk : nullptr};
    }
    static int Step(int /*L*/) { return kQuantBlock; }
    // The dequantized weight at column c of a row (scalar; the tails and the reference).
    static float At(const Row& r, int c) {
        const int b = c / kQuantBlock, j = c % kQuantBlock;
        if constexpr (S == QuantScheme::q8) {
            return float(int8_t(r.codes[size_t(b) * kQuantBlock + j])) * r.scale[b];
        } else {
            const uint8_t byte = r.codes[size_t(b) * (kQuantBlock / 2) + (j & 15)];
            return std::fma(float(j < 16 ? byte & 15 : byte >> 4), r.scale[b], r.min[b]);
        }
    }
#if HWY_TARGET != HWY_SCALAR
    static_assert(hn::MaxLanes(tiling::DF()) <= kQuantBlock / 2,
                  "a vector must fit in half a block");
    // L dequantized weights of a row from column c on (c a multiple of L).
    static HWY_INLINE tiling::VF Load(tiling::DF d, const Row& r, int c) {
        const int b = c / kQuantBlock, j = c % kQuantBlock;
        const hn::RebindToSigned<tiling::DF> di;
        if constexpr (S == QuantScheme::q8) {
            const hn::Rebind<int8_t, tiling::DF> d8;
            const auto q = hn::LoadU(d8, reinterpret_cast<const int8_t*>(r.codes) + c);
            return hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, q)), hn::Set(d, r.scale[b]));
        } else {
            const hn::Rebind<uint8_t, tiling::DF> d8;
            const hn::RebindToUnsigned<tiling::DF> du;
            auto q = hn::PromoteTo(
                du, hn::LoadU(d8, r.codes + size_t(b) * (kQuantBlock / 2) + (j & 15)));
            if (j >= 16) q = hn::ShiftRight<4>(q);
            q = hn::And(q, hn::Set(du, 15u));
            return hn::MulAdd(hn::ConvertTo(d, hn::BitCast(di, q)), hn::Set(d, r.scale[b]),
                              hn::Set(d, r.min[b]));
        }
    }
    // The next tile's codes of this block (one line per row covers a q8 block twice over).
    static HWY_INLINE void Prefetch(const Row& r, int c0) {
        __builtin_prefetch(r.codes + size_t(c0 / kQuantBlock) * kCodeBytes);
    }
#endif
};

template <QuantScheme S>
void GroupRows(float* out, const float* inp, const QuantMatrix& W, int N, float beta, int o0,
               int o1) {
    tiling::GroupRows(QuantSrc<S>{&W}, out, inp, N, W.cols, W.rows, beta, o0, o1);
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
