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
// codes of that block, and (in the layers) the codes and scales kFarRows rows beyond into L2.
// One input row (batch-1 decoding) over q8 codes reads its rows as four streams (Q8StreamRuns:
// a row of each of four runs at a time, as linear_bf16.cpp's float32 rows), over q4 codes it takes
// its own tile (QTileOneRow) in the same loop; both sum the codes times the input per block and
// apply the scale once per block (q4: the minima's part added per row from the input's block
// sums). HWY_SCALAR runs the scalar loop. Work is split over OpenMP threads in one contiguous range
// of outputs each.
//
// Also here (kernels/quant_rowsum.h), for MLA's quantized kv_b_proj: the same tiling over a row
// range of W (quant_rows_dot), and the transposed product over a row range as a sum of scaled
// rows (quant_row_sum: per pass NB blocks of columns in registers, each row's codes of those
// blocks widened and multiplied by the scalar x[r] * d[r, b]). Both single-threaded: the caller
// runs them in parallel over (token, head).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "core/error.h"
#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)
#include "core/team.h"

#include "kernels/quant.h"
#include "kernels/quant_rowsum.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/quant_linear.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/linear_tiling-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kAlign = 16;    // threads' ranges start at multiples of this (and of every OR)
constexpr int kFarRows = 16;  // rows beyond the next tile's prefetched into L2 (int8_linear.cpp's)

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
    int r0 = 0;  // row o of the source is row r0 + o of W (a row range: quant_rows_dot)
    // The codes (scales) kFarRows rows beyond the next tile's are prefetched into L2 while they
    // lie before codes_end (scales_end), the end of this thread's rows; far_q == 0: none.
    ptrdiff_t far_q = 0, far_d = 0;
    const uint8_t* codes_end = nullptr;
    const float* scales_end = nullptr;
    Row RowAt(int o) const {
        const size_t blk = size_t(r0 + o) * W->blocks_per_row();
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
    // The next tile's codes of this block and those kFarRows rows on into L2, once per cache line
    // (every 2nd q8 block, every 4th q4 block: a prefetch per block repeated the same line, and
    // each one takes a load slot); per 16 blocks, the scales (q4: and minima) that far on.
    HWY_INLINE void Prefetch(const Row& r, int c0) const {
        const int b = c0 / kQuantBlock;
        constexpr int kLineBlocks = 64 / kCodeBytes;  // blocks per cache line
        if (b % kLineBlocks != 0) return;
        const uint8_t* p = r.codes + size_t(b) * kCodeBytes;
        __builtin_prefetch(p);
        if (far_q == 0) return;
        if (codes_end - p > far_q) __builtin_prefetch(p + far_q, 0, 2);
        if (b % 16 == 0 && scales_end - (r.scale + b) > far_d) {
            __builtin_prefetch(r.scale + b + far_d, 0, 2);
            if (r.min != nullptr) __builtin_prefetch(r.min + b + far_d, 0, 2);
        }
    }
#endif
};

#if HWY_TARGET != HWY_SCALAR
// The codes of block b of a q8 / q4 row times the block's input xv, summed into one vector
// (the scale is applied by the caller).
template <QuantScheme S>
HWY_INLINE tiling::VF BlockDot(const uint8_t* codes, int b, const tiling::VF* xv) {
    const tiling::DF d;
    const hn::RebindToSigned<tiling::DF> di;
    constexpr int L = int(hn::MaxLanes(tiling::DF()));
    constexpr int kPB = kQuantBlock / L;  // vectors per block
    static_assert(kPB * L == kQuantBlock && kPB % 2 == 0, "a block is an even number of vectors");
    const uint8_t* q = codes + size_t(b) * QuantSrc<S>::kCodeBytes;
    if constexpr (S == QuantScheme::q8) {
        const hn::Rebind<int8_t, tiling::DF> d8;
        const int8_t* q8 = reinterpret_cast<const int8_t*>(q);
        tiling::VF t = hn::Mul(xv[0], hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q8))));
        for (int v = 1; v < kPB; v++)
            t = hn::MulAdd(xv[v], hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q8 + v * L))),
                           t);
        return t;
    } else {
        // Byte j holds code j (low nibble) and code j + 16 (high nibble): one load feeds vector v
        // of the block's first half and vector v + kPB / 2 of its second.
        const hn::Rebind<uint8_t, tiling::DF> d8;
        const hn::RebindToUnsigned<tiling::DF> du;
        tiling::VF t = hn::Zero(d);
        for (int v = 0; v < kPB / 2; v++) {
            const auto bytes = hn::PromoteTo(du, hn::LoadU(d8, q + v * L));
            const auto lo = hn::ConvertTo(d, hn::BitCast(di, hn::And(bytes, hn::Set(du, 15u))));
            const auto hi = hn::ConvertTo(d, hn::BitCast(di, hn::ShiftRight<4>(bytes)));
            t = hn::MulAdd(xv[v], lo, t);
            t = hn::MulAdd(xv[v + kPB / 2], hi, t);
        }
        return t;
    }
}

// One input row (batch-1 decoding) over OR q4 rows (q8 rows take Q8StreamRuns since session 53;
// the tile is written for both), the scale applied once per block:
//   q8: r[k] = sum_b d[k, b] (sum_{c in block b} x[c] q[k, c])
//   q4: r[k] = sum_b d[k, b] (sum_{c in block b} x[c] q[k, c]) + sum_b m[k, b] xsum[b]
// (xsum[b] = the sum of x over block b, once per call), where the general tile
// (linear_tiling-inl.h) dequantizes every vector of codes (q8: a multiply by the scale, q4: an
// fma with scale and minimum) before the multiply-add. That is one operation fewer per vector of
// codes: on AVX2, where a vector holds 8 codes, about a fifth of the instructions (a count, not a
// measurement; docs/decode-bench.md, session 26, has the timings). The sums differ from
// the dequantized weights' only in rounding (the scalar reference is the dequantized product,
// tests/test_quant.cpp). Registers: OR accumulators, the block's kPB input vectors, a partial
// sum and the codes.
template <QuantScheme S, int OR>
HWY_INLINE void QTileOneRow(const QuantSrc<S>& src, const float* x, const float* xsum,
                            const QRow* w, const QRow* next, int C, float* HWY_RESTRICT r) {
    static_assert(OR % 4 == 0, "accumulators are reduced four at a time");
    const tiling::DF d;
    constexpr int L = int(hn::MaxLanes(tiling::DF()));
    constexpr int kPB = kQuantBlock / L;  // vectors per block
    const int nbw = C / kQuantBlock;      // whole blocks
    tiling::VF a[OR];
    for (int k = 0; k < OR; k++) a[k] = hn::Zero(d);
    for (int b = 0; b < nbw; b++) {
        const int c0 = b * kQuantBlock;
        if (next != nullptr)
            for (int k = 0; k < OR; k++) src.Prefetch(next[k], c0);
        tiling::VF xv[kPB];
        for (int v = 0; v < kPB; v++) xv[v] = hn::LoadU(d, x + c0 + v * L);
        for (int k = 0; k < OR; k++) {
            const tiling::VF t = BlockDot<S>(w[k].codes, b, xv);
            a[k] = hn::MulAdd(t, hn::Set(d, w[k].scale[b]), a[k]);
        }
    }
    if constexpr (S == QuantScheme::q4) {
        // The minima's part sum_b m[k, b] xsum[b], L blocks per vector, into the same
        // accumulators. (A scalar loop here was an in-order chain of adds per row, gcc keeping
        // the sum's order: about a tenth of the AVX2 tile's perf samples in a microbenchmark.)
        int b = 0;
        for (; b + L <= nbw; b += L) {
            const tiling::VF xs = hn::LoadU(d, xsum + b);
            for (int k = 0; k < OR; k++) a[k] = hn::MulAdd(hn::LoadU(d, w[k].min + b), xs, a[k]);
        }
        if (b < nbw) {
            const auto rest = hn::FirstN(d, size_t(nbw - b));  // masked-out lanes are not read
            const tiling::VF xs = hn::MaskedLoad(rest, d, xsum + b);
            for (int k = 0; k < OR; k++)
                a[k] = hn::MulAdd(hn::MaskedLoad(rest, d, w[k].min + b), xs, a[k]);
        }
    }
    const hn::Full128<float> d4;
    for (int i = 0; i < OR; i += 4)
        hn::StoreU(tiling::Sum4(a[i], a[i + 1], a[i + 2], a[i + 3]), d4, r + i);
    for (int c = nbw * kQuantBlock; c < C; c++)
        for (int k = 0; k < OR; k++) r[k] += x[c] * QuantSrc<S>::At(w[k], c);
}

// Outputs [o0, o1) of one input row, OR rows at a time (tiling::TiledRowsWith's loop).
template <QuantScheme S, int OR>
void QRowsOneRow(const QuantSrc<S>& src, float* out, const float* x, int C, int OC, float beta,
                 int o0, int o1) {
    std::vector<float> xsum;  // q4: the sum of x over each whole block
    if constexpr (S == QuantScheme::q4) {
        xsum.resize(size_t(C / kQuantBlock));
        for (size_t b = 0; b < xsum.size(); b++) {
            float s = 0.0f;
            for (int c = 0; c < kQuantBlock; c++) s += x[b * kQuantBlock + c];
            xsum[b] = s;
        }
    }
    tiling::TiledRowsWith<1, OR>(
        src, out, x, 1, C, OC, beta, o0, o1,
        [&](const float* const* xr, const QRow* w, const QRow* next, int C_, float* r)
            HWY_ATTR { QTileOneRow<S, OR>(src, xr[0], xsum.data(), w, next, C_, r); });
}
#endif

#if HWY_TARGET != HWY_SCALAR
// Bytes ahead of its reads that each stream of Q8StreamRuns prefetches into L1.
constexpr ptrdiff_t kQ8StreamAhead = 2048;

// One input row over q8 rows as K streams: the thread's rows [o0, o1) cut into K runs of `per`
// rows, row i of every run read side by side, each row from its first code to its last (a
// QuantMatrix's rows are contiguous, so each run is one stream of codes), each run's codes
// prefetched into L1 kQ8StreamAhead bytes before they are read; the last (o1 - o0) % K rows as one
// run. Per row r = sum_b d[b] (sum_{c in block b} x[c] q[c]), the block sums alternating between
// two accumulators, then one horizontal sum, then the columns past the last whole block in scalar
// code. A row's sum does not depend on K or on the rows read beside it, so the outputs do not
// depend on how the rows are split over threads.
// Until session 53 one input row took tiles of 8 (AVX2: 4) neighbouring rows (QTileOneRow), a
// line of each per step, with the next tile prefetched into L1 and the rows 16 on into L2. On the
// Zen 5 machine (docs/decode-bench.md, session 53), two threads over 60 q8 matrices of 2048 x 768
// from memory, passes alternating between the two in one process: AVX2 1.08-1.16x the tiles'
// rate (every shape of the small models), AVX-512 0.99-1.04x at 2048 x 768, 768 x 768 and the
// lm_head, 1.22-1.53x at 768 x 2048 (rows of 2 KiB), in minutes when a plain read got 49-67
// GB/s; `t6 bench decode` q8 linear phase at 4K, 6 alternating rounds, median ms, small-gqa /
// small-t6: AVX-512 2.72 / 2.38 -> 2.05 / 2.08, AVX2 2.96 / 3.13 -> 2.76 / 2.75. 2 runs and 8
// runs were slower than 4; the prefetch 2 KiB ahead as fast as or faster than none, 1 or 3 KiB.
// q4 rows (more arithmetic per byte: the nibbles unpacked) keep the tiles: as streams they read
// 41.3-42.6 against 39.8-41.4 GB/s (AVX-512) and 26.1-26.8 against 27.2-27.7 (AVX2).
template <int K>
void Q8StreamRuns(float* out, const float* x, const QuantMatrix& W, float beta, int o0, int o1) {
    constexpr QuantScheme S = QuantScheme::q8;
    const tiling::DF d;
    constexpr int L = int(hn::MaxLanes(tiling::DF()));
    constexpr int kPB = kQuantBlock / L;
    const int nb = W.blocks_per_row(), C = W.cols, nbw = C / kQuantBlock;
    const int per = (o1 - o0) / K;
    // Prefetches stop at the end of the thread's rows (addresses compared as integers).
    const uintptr_t end =
        reinterpret_cast<uintptr_t>(W.codes.data() + size_t(o1) * nb * kQuantBlock);
    for (int i = 0; i < per; i++) {
        QRow w[K];
        tiling::VF a0[K], a1[K];
        for (int k = 0; k < K; k++) {
            const size_t blk = size_t(o0 + k * per + i) * nb;
            w[k] = {W.codes.data() + blk * kQuantBlock, W.scale.data() + blk, nullptr};
            a0[k] = a1[k] = hn::Zero(d);
        }
        for (int b = 0; b < nbw; b++) {
            const int c0 = b * kQuantBlock;
            if (b % 2 == 0)  // a line of codes per two blocks
                for (int k = 0; k < K; k++) {
                    const uintptr_t p =
                        reinterpret_cast<uintptr_t>(w[k].codes + c0) + kQ8StreamAhead;
                    if (p < end) __builtin_prefetch(reinterpret_cast<const void*>(p));
                }
            tiling::VF xv[kPB];
            for (int v = 0; v < kPB; v++) xv[v] = hn::LoadU(d, x + c0 + v * L);
            for (int k = 0; k < K; k++) {
                const tiling::VF t = BlockDot<S>(w[k].codes, b, xv);
                if (b % 2 == 0)
                    a0[k] = hn::MulAdd(t, hn::Set(d, w[k].scale[b]), a0[k]);
                else
                    a1[k] = hn::MulAdd(t, hn::Set(d, w[k].scale[b]), a1[k]);
            }
        }
        for (int k = 0; k < K; k++) {
            float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(a0[k], a1[k])));
            for (int c = nbw * kQuantBlock; c < C; c++) s += x[c] * QuantSrc<S>::At(w[k], c);
            const int o = o0 + k * per + i;
            out[o] = (beta != 0.0f ? beta * out[o] : 0.0f) + s;
        }
    }
    if constexpr (K > 1)
        if (per * K < o1 - o0) Q8StreamRuns<1>(out, x, W, beta, o0 + per * K, o1);
}
#endif

// Outputs [o0, o1), prefetching kFarRows rows ahead inside the range.
template <QuantScheme S>
void GroupRows(float* out, const float* inp, const QuantMatrix& W, int N, float beta, int o0,
               int o1) {
#if HWY_TARGET != HWY_SCALAR
    if constexpr (S == QuantScheme::q8)
        if (N == 1) return Q8StreamRuns<4>(out, inp, W, beta, o0, o1);
#endif
    const size_t nb = W.blocks_per_row();
    QuantSrc<S> src{&W};
    src.far_q = ptrdiff_t(kFarRows * nb * QuantSrc<S>::kCodeBytes);
    src.far_d = ptrdiff_t(kFarRows * nb);
    src.codes_end = W.codes.data() + size_t(o1) * nb * QuantSrc<S>::kCodeBytes;
    src.scales_end = W.scale.data() + size_t(o1) * nb;
#if HWY_TARGET != HWY_SCALAR
    if (N == 1) {
        // q4: 4 rows per tile on AVX2. With 8, the 8 accumulators, the block's 4 input vectors,
        // the nibble mask and the unpacked codes outgrew the 16 registers and gcc kept
        // accumulators and row pointers on the stack. q8: the next tile's codes, prefetched into
        // L1, then lie 4 rows on instead of 8 (3 KiB at 768 columns); small-t6's 61 matrices of a
        // decoding step in q8 (140 MB), Xeon with AVX-512, T6_SIMD=avx2, medians of 25 passes,
        // 3 alternating runs: 6.82-7.32 -> 5.99-6.23 ms, and in a later, quieter hour 5.87-6.53
        // -> 5.88-6.34. AVX-512 measured the same either way (5.34-5.76 against 5.25-5.72) and
        // keeps 8 (docs/decode-bench.md, session 32).
        constexpr int kOR = hn::MaxLanes(tiling::DF()) == 8 ? 4 : 8;
        QRowsOneRow<S, kOR>(src, out, inp, W.cols, W.rows, beta, o0, o1);
        return;
    }
#endif
    tiling::GroupRows(src, out, inp, N, W.cols, W.rows, beta, o0, o1);
}

// ---- Row ranges (kernels/quant_rowsum.h) ----

#if HWY_TARGET != HWY_SCALAR
constexpr int kLanes = int(hn::MaxLanes(tiling::DF()));
constexpr int kPerBlock = kQuantBlock / kLanes;  // vectors per block of 32
// Blocks per pass: the accumulators of a pass (16 of AVX-512's 32 registers, 8 of AVX2's 16)
// cover NB blocks of columns; every row's codes of those blocks are read once per pass (on
// AVX-512 a d_c of 256, 8 blocks, is one pass: each row is read once, contiguously).
constexpr int kSumAcc = kLanes >= 16 ? 16 : 8;
constexpr int kPassBlocks = kSumAcc / kPerBlock > 0 ? kSumAcc / kPerBlock : 1;

// Columns of blocks [b0, b0 + NB) of out = sum_r x[r] w'[r0 + r, :].
template <QuantScheme S, int NB>
HWY_INLINE void RowSumPass(float* out, const float* x, const QuantMatrix& W, int r0, int rows,
                           int b0) {
    constexpr int kCodeBytes = QuantSrc<S>::kCodeBytes, kAcc = NB * kPerBlock;
    const tiling::DF d;
    const hn::RebindToSigned<tiling::DF> di;
    const int nb = W.blocks_per_row();
    tiling::VF acc[kAcc];
    for (int i = 0; i < kAcc; i++) acc[i] = hn::Zero(d);
    float msum[NB] = {};  // q4: sum_r x[r] m[r, b]
    for (int r = 0; r < rows; r++) {
        const size_t blk = size_t(r0 + r) * nb + size_t(b0);
        const uint8_t* q = W.codes.data() + blk * kCodeBytes;
        const float xr = x[r];
        for (int bb = 0; bb < NB; bb++) {
            // The row-block scale folded into the scalar: (x d) q.
            const tiling::VF s = hn::Set(d, xr * W.scale[blk + bb]);
            const uint8_t* qb = q + bb * kCodeBytes;
            tiling::VF* a = acc + bb * kPerBlock;
            if constexpr (S == QuantScheme::q8) {
                const hn::Rebind<int8_t, tiling::DF> d8;
                for (int v = 0; v < kPerBlock; v++) {
                    const auto codes =
                        hn::LoadU(d8, reinterpret_cast<const int8_t*>(qb) + v * kLanes);
                    a[v] = hn::MulAdd(hn::ConvertTo(d, hn::PromoteTo(di, codes)), s, a[v]);
                }
            } else {
                // Byte j holds code j (low nibble) and code j + 16 (high nibble): one load feeds
                // a vector of the block's first half and one of its second half.
                const hn::Rebind<uint8_t, tiling::DF> d8;
                const hn::RebindToUnsigned<tiling::DF> du;
                for (int v = 0; v < kPerBlock / 2; v++) {
                    const auto bytes = hn::PromoteTo(du, hn::LoadU(d8, qb + v * kLanes));
                    const auto lo = hn::And(bytes, hn::Set(du, 15u));
                    const auto hi = hn::ShiftRight<4>(bytes);
                    a[v] = hn::MulAdd(hn::ConvertTo(d, hn::BitCast(di, lo)), s, a[v]);
                    a[v + kPerBlock / 2] =
                        hn::MulAdd(hn::ConvertTo(d, hn::BitCast(di, hi)), s, a[v + kPerBlock / 2]);
                }
                msum[bb] += xr * W.min[blk + bb];
            }
        }
    }
    if constexpr (S == QuantScheme::q4)
        for (int bb = 0; bb < NB; bb++)
            for (int v = 0; v < kPerBlock; v++)
                acc[bb * kPerBlock + v] = hn::Add(acc[bb * kPerBlock + v], hn::Set(d, msum[bb]));
    const int c0 = b0 * kQuantBlock, ncols = std::min(NB * kQuantBlock, W.cols - c0);
    if (ncols == NB * kQuantBlock) {
        for (int i = 0; i < kAcc; i++) hn::StoreU(acc[i], d, out + c0 + i * kLanes);
    } else {  // the row's partial last block: its columns past W.cols are not written
        HWY_ALIGN float buf[kAcc * kLanes];
        for (int i = 0; i < kAcc; i++) hn::Store(acc[i], d, buf + i * kLanes);
        std::copy(buf, buf + ncols, out + c0);
    }
}
#endif

template <QuantScheme S>
void RowSumT(float* out, const float* x, const QuantMatrix& W, int r0, int rows) {
#if HWY_TARGET == HWY_SCALAR
    t6::quant_row_sum_reference(out, x, W, r0, rows);  // the scalar reference loop itself
#else
    const int nb = W.blocks_per_row();
    int b0 = 0;
    for (; b0 + kPassBlocks <= nb; b0 += kPassBlocks)
        RowSumPass<S, kPassBlocks>(out, x, W, r0, rows, b0);
    for (; b0 < nb; b0++) RowSumPass<S, 1>(out, x, W, r0, rows, b0);
#endif
}

}  // namespace

void QuantRowSum(float* out, const float* x, const QuantMatrix& W, int r0, int rows) {
    if (W.scheme == QuantScheme::q8)
        RowSumT<QuantScheme::q8>(out, x, W, r0, rows);
    else
        RowSumT<QuantScheme::q4>(out, x, W, r0, rows);
}

void QuantRowsDot(float* out, const float* x, const QuantMatrix& W, int r0, int rows) {
    if (W.scheme == QuantScheme::q8)
        tiling::GroupRows(QuantSrc<QuantScheme::q8>{&W, r0}, out, x, 1, W.cols, rows, 0.0f, 0,
                          rows);
    else
        tiling::GroupRows(QuantSrc<QuantScheme::q4>{&W, r0}, out, x, 1, W.cols, rows, 0.0f, 0,
                          rows);
}

void LinearQuantFewRows(float* out, const float* inp, const QuantMatrix& W, int N, float beta) {
    if (N <= 0 || W.rows <= 0) return;
    // One contiguous range of outputs per thread, balanced in units of kAlign rows, so that each
    // thread streams its rows in order and prefetches through its range (linear_bf16.cpp). Small
    // matrices (tests, tiny models) on one thread: a parallel region costs more.
    parallel_row_ranges(
        W.rows, kAlign,
        [&](int o0, int o1) {
            if (W.scheme == QuantScheme::q8)
                GroupRows<QuantScheme::q8>(out, inp, W, N, beta, o0, o1);
            else
                GroupRows<QuantScheme::q4>(out, inp, W, N, beta, o0, o1);
        },
        size_t(W.rows) * W.cols >= (size_t(1) << 16));
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(LinearQuantFewRows);
HWY_EXPORT(QuantRowSum);
HWY_EXPORT(QuantRowsDot);

namespace {
void check_row_range(const QuantMatrix& W, int r0, int rows) {
    if (r0 < 0 || rows < 0 || r0 + rows > W.rows)
        fail("internal: rows [", r0, ", ", r0 + rows, ") of a ", W.rows, "-row quantized matrix");
}
}  // namespace

void quant_rows_dot(float* out, const float* x, const QuantMatrix& W, int r0, int rows) {
    check_row_range(W, r0, rows);
    if (rows > 0) HWY_DYNAMIC_DISPATCH(QuantRowsDot)(out, x, W, r0, rows);
}

void quant_row_sum(float* out, const float* x, const QuantMatrix& W, int r0, int rows) {
    check_row_range(W, r0, rows);
    HWY_DYNAMIC_DISPATCH(QuantRowSum)(out, x, W, r0, rows);
}

void quant_row_sum_reference(float* out, const float* x, const QuantMatrix& W, int r0, int rows) {
    check_row_range(W, r0, rows);
    std::vector<float> w(size_t(W.cols));
    std::fill(out, out + W.cols, 0.0f);
    for (int r = 0; r < rows; r++) {
        dequantize_row(W, r0 + r, w.data());
        for (int c = 0; c < W.cols; c++) out[c] += x[r] * w[c];
    }
}

void linear_quant_few_rows(float* out, const float* inp, const QuantMatrix& W, int N, float beta) {
    HWY_DYNAMIC_DISPATCH(LinearQuantFewRows)(out, inp, W, N, beta);
}

}  // namespace t6
#endif  // HWY_ONCE
