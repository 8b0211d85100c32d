// FlashTPA decoding: TPA paper (Tensor Product Attention Is All You Need), Algorithm 2 and
// Appendix A.4 (FlashTPA); see flash_decode.h for the cache layout and the math. Per block of n
// cached tokens the three steps run as small register-blocked matrix products:
//  1. feature products P[t][i][j] = B_Q[i] . B_K[t][j], an (R_Q x D) by (D x n R_K) product with
//     tokens in lanes: the query row is held in registers, each product is an N-lane partial sum,
//     and the partial sums of N consecutive tokens are reduced at once by a transpose-add tree
//     into one vector of P (no horizontal sum per product, no partial sums through memory);
//  2. rank mixing with heads in vector lanes: s[t][h] = sum_j A_K[t][j][h] sum_i A_Q'[i][h]
//     P[t][i][j] (A_Q' transposed, scale/(R_Q R_K) folded in), then the online softmax
//     lane-wise over heads (on AVX3 with the presets' ranks, both for three groups of N heads
//     at a time: BlockScoresSoftmaxGroups);
//  3. values: acc[h][:] = alpha[h] acc[h][:] + sum_{t,s} W[t,s][h] B_V[t][s][:] with
//     W[t,s][h] = p[t][h] A_V[t][h,s] / R_V, an (H x n R_V) by (n R_V x D) product in register
//     tiles (flash_decode-inl.h: up to 6 heads x 64 columns on AVX3, 3 heads x 32 on AVX2).
// Multiply-adds per cached token: R_Q R_K D + H R_Q R_K + H R_V D (paper Appendix A.4).
// For T6_kvonly (full q) step 1 is the (H x D) by (D x n R_K) product q_h . B_K[t][j] and step 2
// s[t][h] = scale/R_K sum_j A_K[t][h,j] P[t][h][j].
//
// The kernel is written once with Google Highway and compiled per SIMD target (AVX3, AVX2,
// SCALAR: foreach_target.h); run-time dispatch picks the target in force (core/simd.h). A bf16
// cache is read in place like the q8 codes below (A_K and A_V widened to float32 in registers
// where they are read, B_K and B_V once per block into L1-sized buffers), except on CPUs with
// AVX-512 BF16 where simd_bf16_dot_decode() (core/simd.h: AMD's by default; on an Intel Xeon this
// path measured slower than widening): there the AVX3 code is also compiled, in functions with the
// avx512bf16 target attribute, with the feature and value products done by vdpbf16ps on the bf16
// numbers (pairs of exact bf16 products summed into float32 lanes: twice the multiply-adds of an
// fp32 FMA per instruction and half the bytes read). That needs the query factor rounded to bf16
// once per task and the value weights W rounded to bf16 (as GPU flash attention rounds P);
// scores, softmax and accumulators stay float32. Head sizes above 128 take a portable plain-loop
// version.
//
// A float32 cache with B_K grouped (flash_decode.h: each group of 16 tokens' B_K stored
// transposed; what the KV cache holds for the TPA kinds) takes step 1 from 16-token vectors of the
// cache (BlockFeaturesGrouped), the split's tasks starting at groups (run_split's align); steps 2
// and 3 read the records as they are.
//
// An 8-bit cache (q8_cache.h: int8 codes, one float32 scale per factor row) is read in place: the
// codes are widened int8 -> int32 -> float32 in registers where the float kernel loads numbers,
// and the row scales, per-(token, rank) scalars, are folded in after the code products:
//   B_K[t][j] = b_j(t) codes, A_K[t][j] = a_j(t) codes:  P[t][i][j] <- a_j(t) b_j(t) P[t][i][j]
//   (the products of the query with B_K's codes), then step 2 on A_K's codes;
//   A_V[t][s] = a'_s(t) codes, B_V[t][s] = b'_s(t) codes:  W[t,s][h] = p[t][h] a'_s(t) b'_s(t)
//   codes_AV[t][s][h] / R_V, then step 3 on B_V's codes.
// No dequantized copy of the records: only B_K's and B_V's codes are widened once per block into
// L1-sized buffers (unscaled) for the feature products and the value tiles, which read each row
// once per query row and once per tile of heads.
// Head sizes above 128 take the portable version on dequantized chunks (flash_decode_common.h
// q8_chunks), which is also the reference.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/simd.h"
#include "kernels/bf16.h"
#include "kernels/flash_decode_common.h"
#include "kernels/vec_math.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/flash_tpa_decode.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/flash_decode-inl.h"
#include "kernels/linear_tiling-inl.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
using namespace flash;
using flash_detail::align64;
using flash_detail::Bf16Pair;
using flash_detail::kBlock;
using flash_detail::Partial;
using flash_detail::Task;

constexpr int kMaxD = 128;  // head sizes of the vector kernel
// Value tiles: column vectors per tile (flash_decode-inl.h values_tiles): 6 heads x 4 vectors on
// AVX3; 6 heads x 2 vectors on AVX2 (15 of 16 registers).
#if HWY_TARGET == HWY_AVX2
constexpr int kValueCols = 2;
#else
constexpr int kValueCols = 4;
#endif

// count (<= 0 .. >= N) int8 codes of a q8 row as float32, lanes >= count zero. A short row reads
// N bytes and zeroes the lanes past count: every row of a TPA q8 record is followed inside the
// record by at least 16 bytes (more rows, or the >= 4 row scales of 4 bytes), so the read stays
// in the record on every target (N <= 16).
HWY_INLINE VF LoadQ8(const int8_t* p, int count) {
    if (count >= kN) return LoadF32(p);
    return hn::IfThenElseZero(LaneMask(count), LoadF32(p));
}
// A row of a cached record as float32 (lanes >= count zero), for float, bf16 and int8 records.
template <typename R>
HWY_INLINE VF RowLoad(const R* p, int count) {
    if constexpr (std::is_same_v<R, int8_t>)
        return LoadQ8(p, count);
    else
        return MaskedLoadF32(p, count);
}
// Row r's scale in the q8 record at rec (scales start scale_off bytes in).
HWY_INLINE float RowScale(const int8_t* rec, long scale_off, int r) {
    float s;
    std::memcpy(&s, rec + scale_off + 4L * r, 4);
    return s;
}

// P's layout: P[(i*Rk + j)*kBlock + t], the products of one (query row, key rank) for the block's
// tokens in a row, so that N tokens' products come out of one reduction.
HWY_INLINE size_t PIndex(int i, int j, int Rk, int t) {
    return size_t(i * Rk + j) * kBlock + size_t(t);
}

// dst (R, Hp): dst[s][h] = P[PIndex(h, s, R, t)] for h < H, 0 for H <= h < Hp (T6_kvonly's
// per-head feature products of token t, query rows being heads; the kernel wants heads in lanes).
HWY_INLINE void Deinterleave(const float* P, int t, int R, int H, int Hp, float* dst) {
    for (int s = 0; s < R; s++) {
        for (int h = 0; h < H; h++) dst[s * Hp + h] = P[PIndex(h, s, R, t)];
        for (int h = H; h < Hp; h++) dst[s * Hp + h] = 0.0f;
    }
}

// Feature products of one block: P[PIndex(i, j, Rk, t)] = the product of query feature row i
// (QB, NQ rows of D) with B_K[t][j]. Op loads kChunk numbers of a row into a vector and
// multiply-adds: float32 (N per FMA) here, bf16 (32 per vdpbf16ps) in FeatureOpsBf16.
// Q: the query factor's numbers; R: the cached rows'.
struct FeatureOpsF32 {
    using Q = float;
    using R = float;
    static constexpr int kChunk = kN;
    static HWY_INLINE VF Load(const float* p, int left) { return MaskedLoadF32(p, left); }
    static HWY_INLINE VF LoadQ(const float* p, int left) { return MaskedLoadF32(p, left); }
    static HWY_INLINE VF MulAdd(VF acc, VF a, VF b) { return hn::MulAdd(a, b, acc); }
};

// The N partial-sum vectors v[u] of tokens t0 + u (kWhole: all below n; otherwise tokens past
// n repeat token n-1, whose products are never read): the NC-chunk products q_i . B_K[t][j] of the
// query row qb with the rows at bj + t * rec, QC query chunks held in registers at a time.
template <int NC, int QC, class Op, bool kFull, bool kWhole>
HWY_INLINE void FeatureGroup(VF* v, const typename Op::Q* qb, const typename Op::R* bj, long rec,
                             int t0, int n, int D) {
    const DF d;
#define T6_FP_LEFT(c) (kFull ? Op::kChunk : D - Op::kChunk * (c))
    // Unrolled, so that v[] stays in registers (rolled, GCC kept the 16 AVX3 partial sums on the
    // stack: a store and a reload per product; unrolled, the AVX3 f32 kernel in L2 went 108-110
    // -> 101-104 ns per token on Zen 5).
#pragma GCC unroll 16
    for (int u = 0; u < kN; u++) v[u] = hn::Zero(d);
    for (int c0 = 0; c0 < NC; c0 += QC) {
        VF q[QC];
        for (int c = 0; c < QC && c0 + c < NC; c++)
            q[c] = Op::LoadQ(qb + Op::kChunk * (c0 + c), T6_FP_LEFT(c0 + c));
        const typename Op::R* bk = bj + long(t0) * rec;
#pragma GCC unroll 16
        for (int u = 0; u < kN; u++, bk += rec) {
            const typename Op::R* row = kWhole ? bk : bj + long(std::min(t0 + u, n - 1)) * rec;
            for (int c = 0; c < QC && c0 + c < NC; c++)
                v[u] = Op::MulAdd(v[u], Op::Load(row + Op::kChunk * (c0 + c), T6_FP_LEFT(c0 + c)),
                                  q[c]);
        }
    }
#undef T6_FP_LEFT
}

// Feature products with tokens in lanes: for query row i and key rank j, the partial sums of N
// consecutive tokens (FeatureGroup) are reduced at once by the transpose-add into one vector of P
// (no horizontal sum per product, no partial sums through memory). kFull: D == NC * kChunk (no
// masks).
template <int NC, class Op, bool kFull>
HWY_INLINE void FeatureProductsNC(float* P, const typename Op::Q* QB, int NQ,
                                  const typename Op::R* recs, long rec, long off_bk, int Rk, int n,
                                  int D, LineShare pf) {
    const DF d;
    LineSpread spread(pf, NQ * Rk * ((n + kN - 1) / kN));
    // Query chunks held at a time beside the N partial sums: all on AVX3 (32 registers), 4 on
    // AVX2 (16 registers, 8 partial sums).
    constexpr int QC = kN >= 16 ? NC : (NC < 4 ? NC : 4);
    for (int i = 0; i < NQ; i++) {
        const typename Op::Q* qb = QB + size_t(i) * D;
        for (int j = 0; j < Rk; j++) {
            const typename Op::R* bj = recs + off_bk + long(j) * D;
            for (int t0 = 0; t0 < n; t0 += kN) {
                VF v[kN];
                if (t0 + kN <= n)
                    FeatureGroup<NC, QC, Op, kFull, true>(v, qb, bj, rec, t0, n, D);
                else
                    FeatureGroup<NC, QC, Op, kFull, false>(v, qb, bj, rec, t0, n, D);
                hn::StoreU(TransposeSum(v), d, P + PIndex(i, j, Rk, t0));
                spread.step();
            }
        }
    }
}

#if HWY_TARGET == HWY_AVX2
// AVX2, float32 rows: feature products NR query rows by NT tokens of partial sums at a time.
// Every loaded chunk of a B_K row feeds NR multiply-adds and every query chunk NT, where
// FeatureProductsNC (one query row by N tokens) loads a B_K chunk per multiply-add. (Measured when
// half of the B_K rows started off a 32-byte boundary, B_K at byte 272 of small-t6's 1,568-byte
// records, so that half of those loads straddled two cache lines and took two load slots: the
// loads, not the FMAs, bounded the step.) The NT partial sums of a query row are
// reduced four at a time (Sum4: one 128-bit vector of P, tokens t0.. of row (i, j)). Registers:
// NR * NT = 12 sums, NR query chunks and a B_K chunk: 16. Tokens past n repeat token n - 1 (their
// products are never read). Kernel alone (small-t6's shape, 16K records, 12 calls, best of 9,
// Zen 5): 150-156 -> 138-140 ns per record and thread. On AVX-512 the same scheme (3 x 8 sums)
// measured no faster than FeatureProductsNC's 16-token transpose, which it keeps.
template <int NR, int NT, bool kFull>
HWY_INLINE void FeatureRowsGroup(float* P, const float* QB, int i0, const float* bj, long rec,
                                 int t0, int n, int Rk, int j, int NC, int D) {
    static_assert(NT % 4 == 0, "partial sums are reduced four at a time");
    const DF d;
    VF v[NR][NT];
#pragma GCC unroll 32
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 32
        for (int u = 0; u < NT; u++) v[r][u] = hn::Zero(d);
    const float* row[NT];
#pragma GCC unroll 32
    for (int u = 0; u < NT; u++) row[u] = bj + long(std::min(t0 + u, n - 1)) * rec;
    for (int c = 0; c < NC; c++) {
        const int left = kFull ? kN : D - kN * c;
        VF q[NR];
#pragma GCC unroll 32
        for (int r = 0; r < NR; r++) q[r] = MaskedLoadF32(QB + size_t(i0 + r) * D + kN * c, left);
#pragma GCC unroll 32
        for (int u = 0; u < NT; u++) {
            const VF b = MaskedLoadF32(row[u] + kN * c, left);
#pragma GCC unroll 32
            for (int r = 0; r < NR; r++) v[r][u] = hn::MulAdd(b, q[r], v[r][u]);
        }
    }
    const hn::Full128<float> d4;
#pragma GCC unroll 32
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 32
        for (int u = 0; u < NT; u += 4)
            hn::StoreU(tiling::Sum4(v[r][u], v[r][u + 1], v[r][u + 2], v[r][u + 3]), d4,
                       P + PIndex(i0 + r, j, Rk, t0 + u));
}

template <bool kFull>
HWY_INLINE void FeatureProductsRows(float* P, const float* QB, int NQ, const float* recs, long rec,
                                    long off_bk, int Rk, int n, int D, LineShare pf) {
    constexpr int NR = 3, NT = 4;
    const int NC = (D + kN - 1) / kN;
    LineSpread spread(pf, Rk * ((n + NT - 1) / NT));
    for (int j = 0; j < Rk; j++) {
        const float* bj = recs + off_bk + long(j) * D;
        for (int t0 = 0; t0 < n; t0 += NT) {
            spread.step();
            int i = 0;
            for (; i + NR <= NQ; i += NR)
                FeatureRowsGroup<NR, NT, kFull>(P, QB, i, bj, rec, t0, n, Rk, j, NC, D);
            for (; i < NQ; i++)
                FeatureRowsGroup<1, NT, kFull>(P, QB, i, bj, rec, t0, n, Rk, j, NC, D);
        }
    }
}

#endif  // HWY_TARGET == HWY_AVX2

#if HWY_TARGET == HWY_AVX3
// AVX-512, float32 rows, D a multiple of 16 up to 128: feature products with the block's B_K
// rows transposed first, so that the products need no reduction. On AVX-512 a D = 64 product is 4
// multiply-adds, and FeatureProductsNC's transpose-add of the partial sums costs about 3 more
// operations per product, beside the B_K loads that straddle cache lines (in every other
// 1,568-byte record); here bt[d][t] = B_K[t][j][d] (16 x 16 transposes in registers, vec_math-inl.h
// TransposeBlock, 64 shuffles each: about 32 per token for two key ranks), and P[i][j][t0..t0+16)
// = sum_d QB[i][d] bt[d][t0..] runs as the value tiles do: NR query rows by the block's 2 vectors
// of tokens, each bt vector loaded once for 2 NR multiply-adds with the query numbers broadcast.
// Kernel alone (T6_kvonly, H 34, 16K records, Zen 5): 201-204 -> 151-152 ns per record and thread.

// P[i0 + r][j][t] for r < NR and the block's NV vectors of 16 tokens, from bt (D rows of kBlock).
template <int NR, int NV>
HWY_INLINE void FeatureRowsT(float* P, const float* QB, int i0, const float* bt, int Rk, int j,
                             int D) {
    const DF d;
    VF acc[NR][NV];
    for (int r = 0; r < NR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = hn::Zero(d);
    const float* q = QB + size_t(i0) * D;
    for (int c = 0; c < D; c++) {
        VF b[NV];
        for (int v = 0; v < NV; v++) b[v] = hn::Load(d, bt + size_t(c) * kBlock + v * kN);
        for (int r = 0; r < NR; r++) {
            const VF qr = hn::Set(d, q[size_t(r) * D + c]);
            for (int v = 0; v < NV; v++) acc[r][v] = hn::MulAdd(qr, b[v], acc[r][v]);
        }
    }
    for (int r = 0; r < NR; r++)
        for (int v = 0; v < NV; v++) hn::StoreU(acc[r][v], d, P + PIndex(i0 + r, j, Rk, v * kN));
}

// The last NQ % 6 rows: FeatureRowsT<rest> for the rest (NR counts down to it).
template <int NR, int NV>
HWY_INLINE void FeatureRowsTRest(float* P, const float* QB, int i0, int rest, const float* bt,
                                 int Rk, int j, int D) {
    if constexpr (NR > 0) {
        if (rest == NR)
            FeatureRowsT<NR, NV>(P, QB, i0, bt, Rk, j, D);
        else
            FeatureRowsTRest<NR - 1, NV>(P, QB, i0, rest, bt, Rk, j, D);
    }
}

// Groups of six rows, then the rest; a step of the prefetch spread after each.
template <int NV>
HWY_INLINE void FeatureRowsTAll(float* P, const float* QB, int NQ, const float* bt, int Rk, int j,
                                int D, LineSpread& spread) {
    constexpr int NR = 6;
    int i = 0;
    for (; i + NR <= NQ; i += NR) {
        FeatureRowsT<NR, NV>(P, QB, i, bt, Rk, j, D);
        spread.step();
    }
    FeatureRowsTRest<NR - 1, NV>(P, QB, i, NQ - i, bt, Rk, j, D);
    spread.step();
}

constexpr int kMaxTransposedD = 128;
// Query rows from which the transposed products run: T6_kvonly's heads (H >= 8). At full TPA's
// R_Q = 6 (small-t6) the two ways measured the same (93-95 ns per record and thread), and with
// one or two query rows the transposes would outweigh the products.
constexpr int kMinTransposedRows = 8;

HWY_INLINE void FeatureProductsT(float* P, const float* QB, int NQ, const float* recs, long rec,
                                 long off_bk, int Rk, int n, int D, LineShare pf) {
    static_assert(kBlock == 32 && kN == 16, "two vectors of 16 tokens per block");
    HWY_ALIGN float bt[kMaxTransposedD * kBlock];
    const int nv = n > kN ? 2 : 1;  // tokens past n repeat token n - 1 (never read)
    // A step after each transpose and after each group of query rows (FeatureRowsTAll).
    LineSpread spread(pf, Rk * (nv * (D / kN) + NQ / 6 + 1));
    for (int j = 0; j < Rk; j++) {
        for (int v = 0; v < nv; v++)
            for (int d0 = 0; d0 < D; d0 += kN) {
                TransposeBlock(recs + long(v) * kN * rec + off_bk + long(j) * D + d0, rec,
                               bt + size_t(d0) * kBlock + v * kN, kBlock, n - v * kN);
                spread.step();
            }
        if (nv == 2)
            FeatureRowsTAll<2>(P, QB, NQ, bt, Rk, j, D, spread);
        else
            FeatureRowsTAll<1>(P, QB, NQ, bt, Rk, j, D, spread);
    }
}
#endif  // HWY_TARGET == HWY_AVX3

// FeatureProductsNC for any number of chunks, the query row's chunks loaded again per product.
template <class Op>
HWY_INLINE void FeatureProductsAny(float* P, const typename Op::Q* QB, int NQ,
                                   const typename Op::R* recs, long rec, long off_bk, int Rk, int n,
                                   int D, LineShare pf) {
    const DF d;
    const int NC = (D + Op::kChunk - 1) / Op::kChunk;
    LineSpread spread(pf, NQ * Rk * ((n + kN - 1) / kN));
    for (int i = 0; i < NQ; i++) {
        const typename Op::Q* qb = QB + size_t(i) * D;
        for (int j = 0; j < Rk; j++) {
            const typename Op::R* bj = recs + off_bk + long(j) * D;
            for (int t0 = 0; t0 < n; t0 += kN) {
                VF v[kN];
                for (int u = 0; u < kN; u++) {
                    const typename Op::R* bk = bj + long(std::min(t0 + u, n - 1)) * rec;
                    VF a = hn::Zero(d);
                    for (int c = 0; c < NC; c++) {
                        const int left = D - Op::kChunk * c;
                        a = Op::MulAdd(a, Op::Load(bk + Op::kChunk * c, left),
                                       Op::LoadQ(qb + Op::kChunk * c, left));
                    }
                    v[u] = a;
                }
                hn::StoreU(TransposeSum(v), d, P + PIndex(i, j, Rk, t0));
                spread.step();
            }
        }
    }
}

// ---- Feature products over B_K grouped (TpaCacheDims::group, flash_decode.h) ----
// The cache holds each group of 16 tokens' B_K transposed: vector L = j*D + d of the group is
// B_K[g0 .. g0+16)[j][d], so P[i][j][t0 ..) = sum_d QB[i][d] B_K[t0 ..][j][d] is NR query rows by
// NU vectors of tokens of multiply-adds with the query numbers broadcast, read straight from the
// cache: no transposition (FeatureProductsT's 16 x 16 in registers) and no reduction of partial
// sums (FeatureProductsNC's transpose-add). A vector of N lanes (N <= 16) is a part of a group's
// vector: lane vector u of the block holds tokens u*N .. u*N + N - 1, in group u*N / 16 at lane
// u*N mod 16. Lanes past the block's n records hold other numbers of the group's slots (or
// zeros); their products are never read.

// P[i0 + r][j][u0*N ..) for r < NR and the NU lane vectors from u0; base[u]: lane vector u0 + u's
// group's first record plus its lane offset. kD, kVps > 0: D and the vectors per slot known at
// compile time (every preset's D = 64 and R_K = 2: runs of 8 vectors, each run in one record of
// the group), so that the runs need no division and unroll; 0: as dm says.
template <int NR, int NU, int kD = 0, int kVps = 0>
HWY_INLINE void FeatureRowsGrouped(float* P, const float* QB, int i0, const float* const* base,
                                   const TpaCacheDims& dm, int j, int u0, LineSpread& spread) {
    const DF d;
    VF acc[NR][NU];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) acc[r][u] = hn::Zero(d);
    const int D = kD > 0 ? kD : dm.D;
    const float* q = QB + size_t(i0) * D;
    // The products of `run` vectors from slot offset `off` of the lane vectors' records with the
    // query numbers from qc.
    const auto run_products = [&](long off, const float* qc, long run) HWY_ATTR
        __attribute__((always_inline)) {
        const float* b[NU];
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++) b[u] = base[u] + off;
#pragma GCC unroll 16
        for (long c = 0; c < run; c++) {
            VF bv[NU];
#pragma GCC unroll 4
            for (int u = 0; u < NU; u++) bv[u] = hn::LoadU(d, b[u] + c * kTpaGroup);
#pragma GCC unroll 8
            for (int r = 0; r < NR; r++) {
                const VF qr = hn::Set(d, qc[size_t(r) * D + c]);
#pragma GCC unroll 4
                for (int u = 0; u < NU; u++) acc[r][u] = hn::MulAdd(qr, bv[u], acc[r][u]);
            }
        }
        spread.step();
    };
    if constexpr (kVps > 0) {
        // Vector L = j*D + d is vector L % kVps of the slot of the group's record L / kVps.
        static_assert(kD % kVps == 0, "runs within slots");
        const long rec = dm.rec(), off_bk = dm.off_BK();
        for (int rr = 0; rr < kD / kVps; rr++)
            run_products((long(j) * (kD / kVps) + rr) * rec + off_bk, q + rr * kVps, kVps);
    } else {
        const long vps = dm.bk_vectors_per_slot(), L0 = long(j) * D;
        // Vectors L0 .. L0 + D in runs that lie in one record's slot (kTpaGroup floats apart).
        for (long L = L0; L < L0 + D;) {
            const long run = std::min(vps - L % vps, L0 + D - L);
            run_products(dm.bk_vector(L), q + (L - L0), run);
            L += run;
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
        for (int u = 0; u < NU; u++)
            hn::StoreU(acc[r][u], d, P + PIndex(i0 + r, j, dm.Rk, (u0 + u) * kN));
}

// The last NQ % 6 rows: FeatureRowsGrouped<rest> (NR counts down to it).
template <int NR, int NU, int kD, int kVps>
HWY_INLINE void FeatureRowsGroupedRest(float* P, const float* QB, int i0, int rest,
                                       const float* const* base, const TpaCacheDims& dm, int j,
                                       int u0, LineSpread& spread) {
    if constexpr (NR > 0) {
        if (rest == NR)
            FeatureRowsGrouped<NR, NU, kD, kVps>(P, QB, i0, base, dm, j, u0, spread);
        else
            FeatureRowsGroupedRest<NR - 1, NU, kD, kVps>(P, QB, i0, rest, base, dm, j, u0, spread);
    }
}

template <int NU, int kD = 0, int kVps = 0>
HWY_INLINE void FeatureRowsGroupedAll(float* P, const float* QB, int NQ, const float* const* base,
                                      const TpaCacheDims& dm, int j, int u0, LineSpread& spread) {
    constexpr int NR = 6;
    int i = 0;
    for (; i + NR <= NQ; i += NR)
        FeatureRowsGrouped<NR, NU, kD, kVps>(P, QB, i, base, dm, j, u0, spread);
    FeatureRowsGroupedRest<NR - 1, NU, kD, kVps>(P, QB, i, NQ - i, base, dm, j, u0, spread);
}

// Step 1 of a block of n records starting at a group (recs: its first record), B_K grouped.
// Registers: 6 query rows by 2 lane vectors of sums, 2 cache vectors and a broadcast (15; AVX2
// has 16). Against the records in place (FeatureProductsNC on AVX-512 for full TPA,
// FeatureProductsT for T6_kvonly, FeatureProductsRows on AVX2), kernel alone, small-t6's shape,
// 12 layers of 4K-64K records, both layouts in turn in one process, medians of 19 pairs, Zen 5:
// full TPA 0.955-0.978 of the time on AVX-512 and 0.995-1.002 on AVX2; T6_kvonly (H 34)
// 0.957-1.014 and 1.013-1.015 (docs/decode-bench.md, session 45).
template <int kNQ = 0, int kRk = 0>
HWY_NOINLINE void BlockFeaturesGrouped(float* P, const float* QB, int NQ, const float* recs,
                                       const TpaCacheDims& dm, int n, LineShare pf) {
    if constexpr (kNQ > 0) NQ = kNQ;
    const int Rk = kRk > 0 ? kRk : dm.Rk, D = dm.D;
#if HWY_TARGET == HWY_SCALAR
    (void)pf;                                  // no prefetch on the scalar reference
    for (int t = 0; t < (n + 3) / 4 * 4; t++)  // BlockScoresFull reads four tokens at a time
        for (int i = 0; i < NQ; i++)
            for (int j = 0; j < Rk; j++) {
                const float* a = QB + size_t(i) * D;
                float acc = 0.0f;
                for (int k = 0; k < D; k++) acc += a[k] * recs[dm.bk_at(std::min(t, n - 1), j, k)];
                P[PIndex(i, j, Rk, t)] = acc;
            }
#else
    static_assert(kTpaGroup % kN == 0 && kBlock % kTpaGroup == 0, "lane vectors within groups");
    const long rec = dm.rec();
    const int nu = (n + kN - 1) / kN;
    // A step of the prefetch spread after each run of vectors in one slot (FeatureRowsGrouped):
    // with a step per group of rows instead (2 per block at small-t6's shape), its bursts of
    // about 120 prefetches filled the core's outstanding misses and the prefetch instructions
    // waited, 45% of this step's samples (AVX-512, 16K records).
    const long vps = dm.bk_vectors_per_slot();
    long runs = 0;  // runs of vectors in one slot per query row group and lane vectors
    for (int j = 0; j < Rk; j++) runs += (long(j + 1) * D - 1) / vps - long(j) * D / vps + 1;
    LineSpread spread(pf, int(runs * ((nu + 1) / 2) * ((NQ + 5) / 6)));
    const float* base[kBlock / kN];
    for (int u = 0; u < nu; u++)
        base[u] = recs + long(u * kN / kTpaGroup) * kTpaGroup * rec + (u * kN) % kTpaGroup;
    // The presets' D = 64 with R_K = 2 compiled for its runs of 8 vectors (kernel's step alone,
    // one block in L1, small-t6's shape, AVX-512, Zen 5: 7.9-8.2 -> 7.3-7.5 ns per record).
    constexpr int kVps = kRk * 64 / kTpaGroup;
    const bool fixed = kRk > 0 && D == 64;
    for (int j = 0; j < Rk; j++)
        for (int u0 = 0; u0 < nu; u0 += 2) {
            if (fixed) {
                if constexpr (kVps > 0) {
                    if (u0 + 2 <= nu)
                        FeatureRowsGroupedAll<2, 64, kVps>(P, QB, NQ, base + u0, dm, j, u0, spread);
                    else
                        FeatureRowsGroupedAll<1, 64, kVps>(P, QB, NQ, base + u0, dm, j, u0, spread);
                }
            } else if (u0 + 2 <= nu) {
                FeatureRowsGroupedAll<2>(P, QB, NQ, base + u0, dm, j, u0, spread);
            } else {
                FeatureRowsGroupedAll<1>(P, QB, NQ, base + u0, dm, j, u0, spread);
            }
        }
#endif
}

// Step 1 of a block: the feature products P (PIndex) of n records. NC = ceil(D / kChunk) chosen
// at run time (a switch: this also runs inside the avx512bf16-attributed function, which generic
// lambdas would not inherit). One lane on SCALAR takes plain dot products, for tokens up to a
// multiple of 4 (BlockScoresFull reads four at a time).
template <class Op>
HWY_INLINE void BlockFeaturesBody(float* P, const typename Op::Q* QB, int NQ,
                                  const typename Op::R* recs, long rec, long off_bk, int Rk, int n,
                                  int D, LineShare pf) {
#if HWY_TARGET == HWY_SCALAR
    (void)pf;  // no prefetch on the scalar reference
    for (int t = 0; t < (n + 3) / 4 * 4; t++)
        for (int i = 0; i < NQ; i++)
            for (int j = 0; j < Rk; j++) {
                const typename Op::Q* a = QB + size_t(i) * D;
                const typename Op::R* b = recs + std::min(t, n - 1) * rec + off_bk + long(j) * D;
                float acc = 0.0f;
                for (int k = 0; k < D; k++) {
                    if constexpr (std::is_same_v<typename Op::R, uint16_t>)
                        acc += a[k] * bf16_to_float(b[k]);
                    else
                        acc += a[k] * float(b[k]);
                }
                P[PIndex(i, j, Rk, t)] = acc;
            }
#else
#if HWY_TARGET == HWY_AVX3
    if constexpr (std::is_same_v<Op, FeatureOpsF32>) {
        if (NQ >= kMinTransposedRows && D % kN == 0 && D <= kMaxTransposedD) {
            FeatureProductsT(P, QB, NQ, recs, rec, off_bk, Rk, n, D, pf);
            return;
        }
    }
#endif
#if HWY_TARGET == HWY_AVX2
    if constexpr (std::is_same_v<Op, FeatureOpsF32>) {
        if (D % kN == 0)
            FeatureProductsRows<true>(P, QB, NQ, recs, rec, off_bk, Rk, n, D, pf);
        else
            FeatureProductsRows<false>(P, QB, NQ, recs, rec, off_bk, Rk, n, D, pf);
        return;
    }
#endif
    switch ((D + Op::kChunk - 1) / Op::kChunk) {
#define T6_FP_CASE(NC)                                                                    \
    case NC:                                                                              \
        if (D == NC * Op::kChunk)                                                         \
            FeatureProductsNC<NC, Op, true>(P, QB, NQ, recs, rec, off_bk, Rk, n, D, pf);  \
        else                                                                              \
            FeatureProductsNC<NC, Op, false>(P, QB, NQ, recs, rec, off_bk, Rk, n, D, pf); \
        break;
        T6_FP_CASE(1)
        T6_FP_CASE(2)
        T6_FP_CASE(3)
        T6_FP_CASE(4)
        T6_FP_CASE(5)
        T6_FP_CASE(6)
        T6_FP_CASE(7)
        T6_FP_CASE(8)
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_NEON
        T6_FP_CASE(9)
        T6_FP_CASE(10)
        T6_FP_CASE(11)
        T6_FP_CASE(12)
        T6_FP_CASE(13)
        T6_FP_CASE(14)
        T6_FP_CASE(15)
        T6_FP_CASE(16)
#endif
#undef T6_FP_CASE
        default:
            // More chunks than the cases above (NEON's 4-lane vectors: D > 64).
            FeatureProductsAny<Op>(P, QB, NQ, recs, rec, off_bk, Rk, n, D, pf);
            break;
    }
#endif
}
// The steps of a block are functions of their own (HWY_NOINLINE): inlined into the task's long
// body, GCC kept its many live values across the inner loops and spilled and reloaded them there
// (AVX-512: 23 of the loop's ~140 instructions per token). The vdpbf16ps version stays inline (its
// leaves carry a target attribute that a separate function would not).
// kNQ, kRk > 0 (here and in the steps below): the ranks fixed at compile time (TpaRangeT: every
// preset's R_Q = 6, R_K = R_V = 2), so that GCC unrolls the loops over them; 0: as passed.
template <class Op, int kNQ = 0, int kRk = 0>
HWY_NOINLINE void BlockFeatures(float* P, const typename Op::Q* QB, int NQ,
                                const typename Op::R* recs, long rec, long off_bk, int Rk, int n,
                                int D, LineShare pf) {
    if constexpr (kNQ > 0) NQ = kNQ;
    if constexpr (kRk > 0) Rk = kRk;
    BlockFeaturesBody<Op>(P, QB, NQ, recs, rec, off_bk, Rk, n, D, pf);
}

#if HWY_TARGET == HWY_AVX3
// ---- bf16 cache on CPUs with AVX-512 BF16 (vdpbf16ps) ----
// Compiled for the AVX3 target with avx512bf16 added by attribute and run only where
// simd_native_bf16(). The leaf operations are plain `inline` with the attribute (not
// always_inline: an always_inline bf16 function inside an always_inline template without the
// attribute does not compile); they inline once the templates are inlined into TpaRangeDot.
// (T6_BF16_TARGET: flash_decode-inl.h.)

struct FeatureOpsBf16 {
    using Q = uint16_t;
    using R = uint16_t;
    static constexpr int kChunk = 32;
    // left: elements of the row from p on (D may end half-way through a chunk).
    static inline T6_BF16_TARGET VF Load(const uint16_t* p, int left) {
        const __mmask32 m = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
        return VF{_mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m, p))};
    }
    static inline T6_BF16_TARGET VF LoadQ(const uint16_t* p, int left) { return Load(p, left); }
    static inline T6_BF16_TARGET VF MulAdd(VF acc, VF a, VF b) {
        return VF{_mm512_dpbf16_ps(acc.raw, __m512bh(a.raw), __m512bh(b.raw))};
    }
};

// Value rows and weights as bf16 pairs: row k of B holds rows 2k and 2k+1 of the block
// interleaved column by column, the weight of row k holds both rows' weights, and vdpbf16ps does
// both rows' multiply-adds in one instruction.
struct ValueOpsBf16 {
    using E = Bf16Pair;
    static inline T6_BF16_TARGET VF Load(const Bf16Pair* p, int count) {
        const __mmask16 m = count >= 16  ? __mmask16(0xffff)
                            : count <= 0 ? __mmask16(0)
                                         : __mmask16((1u << count) - 1);
        return VF{_mm512_castsi512_ps(_mm512_maskz_loadu_epi32(m, p))};
    }
    static inline T6_BF16_TARGET VF Weight(const Bf16Pair* w) {
        return VF{_mm512_castsi512_ps(_mm512_set1_epi32(int(w->bits)))};
    }
    static inline T6_BF16_TARGET VF MulAdd(VF acc, VF w, VF b) {
        return VF{_mm512_dpbf16_ps(acc.raw, __m512bh(w.raw), __m512bh(b.raw))};
    }
};

// The block's value rows k = t*R_V + s (nr = n R_V of them) and their weights W (nr, Hp) as bf16
// pairs for values_tile: Bi (np, D) with Bi[p][d] = (B_V row 2p [d], row 2p+1 [d]) and
// Wp (np, Hp) with Wp[p][h] = (W[2p][h], W[2p+1][h]); an odd last row is paired with zeros.
// Returns np. D is a multiple of 16 here.
T6_BF16_TARGET int PackValuePairs(Bf16Pair* Bi, Bf16Pair* Wp, const uint16_t* recs, long rec,
                                  long off_bv, int Rv, int D, const float* W, int Hp, int n) {
    const int nr = n * Rv, np = (nr + 1) / 2;
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int p = 0; p < np; p++) {
        const int k0 = 2 * p, k1 = 2 * p + 1;
        const uint16_t* r0 = recs + long(k0 / Rv) * rec + off_bv + long(k0 % Rv) * D;
        const uint16_t* r1 = recs + long(k1 / Rv) * rec + off_bv + long(k1 % Rv) * D;
        for (int d = 0; d < D; d += 16) {
            const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + d));
            const __m256i b = k1 < nr ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1 + d))
                                      : _mm256_setzero_si256();
            const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
            _mm512_storeu_si512(Bi + size_t(p) * D + d, _mm512_permutexvar_epi16(idx, z));
        }
        for (int g = 0; g < Hp; g += 16) {
            const __m512 w0 = _mm512_loadu_ps(W + size_t(k0) * Hp + g);
            const __m512 w1 =
                k1 < nr ? _mm512_loadu_ps(W + size_t(k1) * Hp + g) : _mm512_setzero_ps();
            _mm512_storeu_si512(Wp + size_t(p) * Hp + g, Bf16PairLanes(w0, w1));
        }
    }
    return np;
}
#endif  // HWY_TARGET == HWY_AVX3

// Step 2 of a block, full TPA: scores St[t][h] = sum_j A_K[t][j][h] sum_i A_Q'[i][h] P[t][i][j],
// heads in lanes. kT tokens at a time, so that kT FMA chains over i are independent (kBlock is a
// multiple of kT; rows past n repeat row n-1 and are never read). kHold: the group's A_Q' rows
// (NQ <= 8) stay in registers across the tokens, AVX3 only (8 rows beside 2 x 8 accumulators, of
// 32 registers); otherwise they are reloaded per token group (AVX2's 16 registers).
template <int kT, bool kHold, typename R>
HWY_INLINE void ScoresGroup(float* St, const float* P, const float* AQt, const R* recs, long rec,
                            long off_ak, int H, int Hp, int NQ, int Rk, int n, int g,
                            LineSpread& spread) {
    const DF d;
    const int lanes = H - g;
    constexpr int kQ = 8;
    VF aq[kQ];
    if constexpr (kHold) {
#pragma GCC unroll 8
        for (int i = 0; i < kQ; i++)
            if (i < NQ) aq[i] = hn::LoadU(d, AQt + i * Hp + g);
    }
    const size_t di = PIndex(1, 0, Rk, 0);  // from query row i to i + 1 in P
    for (int t = 0; t < n; t += kT) {
        VF s[kT];
        const R* ak[kT];
#pragma GCC unroll 8
        for (int k = 0; k < kT; k++) {
            s[k] = hn::Zero(d);
            ak[k] = recs + std::min(t + k, n - 1) * rec + off_ak + g;
        }
        for (int j = 0; j < Rk; j++) {
            VF u[kT];
#pragma GCC unroll 8
            for (int k = 0; k < kT; k++) u[k] = hn::Zero(d);
            const float* pj = P + PIndex(0, j, Rk, t);  // tokens t.. in a row
            const auto mix = [&](VF a, const float* pi) {
#pragma GCC unroll 8
                for (int k = 0; k < kT; k++) u[k] = hn::MulAdd(a, hn::Set(d, pi[k]), u[k]);
            };
            if constexpr (kHold) {
#pragma GCC unroll 8
                for (int i = 0; i < kQ; i++)
                    if (i < NQ) mix(aq[i], pj + i * di);
            } else {
                for (int i = 0; i < NQ; i++) mix(hn::LoadU(d, AQt + i * Hp + g), pj + i * di);
            }
            const long o = long(j) * H;
#pragma GCC unroll 8
            for (int k = 0; k < kT; k++) s[k] = hn::MulAdd(RowLoad(ak[k] + o, lanes), u[k], s[k]);
        }
        float* st = St + size_t(t) * Hp + g;
#pragma GCC unroll 8
        for (int k = 0; k < kT; k++) hn::StoreU(s[k], d, st + size_t(k) * Hp);
        spread.step();
    }
}

// ScoresGroup<kT, false> for two key ranks (every preset's R_K): both ranks' mixes u0, u1 at once,
// so that 2 kT FMA chains over i run side by side instead of kT (AVX2: 8 instead of 4 chains of
// NQ dependent multiply-adds). The same operations in the same order per score as ScoresGroup:
// s = A_K[t][0] u0 (a product), then s += A_K[t][1] u1. Kernel alone (as FeatureProductsRows):
// 154-157 -> 152-153 ns per record and thread on AVX2 (the scores' share of the samples 10.0 ->
// 9.2%); AVX-512 keeps ScoresGroup<8, true>, whose 8 chains with the query rows held in registers
// measured the same.
template <int kT, typename R>
HWY_INLINE void ScoresGroupRk2(float* St, const float* P, const float* AQt, const R* recs, long rec,
                               long off_ak, int H, int Hp, int NQ, int n, int g,
                               LineSpread& spread) {
    const DF d;
    const int lanes = H - g;
    const size_t di = PIndex(1, 0, 2, 0);  // from query row i to i + 1 in P
    for (int t = 0; t < n; t += kT) {
        VF u0[kT], u1[kT];
#pragma GCC unroll 8
        for (int k = 0; k < kT; k++) u0[k] = u1[k] = hn::Zero(d);
        const float* p0 = P + PIndex(0, 0, 2, t);  // tokens t.. in a row, key rank 0
        const float* p1 = P + PIndex(0, 1, 2, t);
        for (int i = 0; i < NQ; i++) {
            const VF a = hn::LoadU(d, AQt + i * Hp + g);
#pragma GCC unroll 8
            for (int k = 0; k < kT; k++) {
                u0[k] = hn::MulAdd(a, hn::Set(d, p0[i * di + k]), u0[k]);
                u1[k] = hn::MulAdd(a, hn::Set(d, p1[i * di + k]), u1[k]);
            }
        }
        float* st = St + size_t(t) * Hp + g;
#pragma GCC unroll 8
        for (int k = 0; k < kT; k++) {
            const R* ak = recs + std::min(t + k, n - 1) * rec + off_ak + g;
            const VF s0 = hn::Mul(RowLoad(ak, lanes), u0[k]);
            hn::StoreU(hn::MulAdd(RowLoad(ak + H, lanes), u1[k], s0), d, st + size_t(k) * Hp);
        }
        spread.step();
    }
}

// Step 2 of a block, T6_kvonly: s[t][h] = ckv sum_j A_K[t][j][h] P[t][h][j] (ckv = scale / R_K;
// P's query rows are heads). X: scratch of kBlock * R_K * Hp floats.
// For R_K <= 2 on vector targets P (rows h R_K + j, tokens in a row) is transposed for the block
// at once (TransposeBlock), X[t][h R_K + j] = P[t][h][j], and each token's rows of heads are split
// from it in vectors (R_K 2: even and odd lanes, ConcatEven / ConcatOdd), lanes past H zeroed;
// otherwise Deinterleave gathers them number by number (which held about a fifth of an AVX-512
// kvonly kernel's samples at H 22). The same operations in the same order per score either way.
template <typename R>
HWY_NOINLINE void BlockScoresKvonly(float* St, const float* P, float* X, const R* recs, long rec,
                                    long off_ak, int H, int Hp, int Rk, int n, float ckv,
                                    LineShare pf) {
    const DF d;
    LineSpread spread(pf, n);
    const VF c_kv = hn::Set(d, ckv);
#if HWY_TARGET != HWY_SCALAR
    if (Rk <= 2) {
        const int M = H * Rk, Mp = Rk * Hp;  // Mp: a row of X, whole vectors of heads
        for (int r0 = 0; r0 < M; r0 += kN)
            for (int t0 = 0; t0 < n; t0 += kN)
                TransposeBlock(P + size_t(r0) * kBlock + t0, kBlock, X + size_t(t0) * Mp + r0, Mp,
                               M - r0);
        for (int t = 0; t < n; t++) {
            spread.step();
            const float* xt = X + size_t(t) * Mp;
            const R* ak = recs + t * rec + off_ak;
            for (int g = 0; g < Hp; g += kN) {
                const auto live = hn::FirstN(d, size_t(H - g));  // lanes past H: 0
                VF s;
                if (Rk == 1) {
                    s = hn::Mul(RowLoad(ak + g, H - g),
                                hn::IfThenElseZero(live, hn::LoadU(d, xt + g)));
                } else {
                    const VF lo = hn::LoadU(d, xt + 2 * g), hi = hn::LoadU(d, xt + 2 * g + kN);
                    const VF x0 = hn::IfThenElseZero(live, hn::ConcatEven(d, hi, lo));
                    const VF x1 = hn::IfThenElseZero(live, hn::ConcatOdd(d, hi, lo));
                    s = hn::MulAdd(RowLoad(ak + H + g, H - g), x1,
                                   hn::Mul(RowLoad(ak + g, H - g), x0));
                }
                hn::StoreU(hn::Mul(c_kv, s), d, St + size_t(t) * Hp + g);
            }
        }
        return;
    }
#endif
    for (int t = 0; t < n; t++) {
        spread.step();
        Deinterleave(P, t, Rk, H, Hp, X);
        const R* ak = recs + t * rec + off_ak;
        for (int g = 0; g < Hp; g += kN) {
            VF s = hn::Zero(d);
            for (int j = 0; j < Rk; j++)
                s = hn::MulAdd(RowLoad(ak + long(j) * H + g, H - g), hn::LoadU(d, X + j * Hp + g),
                               s);
            hn::StoreU(hn::Mul(c_kv, s), d, St + size_t(t) * Hp + g);
        }
    }
}

#if HWY_TARGET == HWY_AVX3
// Steps 2 and the softmax for the presets' ranks (R_Q = 6, R_K = R_V = 2) on AVX3, any records
// (BlockScoresSoftmaxGroups), kG <= 3 groups of N heads side by side (heads g0*N ..): each
// broadcast number of P feeds kG multiply-adds (ScoresGroup broadcast it once per group), the 6 x
// kG query vectors held in registers, and each token's kG exps run side by side (BlockSoftmax loops
// over the groups outside the tokens). The scores also take the block's maximum of each group, into
// row kBlock of St, so that the softmax needs no pass for it. The same operations in the same order
// per score and per weight as ScoresGroup and BlockSoftmax. Each step alone, one block in L1,
// small-t6's shape (H 34: three groups), Zen 5: scores 8.4-8.7 -> 6.1-6.4 ns per record, softmax
// 9.9-10.1 -> 8.8-8.9; the kernel from memory (12 x 64K records, two threads, with the grouped
// features' fixed runs; the old and new library in turn) 0.93-0.98 of the time, medium-t6's
// shape (H 47) 0.88-0.96 (docs/decode-bench.md, session 47).
template <int kG, typename R>
HWY_INLINE void ScoresGroups(float* St, const float* P, const float* AQt, const R* recs, long rec,
                             long off_ak, int H, int Hp, int n, int g0, LineSpread& spread) {
    const DF d;
    constexpr int NQ = 6;
    VF aq[NQ][kG], mx[kG];
#pragma GCC unroll 8
    for (int i = 0; i < NQ; i++)
#pragma GCC unroll 4
        for (int g = 0; g < kG; g++) aq[i][g] = hn::LoadU(d, AQt + i * Hp + (g0 + g) * kN);
#pragma GCC unroll 4
    for (int g = 0; g < kG; g++) mx[g] = hn::Set(d, -INFINITY);
    const size_t di = PIndex(1, 0, 2, 0);  // from query row i to i + 1 in P
    // Only the last group may have fewer than N heads (the chunks of BlockScoresSoftmaxGroups end
    // at the last group or before it), so the others' lane count is the constant N and RowLoad
    // loads whole rows with no count test; and every group's rows and scores lie at fixed offsets
    // (g N, H) from one pointer per token. With the offsets from g0 (a loop variable) GCC kept a
    // pointer per row and group and spilled: the three-group token loops took 104 (here) and 145
    // (SoftmaxGroups) instructions, 9 and 21 of them on the stack; now 85 and 113, 1 and 7. The
    // same numbers, bit for bit.
    // Kernel alone, small-t6's shape, AVX-512, Zen 5, both versions alternating in one process,
    // median ratios new / old: one thread in L2 0.964-0.975; two threads over 12 x 16K and
    // 12 x 64K records 0.958-0.991 (1.000 and 0.987 in a loaded hour); bf16 and q8 caches
    // 0.985-1.010 (docs/decode-bench.md, session 57).
    const int last = H - (g0 + kG - 1) * kN;
    const R* ak0 = recs + off_ak + g0 * kN;
    float* st0 = St + g0 * kN;
    for (int t = 0; t < n; t++) {
        const float* p0 = P + PIndex(0, 0, 2, t);  // key rank 0
        const float* p1 = P + PIndex(0, 1, 2, t);
        VF u0[kG], u1[kG];
#pragma GCC unroll 4
        for (int g = 0; g < kG; g++) u0[g] = u1[g] = hn::Zero(d);
#pragma GCC unroll 8
        for (int i = 0; i < NQ; i++) {
            const VF b0 = hn::Set(d, p0[i * di]), b1 = hn::Set(d, p1[i * di]);
#pragma GCC unroll 4
            for (int g = 0; g < kG; g++) {
                u0[g] = hn::MulAdd(aq[i][g], b0, u0[g]);
                u1[g] = hn::MulAdd(aq[i][g], b1, u1[g]);
            }
        }
        const R* ak = ak0 + t * rec;
        float* st = st0 + size_t(t) * Hp;
#pragma GCC unroll 4
        for (int g = 0; g < kG; g++) {
            const int lanes = g + 1 < kG ? kN : last;  // a constant but in the last group
            const VF s = hn::MulAdd(RowLoad(ak + H + g * kN, lanes), u1[g],
                                    hn::Mul(RowLoad(ak + g * kN, lanes), u0[g]));
            mx[g] = hn::Max(mx[g], s);
            hn::StoreU(s, d, st + g * kN);
        }
        spread.step();
    }
#pragma GCC unroll 4
    for (int g = 0; g < kG; g++) hn::StoreU(mx[g], d, St + size_t(kBlock) * Hp + (g0 + g) * kN);
}

// The online softmax of groups g0 .. g0 + kG (as BlockSoftmax, R_V = 2), the block's maximum
// from row kBlock of St (ScoresGroups).
template <int kG, typename R>
HWY_INLINE void SoftmaxGroups(float* W, float* m, float* l, float* alpha, const float* St,
                              const R* recs, long rec, long off_av, int H, int Hp, int n, float cv,
                              int g0, LineSpread& spread) {
    const DF d;
    const VF c_v = hn::Set(d, cv);
    VF mnew[kG], sum0[kG], sum1[kG];
#pragma GCC unroll 4
    for (int g = 0; g < kG; g++) {
        const int h = (g0 + g) * kN;
        const VF mo = hn::LoadU(d, m + h);
        mnew[g] = hn::Max(mo, hn::LoadU(d, St + size_t(kBlock) * Hp + h));
        hn::StoreU(ExpSoftmax(d, hn::Sub(mo, mnew[g])), d, alpha + h);  // m = -inf: 0
        sum0[g] = sum1[g] = hn::Zero(d);
    }
    // As in ScoresGroups: whole rows but in the last group, and every row, score and weight at a
    // fixed offset (g N, H, Hp) from one pointer per token.
    const int last = H - (g0 + kG - 1) * kN;
    const R* av0 = recs + off_av + g0 * kN;
    const float* st0 = St + g0 * kN;
    float* w0 = W + g0 * kN;
    for (int t = 0; t < n; t++) {
        const R* av = av0 + t * rec;
        const float* st = st0 + size_t(t) * Hp;
        float* w = w0 + size_t(t) * 2 * Hp;
#pragma GCC unroll 4
        for (int g = 0; g < kG; g++) {
            const int lanes = g + 1 < kG ? kN : last;  // as in ScoresGroups
            const VF e = ExpSoftmax<false, false>(d, hn::Sub(hn::LoadU(d, st + g * kN), mnew[g]));
            // Two sums taken in turn, as BlockSoftmax's.
            sum0[g] = hn::Add(sum0[g], e);
            std::swap(sum0[g], sum1[g]);
            const VF ec = hn::Mul(c_v, e);
            hn::StoreU(hn::Mul(ec, RowLoad(av + g * kN, lanes)), d, w + g * kN);
            hn::StoreU(hn::Mul(ec, RowLoad(av + H + g * kN, lanes)), d, w + Hp + g * kN);
        }
        spread.step();
    }
#pragma GCC unroll 4
    for (int g = 0; g < kG; g++) {
        const int h = (g0 + g) * kN;
        hn::StoreU(
            hn::MulAdd(hn::LoadU(d, l + h), hn::LoadU(d, alpha + h), hn::Add(sum0[g], sum1[g])), d,
            l + h);
        hn::StoreU(mnew[g], d, m + h);
    }
}

#endif  // HWY_TARGET == HWY_AVX3

template <typename R, int kNQ = 0, int kRk = 0>
HWY_NOINLINE void BlockScoresFull(float* St, const float* P, const float* AQt, const R* recs,
                                  long rec, long off_ak, int H, int Hp, int NQ, int Rk, int n,
                                  LineShare pf) {
    if constexpr (kNQ > 0) NQ = kNQ;
    if constexpr (kRk > 0) Rk = kRk;
    // Every path steps the prefetch spread once per group of kT tokens.
    const int kT = HWY_TARGET == HWY_AVX3 && NQ <= 8 ? 8 : 4;
    LineSpread spread(pf, (Hp / kN) * ((n + kT - 1) / kT));
    for (int g = 0; g < Hp; g += kN) {
#if HWY_TARGET == HWY_AVX3
        if (NQ <= 8) {
            ScoresGroup<8, true>(St, P, AQt, recs, rec, off_ak, H, Hp, NQ, Rk, n, g, spread);
            continue;
        }
#endif
        if (Rk == 2)
            ScoresGroupRk2<4>(St, P, AQt, recs, rec, off_ak, H, Hp, NQ, n, g, spread);
        else
            ScoresGroup<4, false>(St, P, AQt, recs, rec, off_ak, H, Hp, NQ, Rk, n, g, spread);
    }
}

// The online softmax of a block, lane-wise over heads (running max m, sum l; alpha: the factor of
// the accumulators), fused with the value weights W[t,s][h] = p[t][h] A_V[t][s][h] / R_V (q8:
// times a'_s(t) b'_s(t), on A_V's codes; step 3 then runs on B_V's codes).
template <typename R, int kRv = 0>
HWY_NOINLINE void BlockSoftmax(float* W, float* m, float* l, float* alpha, const float* St,
                               const R* recs, long rec, long off_av, long scale_off, int H, int Hp,
                               int Rk, int Rv, int n, float cv, LineShare pf) {
    if constexpr (kRv > 0) Rv = kRv;
    constexpr bool kQ8 = std::is_same_v<R, int8_t>;
    const DF d;
    LineSpread spread(pf, (Hp / kN) * n);
    const VF c_v = hn::Set(d, cv);
    // q8: fv[t * Rv + s] = a'_s(t) b'_s(t), once per block for every head group (Rv <= 64 checked
    // by the entry point).
    float fv[kQ8 ? kBlock * 64 : 1];
    if constexpr (kQ8) {
        const TpaCacheDims rows{H, Rk, Rv, 0};  // the rows of the scales
        for (int t = 0; t < n; t++) {
            const int8_t* r = recs + t * rec;
            for (int s = 0; s < Rv; s++)
                fv[t * Rv + s] =
                    RowScale(r, scale_off, rows.row_AV(s)) * RowScale(r, scale_off, rows.row_BV(s));
        }
    }
    for (int g = 0; g < Hp; g += kN) {
        const int lanes = H - g;
        const VF mo = hn::LoadU(d, m + g);
        // The block's maximum over four independent chains and the sum over two (one chain of
        // dependent max / add per token waited on their latency: the max loop alone held 18% of
        // this function's samples, kernel in L2 on an AVX-512 Xeon).
        VF mb0 = hn::Set(d, -INFINITY), mb1 = mb0, mb2 = mb0, mb3 = mb0;
        int t = 0;
        for (; t + 4 <= n; t += 4) {
            mb0 = hn::Max(mb0, hn::LoadU(d, St + size_t(t) * Hp + g));
            mb1 = hn::Max(mb1, hn::LoadU(d, St + size_t(t + 1) * Hp + g));
            mb2 = hn::Max(mb2, hn::LoadU(d, St + size_t(t + 2) * Hp + g));
            mb3 = hn::Max(mb3, hn::LoadU(d, St + size_t(t + 3) * Hp + g));
        }
        for (; t < n; t++) mb0 = hn::Max(mb0, hn::LoadU(d, St + size_t(t) * Hp + g));
        const VF mnew = hn::Max(mo, hn::Max(hn::Max(mb0, mb1), hn::Max(mb2, mb3)));
        const VF al = ExpSoftmax(d, hn::Sub(mo, mnew));  // m = -inf: 0
        // Two sums taken in turn (swapped, not indexed: an array indexed by t & 1 lived on the
        // stack, a store and a reload per token).
        VF sum0 = hn::Zero(d), sum1 = hn::Zero(d);
        for (t = 0; t < n; t++) {
            const VF e =
                ExpSoftmax<false, false>(d, hn::Sub(hn::LoadU(d, St + size_t(t) * Hp + g), mnew));
            sum0 = hn::Add(sum0, e);
            std::swap(sum0, sum1);
            spread.step();
            const VF ec = hn::Mul(c_v, e);
            const R* av = recs + t * rec + off_av + g;
            if constexpr (kQ8) {
                // W on A_V's codes, times a'_s(t) b'_s(t) (step 3 runs on B_V's codes).
                for (int s = 0; s < Rv; s++)
                    hn::StoreU(hn::Mul(hn::Mul(ec, hn::Set(d, fv[t * Rv + s])),
                                       RowLoad(av + long(s) * H, lanes)),
                               d, W + (size_t(t) * Rv + s) * Hp + g);
            } else {
                for (int s = 0; s < Rv; s++)
                    hn::StoreU(hn::Mul(ec, RowLoad(av + long(s) * H, lanes)), d,
                               W + (size_t(t) * Rv + s) * Hp + g);
            }
        }
        hn::StoreU(hn::MulAdd(hn::LoadU(d, l + g), al, hn::Add(sum0, sum1)), d, l + g);
        hn::StoreU(mnew, d, m + g);
        hn::StoreU(al, d, alpha + g);
    }
}

#if HWY_TARGET == HWY_AVX3
// Steps 2 and the softmax of a block (full TPA with the presets' ranks, AVX3): the head groups
// three at a time (6 x 3 query vectors, 6 sums and 3 maxima in 27 of 32 registers). Any records:
// float32, bf16 (widened where read, or read by the vdpbf16ps path, which shares steps 2 and the
// softmax) and q8 (scores on A_K's codes, P holding the row scales; its softmax folds the value
// rows' scales in, BlockSoftmax, which takes the block's maximum itself).
template <typename R>
HWY_NOINLINE void BlockScoresSoftmaxGroups(float* St, float* W, float* m, float* l, float* alpha,
                                           const float* P, const float* AQt, const R* recs,
                                           long rec, long scale_off, const TpaCacheDims& dm, int n,
                                           LineShare score_pf, LineShare softmax_pf) {
    const int H = dm.H, G = (H + kN - 1) / kN, Hp = G * kN, chunks = (G + 2) / 3;
    constexpr float kHalf = 0.5f;  // 1 / R_V
    LineSpread score_spread(score_pf, chunks * n), softmax_spread(softmax_pf, chunks * n);
    for (int g0 = 0; g0 < G; g0 += 3) {
        if (G - g0 >= 3)
            ScoresGroups<3>(St, P, AQt, recs, rec, dm.off_AK(), H, Hp, n, g0, score_spread);
        else if (G - g0 == 2)
            ScoresGroups<2>(St, P, AQt, recs, rec, dm.off_AK(), H, Hp, n, g0, score_spread);
        else
            ScoresGroups<1>(St, P, AQt, recs, rec, dm.off_AK(), H, Hp, n, g0, score_spread);
    }
    if constexpr (std::is_same_v<R, int8_t>) {
        BlockSoftmax<R, 2>(W, m, l, alpha, St, recs, rec, dm.off_AV(), scale_off, H, Hp, 2, 2, n,
                           kHalf, softmax_pf);
        return;
    }
    for (int g0 = 0; g0 < G; g0 += 3) {
        if (G - g0 >= 3)
            SoftmaxGroups<3>(W, m, l, alpha, St, recs, rec, dm.off_AV(), H, Hp, n, kHalf, g0,
                             softmax_spread);
        else if (G - g0 == 2)
            SoftmaxGroups<2>(W, m, l, alpha, St, recs, rec, dm.off_AV(), H, Hp, n, kHalf, g0,
                             softmax_spread);
        else
            SoftmaxGroups<1>(W, m, l, alpha, St, recs, rec, dm.off_AV(), H, Hp, n, kHalf, g0,
                             softmax_spread);
    }
}
#endif  // HWY_TARGET == HWY_AVX3

// WidenRows for rows of len numbers, len a multiple of N: whole vectors, aligned stores, no count
// check per vector; kLen > 0 fixes len at compile time (every preset's R_K D = R_V D = 128), so
// that the loop unrolls. Against the general loop (a count check and an unaligned store per
// vector), small-t6's q8 kernel alone (two threads, AVX-512, alternating rounds) took 0.96-0.99 of
// the time over 12 x 4K records (median 0.98) and 0.95-1.03 over 12 x 64K (0.98) in a quiet half
// hour, 0.92 and 0.90 (medians) in a noisier one; one thread in L2 0.88-0.99 (0.97); AVX2 0.95-0.97
// (docs/decode-bench.md, session 48).
template <int kLen, typename R>
HWY_INLINE void WidenWholeRows(float* HWY_RESTRICT out, const R* recs, long rec, long off, int len,
                               int n) {
    static_assert(kLen % kN == 0, "whole vectors");
    const int L = kLen > 0 ? kLen : len;
    const DF d;
    for (int t = 0; t < n; t++) {
        const R* src = recs + t * rec + off;
        float* dst = out + size_t(t) * L;
        for (int k = 0; k < L; k += kN) hn::Store(LoadF32(src + k), d, dst + k);
    }
}

// Rows [off, off + len) of the block's n records widened to float32 into buf (n rows of len
// floats in order, no scale; a short last vector's zeros past a row are overwritten by the next
// row, and buf has N floats of room after the last): q8 codes and bf16 numbers of B_K and B_V,
// which the feature products and the value tiles read once per query row and once per tile of
// heads (widening at every read costs more than this pass). Returns buf's data.
template <typename R>
HWY_INLINE float* WidenRows(std::vector<float>& buf, const R* recs, long rec, long off, int len,
                            int n) {
    const DF d;
    // 64-byte aligned (align64): unaligned, small-t6's q8 kernel alone in L2 took 78-88 against
    // 66-74 ns per record on a Xeon with AVX-512 (docs/decode-bench.md session 29).
    buf.resize(size_t(kBlock) * len + kN + 16);
    float* const out = align64(buf.data());
    if (len == 128) {
        WidenWholeRows<128>(out, recs, rec, off, len, n);
        return out;
    }
    if (len % kN == 0) {  // (out is aligned, and so is every row)
        WidenWholeRows<0>(out, recs, rec, off, len, n);
        return out;
    }
    float* dst = out;
    for (int t = 0; t < n; t++, dst += len) {
        const R* src = recs + t * rec + off;
        for (int k = 0; k < len; k += kN) hn::StoreU(RowLoad(src + k, len - k), d, dst + k);
    }
    return out;
}

// The records of the block `ahead` blocks after the one starting at j (blocks as TpaRangeT
// steps them: at most kBlock records, never across a cache block), for the value tiles to
// prefetch; none past j1 (the task's prefetch limit, Task::ahead: its own end or the end of the
// thread's tasks that follow it). On the range's first block (first: no earlier task of the
// thread ended where it starts) the blocks between are prefetched at once, since no earlier
// block's tiles did.
template <int ahead, typename T>
NextBlock AheadBlock(const CacheBlocks<T>& cache, int j, int j1, long rec, bool first) {
    for (int k = 1; k < ahead && j < j1; k++) {
        const int n = cache.block(j, j1, kBlock);
        if (first) {
            const char* p = reinterpret_cast<const char*>(cache.at(j, rec));
            for (long l = 0, lines = (n * rec * long(sizeof(T)) + 63) / 64; l < lines; l++)
                __builtin_prefetch(p + 64 * l, 0, 2);
        }
        j += n;
    }
    NextBlock next;
    // Into L1 over a float32 cache where flash_prefetch_l1() (flash_decode.h), else into L2.
    next.to_l1 =
        std::is_same_v<T, float> && flash_detail::prefetch_to_l1.load(std::memory_order_relaxed);
    if (j < j1) {
        next.base = reinterpret_cast<const char*>(cache.at(j, rec));
        next.rec_bytes = rec * long(sizeof(T));
        next.n = cache.block(j, j1, kBlock);
    }
    return next;
}

// One task of FlashTPA: query q over cache records [task.j0, task.j1), prefetching up to
// task.ahead. kDot: a bf16 cache read as bf16 and multiplied with vdpbf16ps (AVX3 only);
// T = int8_t: a q8 cache read in place (A_K and A_V codes widened in registers, B_K and B_V by
// WidenRows, row scales folded in); T = uint16_t without kDot: a bf16 cache read in place the same
// way; float: the records as they are.
template <typename T, bool kDot>
HWY_INLINE void TpaRangeT(const TpaQuery& q, const CacheBlocks<T>& cache, const Task& task,
                          const TpaCacheDims& dm, float scale, Partial part,
                          std::vector<float>& buf, std::vector<float>& sc) {
    constexpr bool kQ8 = std::is_same_v<T, int8_t>;
    // kW16: a bf16 cache read in place and widened in registers (as the q8 codes are), not
    // copied to float32 block by block.
    constexpr bool kW16 = std::is_same_v<T, uint16_t> && !kDot;
    static_assert(!(kQ8 && kDot));
    using R = std::conditional_t<kDot || kW16, uint16_t, std::conditional_t<kQ8, int8_t, float>>;
    using Qt = std::conditional_t<kDot, uint16_t, float>;
    const DF d;
    const int j0 = task.j0, j1 = task.j1;
    const bool full = q.A != nullptr;
    const int H = dm.H, Rk = dm.Rk, Rv = dm.Rv, D = dm.D, NQ = full ? q.Rq : H;
    const int G = (H + kN - 1) / kN, Hp = kN * G;
    // q8: records of L.bytes int8 elements, the codes at the float record's offsets (one code per
    // number, rows in the same order), then the row scales, one per row in record order
    // (TpaCacheDims::row_AK, row_AV, row_BK, row_BV).
    long rec = dm.rec(), scale_off = 0;
    if constexpr (kQ8) {
        const Q8Layout L = q8_layout(dm);
        rec = L.bytes;
        scale_off = L.scale_off;
    }
    thread_local std::vector<float> bkf;  // q8, bf16: the block's B_K rows as float32
    thread_local std::vector<float> bvf;  // q8, bf16: the block's B_V rows as float32
    const size_t nAQ = size_t(NQ) * Hp, nS = size_t(kBlock + 1) * Hp, nW = size_t(kBlock) * Rv * Hp,
                 nP = size_t(NQ) * Rk * kBlock, nX = full ? 0 : size_t(kBlock) * Hp * Rk;
    // Every region is written before it is read, except the padded heads of AQt and the running
    // sums l, set below (no memset of the whole scratch per task).
    sc.resize(nAQ + nS + nW + nP + nX + 3 * size_t(Hp));
    float* AQt = sc.data();  // (NQ, Hp) A_Q transposed and scaled (full TPA)
    float* St = AQt + nAQ;   // (kBlock + 1, Hp) scores, then probabilities; the block's max
    float* W = St + nS;      // (kBlock*Rv, Hp) value weights
    float* P = W + nW;       // (NQ*Rk, kBlock) feature products (PIndex)
    float* X = P + nP;       // kvonly: BlockScoresKvonly's scratch (none for full TPA)
    float* m = X + nX;       // (Hp) running max
    float* l = m + Hp;       // (Hp) running sum
    float* alpha = l + Hp;   // (Hp) rescaling of acc
    std::fill(AQt, AQt + nAQ, 0.0f);
    if (full)
        for (int i = 0; i < NQ; i++)
            for (int h = 0; h < H; h++) AQt[i * Hp + h] = q.A[h * NQ + i] * scale / float(NQ * Rk);
    // The running max and sum continue the partial's (a q8 cache is read in chunks); padded heads
    // start empty.
    for (int h = 0; h < Hp; h++) {
        m[h] = h < H ? part.m[h] : -INFINITY;
        l[h] = h < H ? part.l[h] : 0.0f;
    }
    const Qt* qb;  // the query factor as the block is read
#if HWY_TARGET == HWY_AVX3
    thread_local std::vector<uint16_t> qb16;   // kDot: the query factor in bf16
    thread_local std::vector<Bf16Pair> pairs;  // kDot: the block's value rows and weights, paired
    if constexpr (kDot) {
        qb16.resize(size_t(NQ) * D);
        to_bf16_serial(qb16.data(), q.B, qb16.size());
        pairs.resize(size_t(kBlock * Rv + 1) / 2 * (D + Hp) + 16);
        qb = qb16.data();
    } else {
        qb = q.B;
    }
#else
    static_assert(!kDot);
    qb = q.B;
#endif
    // How many blocks ahead the value tiles prefetch: two for float32 records on AVX3, one
    // elsewhere. On the Zen 5 machine (AVX-512, 1 MB L2 per core), 4 x 16K records from memory,
    // two threads, ns per token and thread (medians of alternating rounds): f32 AVX3 147-154 ->
    // 118-142 with two blocks, while the widened bf16 records (AVX3 without BF16) went 118-124 ->
    // 133-138 and f32 AVX2 162-187 -> 174-196; vdpbf16ps over bf16 was unchanged
    // (docs/decode-bench.md).
    constexpr int kAhead = HWY_TARGET == HWY_AVX3 && std::is_same_v<T, float> ? 2 : 1;
    // Sixteenths of the ahead block's records that steps 1, 2 and the softmax prefetch, spread
    // over their loops; the value tiles prefetch the rest. With the value tiles alone, the memory
    // stream ran only during step 3 (about half of a block's time). Kernel alone, small-t6's
    // shape, 12 x 64K records, two threads, Xeon with AVX-512, ns per record:
    //  - AVX3 (two blocks ahead): value tiles alone 86.0-91.3; features 6/16 79.9-84.5;
    //    features 5, scores 2, softmax 2 79.8-83.4 (T6_kvonly at H 34: 113-117 -> 102-103).
    //  - AVX2 (one block ahead): value tiles alone 99.5-107.1; features 6/16 2% slower;
    //    features 2, softmax 2 91.1-94.7 (T6_kvonly at H 22: 105.0-109.4 -> 98.3-103.6). (AVX2's
    //    rank mixing for R_K = 2, ScoresGroupRk2, takes no share.)
    // The bf16 cache (no change measured) keeps the value tiles alone, as does the q8 cache (not
    // tried: its kernel is bound by its arithmetic).
    constexpr bool kF32 = std::is_same_v<T, float>;
    constexpr bool kAvx3 = HWY_TARGET == HWY_AVX3, kAvx2 = HWY_TARGET == HWY_AVX2;
    constexpr int kPfFeatures = !kF32 ? 0 : kAvx3 ? 5 : kAvx2 ? 2 : 0;
    constexpr int kPfScores = kF32 && kAvx3 ? 2 : 0;
    constexpr int kPfSoftmax = !kF32 ? 0 : kAvx3 || kAvx2 ? 2 : 0;
    // Float32 records on the vector targets with every preset's ranks (full TPA, R_Q = 6, R_K =
    // R_V = 2) take steps 1, 2 and the softmax compiled for those ranks (their loops unrolled).
    // Kernel alone, small-t6's shape from memory, two threads, Zen 5, paired medians: 0.921-0.962
    // of the time on AVX2, 0.942-0.983 on AVX-512 (docs/decode-bench.md, session 39). Other caches
    // and ranks keep the run-time loops (each specialisation adds to this file's compile time).
    constexpr bool kRankSpecs = kF32 && HWY_TARGET != HWY_SCALAR;
    // Full TPA with every preset's ranks (R_Q = 6, R_K = R_V = 2): on AVX3 steps 2 and the softmax
    // of any records take the head groups three at a time (BlockScoresSoftmaxGroups).
    const bool ranks_622 = full && NQ == 6 && Rk == 2 && Rv == 2;
    const bool preset_ranks = kRankSpecs && ranks_622;
    // Blocks of kBlock records, never across a cache block (CacheBlocks).
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = cache.block(b0, j1, kBlock);
        const R* recs;
        if constexpr (kDot || kQ8 || kW16)
            recs = cache.at(b0, rec);
        else
            recs = RecordsF32(cache.at(b0, rec), rec, 0, n, buf);
        // The block kAhead blocks on, prefetched while this one runs: its first records by steps
        // 1 and 2 and the softmax, the rest by the value tiles (step 3); past j1 into the
        // thread's next task, and on the first block at once unless the thread's previous task
        // (ending at j0) prefetched it.
        NextBlock next = AheadBlock<kAhead>(cache, b0 + n, std::max(j1, task.ahead), rec,
                                            b0 == j0 && !task.cont);
        const int nf = next.n * kPfFeatures / 16, ns = next.n * kPfScores / 16,
                  nx = next.n * kPfSoftmax / 16;
        const auto lines_of = [&](int nr) { return (long(nr) * next.rec_bytes + 63) / 64; };
        const LineShare feature_lines{next.base, 0, lines_of(nf), next.to_l1};
        const LineShare score_lines{next.base, lines_of(nf), lines_of(nf + ns), next.to_l1};
        const LineShare softmax_lines{next.base, lines_of(nf + ns), lines_of(nf + ns + nx),
                                      next.to_l1};
        next.base += long(nf + ns + nx) * next.rec_bytes;
        next.n -= nf + ns + nx;
        // 1. Feature products, reduced N at a time.
#if HWY_TARGET == HWY_AVX3
        if constexpr (kDot)
            BlockFeaturesBody<FeatureOpsBf16>(P, qb, NQ, recs, rec, dm.off_BK(), Rk, n, D,
                                              feature_lines);
        else
#endif
            if constexpr (kQ8 || kW16) {
            BlockFeatures<FeatureOpsF32>(P, qb, NQ,
                                         WidenRows(bkf, recs, rec, dm.off_BK(), Rk * D, n),
                                         long(Rk) * D, 0, Rk, n, D, feature_lines);
        } else if (dm.group > 0) {
            // B_K grouped: the block starts at a group (the split's tasks start at multiples of
            // 16 records, run_split's align, and cache blocks hold whole groups).
            if (preset_ranks) {
                if constexpr (kRankSpecs)
                    BlockFeaturesGrouped<6, 2>(P, qb, NQ, recs, dm, n, feature_lines);
            } else {
                BlockFeaturesGrouped(P, qb, NQ, recs, dm, n, feature_lines);
            }
        } else if (preset_ranks) {
            BlockFeatures<FeatureOpsF32, 6, 2>(P, qb, NQ, recs, rec, dm.off_BK(), Rk, n, D,
                                               feature_lines);
        } else {
            BlockFeatures<FeatureOpsF32>(P, qb, NQ, recs, rec, dm.off_BK(), Rk, n, D,
                                         feature_lines);
        }
        // q8: the products were of B_K's codes; scale P[t][i][j] by b_j(t) and by a_j(t), so that
        // step 2 runs on A_K's codes. P's rows hold the block's tokens in a row (PIndex): each is
        // scaled by the tokens' factors in vectors (past n the factors are 0; never read).
        if constexpr (kQ8)
            for (int j = 0; j < Rk; j++) {
                HWY_ALIGN float f[kBlock];
                for (int t = 0; t < kBlock; t++)
                    f[t] = t < n ? RowScale(recs + t * rec, scale_off, dm.row_AK(j)) *
                                       RowScale(recs + t * rec, scale_off, dm.row_BK(j))
                                 : 0.0f;
                for (int i = 0; i < NQ; i++) {
                    float* pij = P + PIndex(i, j, Rk, 0);
                    for (int t = 0; t < kBlock; t += kN)
                        hn::StoreU(hn::Mul(hn::LoadU(d, pij + t), hn::Load(d, f + t)), d, pij + t);
                }
            }
        // 2. Rank mixing, heads in lanes (the cache stores A_K and A_V rank-major, so a row of
        // N heads is one masked load; lanes past H read the next factor of the same record).
        // Full TPA: s[t][h] = sum_j A_K[t][j][h] sum_i A_Q'[i][h] P[t][i][j], four tokens at a
        // time so that the FMA chains over i are independent (kBlock is a multiple of 4; rows
        // past n repeat row n-1 and are never read). Then the online softmax, lane-wise over
        // heads, fused with the value weights.
        if (!full)
            BlockScoresKvonly<R>(St, P, X, recs, rec, dm.off_AK(), H, Hp, Rk, n, scale / float(Rk),
                                 score_lines);
#if HWY_TARGET == HWY_AVX3
        if (ranks_622) {
            BlockScoresSoftmaxGroups<R>(St, W, m, l, alpha, P, AQt, recs, rec, scale_off, dm, n,
                                        score_lines, softmax_lines);
        } else
#endif
            if (preset_ranks) {
            if constexpr (kRankSpecs) {  // (not instantiated for other records)
                BlockScoresFull<R, 6, 2>(St, P, AQt, recs, rec, dm.off_AK(), H, Hp, NQ, Rk, n,
                                         score_lines);
                BlockSoftmax<R, 2>(W, m, l, alpha, St, recs, rec, dm.off_AV(), scale_off, H, Hp, Rk,
                                   Rv, n, 1.0f / float(Rv), softmax_lines);
            }
        } else {
            if (full)
                BlockScoresFull<R>(St, P, AQt, recs, rec, dm.off_AK(), H, Hp, NQ, Rk, n,
                                   score_lines);
            BlockSoftmax<R>(W, m, l, alpha, St, recs, rec, dm.off_AV(), scale_off, H, Hp, Rk, Rv, n,
                            1.0f / float(Rv), softmax_lines);
        }
        // 3. Values in head tiles, prefetching the next block meanwhile.
#if HWY_TARGET == HWY_AVX3
        if constexpr (kDot) {
            // 64-byte aligned, as in WidenRows (D and Hp are multiples of 16 here).
            Bf16Pair* Bi = align64(pairs.data());
            Bf16Pair* Wp = Bi + size_t(kBlock * Rv + 1) / 2 * D;
            const int np = PackValuePairs(Bi, Wp, recs, rec, dm.off_BV(), Rv, D, W, Hp, n);
            values_tiles<ValueOpsBf16>(part.acc, H, D, 6, Wp, Hp, 1, Bi, D, 0, np, alpha, next);
        } else
#endif
            if constexpr (kQ8 || kW16) {
            // q8: B_V's codes, unscaled (a'_s(t) b'_s(t) is in W).
            values_tiles<OpF32>(part.acc, H, D, 6, W, Hp, Rv,
                                WidenRows(bvf, recs, rec, dm.off_BV(), Rv * D, n), long(Rv) * D, 0,
                                n, alpha, next, kValueCols);
        } else {
            values_tiles<OpF32>(part.acc, H, D, 6, W, Hp, Rv, recs, rec, dm.off_BV(), n, alpha,
                                next, kValueCols);
        }
    }
    for (int h = 0; h < H; h++) part.m[h] = m[h], part.l[h] = l[h];
}

}  // namespace

// The per-target entry points; false: D is not one of the vector kernel's (caller falls back).
bool TpaRangeF32(const TpaQuery& q, const CacheBlocks<float>& cache, const flash_detail::Task& t,
                 const TpaCacheDims& dm, float scale, flash_detail::Partial part,
                 std::vector<float>& buf, std::vector<float>& sc) {
    if (dm.D > kMaxD) return false;
    TpaRangeT<float, false>(q, cache, t, dm, scale, part, buf, sc);
    return true;
}
bool TpaRangeBf16(const TpaQuery& q, const CacheBlocks<uint16_t>& cache,
                  const flash_detail::Task& t, const TpaCacheDims& dm, float scale,
                  flash_detail::Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    if (dm.D > kMaxD) return false;
    TpaRangeT<uint16_t, false>(q, cache, t, dm, scale, part, buf, sc);
    return true;
}
// A q8 cache read in place (false also for more than 64 value ranks: the caller dequantizes).
bool TpaRangeQ8(const TpaQuery& q, const CacheBlocks<int8_t>& cache, const flash_detail::Task& t,
                const TpaCacheDims& dm, float scale, flash_detail::Partial part,
                std::vector<float>& buf, std::vector<float>& sc) {
    if (dm.D > kMaxD || dm.Rv > 64) return false;
    TpaRangeT<int8_t, false>(q, cache, t, dm, scale, part, buf, sc);
    return true;
}
// vdpbf16ps on the bf16 cache (AVX3 with AVX512_BF16; D a multiple of 16). Only called where
// simd_bf16_dot_decode(); the other targets' copies widen like TpaRangeBf16.
#if HWY_TARGET == HWY_AVX3
T6_BF16_TARGET
#endif
bool TpaRangeDot(const TpaQuery& q, const CacheBlocks<uint16_t>& cache, const flash_detail::Task& t,
                 const TpaCacheDims& dm, float scale, flash_detail::Partial part,
                 std::vector<float>& buf, std::vector<float>& sc) {
    if (dm.D > kMaxD) return false;
#if HWY_TARGET == HWY_AVX3
    if (dm.D % 16 == 0) {
        TpaRangeT<uint16_t, true>(q, cache, t, dm, scale, part, buf, sc);
        return true;
    }
#endif
    TpaRangeT<uint16_t, false>(q, cache, t, dm, scale, part, buf, sc);
    return true;
}

// y = ExpSoftmax(x) (the softmax's exp above), row by row for tests.
void ExpSoftmaxRow(float* y, const float* x, int n) {
    const DF d;
    int i = 0;
    for (; i + kN <= n; i += kN) hn::StoreU(ExpSoftmax(d, hn::LoadU(d, x + i)), d, y + i);
    if (i < n) {
        HWY_ALIGN float t[kN] = {};
        for (int k = 0; k < n - i; k++) t[k] = x[i + k];
        hn::Store(ExpSoftmax(d, hn::Load(d, t)), d, t);
        for (int k = 0; k < n - i; k++) y[i + k] = t[k];
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(TpaRangeF32);
HWY_EXPORT(TpaRangeBf16);
HWY_EXPORT(TpaRangeDot);
HWY_EXPORT(TpaRangeQ8);
HWY_EXPORT(ExpSoftmaxRow);

void exp_softmax(float* y, const float* x, int n) {
    HWY_DYNAMIC_DISPATCH(ExpSoftmaxRow)(y, x, n);
}

using namespace flash_detail;

namespace {

constexpr int kSub = 8;  // records per value sub-block (8 * rec floats stay in L1)

// acc[0..64) += sum_{j < n} p[j] * c * sum_s rec_j[off_av + s] * rec_j[off_bv + s*64 ..]: the
// value aggregation of one head over n records, with the output row held in registers.
inline void values_d64(float* __restrict acc, const float* p, const float* recs, int n, long rec,
                       long off_av, long stride_av, long off_bv, int Rv, float c) {
    float a[64];
    for (int d = 0; d < 64; d++) a[d] = acc[d];
    for (int jj = 0; jj < n; jj++) {
        const float* r = recs + jj * rec;
        const float w = p[jj] * c;
        for (int s = 0; s < Rv; s++) {
            const float ws = w * r[off_av + s * stride_av];
            const float* b = r + off_bv + s * 64;
#pragma omp simd
            for (int d = 0; d < 64; d++) a[d] += ws * b[d];
        }
    }
    for (int d = 0; d < 64; d++) acc[d] = a[d];
}

// One task of FlashTPA: query q over cache records [j0, j1). Portable version (any D; the
// vector kernel takes D <= 128).
template <typename T>
void tpa_range_generic(const TpaQuery& q, const CacheBlocks<T>& cache, int j0, int j1,
                       const TpaCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
                       std::vector<float>& sc) {
    const int H = dm.H, Rk = dm.Rk, Rv = dm.Rv, D = dm.D, Rq = q.Rq;
    const long rec = dm.rec();
    sc.resize(size_t(H) * kBlock + size_t(Rq > 0 ? Rq : H) * Rk + size_t(H) * (Rq + 1) +
              size_t(H) * kBlock);
    float* S = sc.data();                           // (H, kBlock) scores, then probabilities
    float* P = S + size_t(H) * kBlock;              // (Rq, Rk) or (H, Rk) dot products
    float* AQt = P + size_t(Rq > 0 ? Rq : H) * Rk;  // (Rq, H): A_Q transposed
    float* G = AQt + size_t(H) * Rq;                // (H) rank-mixed products of one s
    float* St = G + H;                              // (kBlock, H) scores, token-major
    // A_Q transposed once per task, so the rank mixing runs over heads in vector lanes.
    if (q.A)
        for (int a = 0; a < Rq; a++)
            for (int h = 0; h < H; h++) AQt[a * H + h] = q.A[h * Rq + a];
    thread_local std::vector<float> bk;  // B_K grouped: a token's rows
    bk.resize(size_t(Rk) * D);
    const float c_scores = q.A ? scale / float(Rq * Rk) : scale / float(Rk);
    const float c_values = 1.0f / float(Rv);
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = cache.block(b0, j1, kBlock);
        const float* recs = records_f32(cache.at(b0, rec), rec, 0, n, buf);
        for (int jj = 0; jj < n; jj++) {
            const float* r = recs + jj * rec;
            const float* AK = r + dm.off_AK();
            const float* BK = r + dm.off_BK();
            if (dm.group > 0) {  // B_K grouped (the block starts at a group): its rows copied
                for (int s = 0; s < Rk; s++)
                    for (int d = 0; d < D; d++) bk[size_t(s) * D + d] = recs[dm.bk_at(jj, s, d)];
                BK = bk.data();
            }
            if (q.A) {
                // Head-shared feature products, then per-head rank mixing (Algorithm 2).
                for (int a = 0; a < Rq; a++)
                    for (int s = 0; s < Rk; s++) P[a * Rk + s] = dot(q.B + a * D, BK + s * D, D);
                // s_h = sum_s A_K[h,s] * sum_a A_Q[h,a] P[a,s], vectorised over heads.
                float* st = St + size_t(jj) * H;
                for (int h = 0; h < H; h++) st[h] = 0.0f;
                for (int s = 0; s < Rk; s++) {
                    for (int h = 0; h < H; h++) G[h] = 0.0f;
                    for (int a = 0; a < Rq; a++) {
                        const float pa = P[a * Rk + s];
                        const float* aqt = AQt + a * H;
#pragma omp simd
                        for (int h = 0; h < H; h++) G[h] += pa * aqt[h];
                    }
#pragma omp simd
                    for (int h = 0; h < H; h++) st[h] += AK[long(s) * H + h] * G[h];
                }
            } else {
                for (int h = 0; h < H; h++) {
                    float acc = 0.0f;
                    for (int s = 0; s < Rk; s++)
                        acc += AK[long(s) * H + h] * dot(q.B + h * D, BK + s * D, D);
                    S[h * kBlock + jj] = acc * c_scores;
                }
            }
        }
        if (q.A)
            for (int h = 0; h < H; h++)
                for (int jj = 0; jj < n; jj++)
                    S[h * kBlock + jj] = St[size_t(jj) * H + h] * c_scores;
        for (int h = 0; h < H; h++)
            softmax_update(S + h * kBlock, n, part.m[h], part.l[h], part.acc + size_t(h) * D, D);
        // Values in sub-blocks of kSub records (small enough to stay in L1), head by head, so
        // each head's output row is loaded and stored once per sub-block rather than once per
        // (token, rank) term.
        for (int j0s = 0; j0s < n; j0s += kSub) {
            const int ns = std::min(kSub, n - j0s);
            for (int h = 0; h < H; h++) {
                float* acc = part.acc + size_t(h) * D;
                if (D == 64) {
                    values_d64(acc, S + h * kBlock + j0s, recs + long(j0s) * rec, ns, rec,
                               dm.av(h, 0), H, dm.off_BV(), Rv, c_values);
                    continue;
                }
                for (int jj = j0s; jj < j0s + ns; jj++) {
                    const float* r = recs + jj * rec;
                    const float w = S[h * kBlock + jj] * c_values;
                    for (int s = 0; s < Rv; s++)
                        axpy(acc, w * r[dm.av(h, s)], r + dm.off_BV() + s * D, D);
                }
            }
        }
    }
}

// bf16_dot: simd_bf16_dot_decode(), read by the caller before its threads start (a bad
// T6_BF16_DOT or T6_SIMD throws there, not inside the parallel region); float records ignore it.
bool tpa_range_simd(const TpaQuery& q, const CacheBlocks<float>& cache, const Task& t,
                    const TpaCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
                    std::vector<float>& sc, bool /*bf16_dot*/) {
    return HWY_DYNAMIC_DISPATCH(TpaRangeF32)(q, cache, t, dm, scale, part, buf, sc);
}
bool tpa_range_simd(const TpaQuery& q, const CacheBlocks<uint16_t>& cache, const Task& t,
                    const TpaCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
                    std::vector<float>& sc, bool bf16_dot) {
    if (bf16_dot) return HWY_DYNAMIC_DISPATCH(TpaRangeDot)(q, cache, t, dm, scale, part, buf, sc);
    return HWY_DYNAMIC_DISPATCH(TpaRangeBf16)(q, cache, t, dm, scale, part, buf, sc);
}

}  // namespace

template <typename T>
void flash_tpa_decode(float* const* out, const TpaQuery* qs, const CacheBlocks<T>* cache,
                      const int* lens, int nseq, const TpaCacheDims& dims, float scale) {
    T6_CHECK(dims.group == 0 ||
                 (std::is_same_v<T, float> && dims.group == kTpaGroup && dims.can_group()),
             "FlashTPA: B_K grouped needs a float32 cache and R_K*D a multiple of 16");
    if constexpr (std::is_same_v<T, int8_t>) {
        const Q8Layout L = q8_layout(dims);
        run_split(out, lens, nseq, dims.H, dims.D,
                  [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                      // In place; head sizes above the vector kernel's on dequantized chunks.
                      if (HWY_DYNAMIC_DISPATCH(TpaRangeQ8)(qs[t.seq], cache[t.seq], t, dims, scale,
                                                           p, buf, sc))
                          return;
                      q8_chunks(
                          cache[t.seq], t.j0, t.j1, L, [&](const CacheBlocks<float>& v, int n) {
                              if (!tpa_range_simd(qs[t.seq], v, Task{t.seq, 0, n, n}, dims, scale,
                                                  p, buf, sc, false))
                                  tpa_range_generic(qs[t.seq], v, 0, n, dims, scale, p, buf, sc);
                          });
                  });
    } else {
        const bool bf16_dot = std::is_same_v<T, uint16_t> && simd_bf16_dot_decode();
        // B_K grouped (float32 caches): tasks start at groups of 16 records.
        run_split(
            out, lens, nseq, dims.H, dims.D,
            [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                if (!tpa_range_simd(qs[t.seq], cache[t.seq], t, dims, scale, p, buf, sc, bf16_dot))
                    tpa_range_generic(qs[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc);
            },
            dims.group > 0 ? kTpaGroup : 1);
    }
}

std::string flash_tpa_kernel_name(bool bf16_cache) {
    const std::string target = simd_highway_target_name();
    if (bf16_cache && simd_bf16_dot_decode() && target == "AVX3")
        return "avx512bf16: vdpbf16ps on the bf16 factors";
    return "Highway " + target + (bf16_cache ? " (bf16 factors widened per block)" : "");
}

template <typename T>
void flash_tpa_decode(float* const* out, const TpaQuery* qs, const T* const* cache, const int* lens,
                      int nseq, const TpaCacheDims& dims, float scale) {
    const std::vector<CacheBlocks<T>> views = contiguous_views(cache, nseq);
    flash_tpa_decode(out, qs, views.data(), lens, nseq, dims, scale);
}

template void flash_tpa_decode<float>(float* const*, const TpaQuery*, const float* const*,
                                      const int*, int, const TpaCacheDims&, float);
template void flash_tpa_decode<uint16_t>(float* const*, const TpaQuery*, const uint16_t* const*,
                                         const int*, int, const TpaCacheDims&, float);
template void flash_tpa_decode<float>(float* const*, const TpaQuery*, const CacheBlocks<float>*,
                                      const int*, int, const TpaCacheDims&, float);
template void flash_tpa_decode<uint16_t>(float* const*, const TpaQuery*,
                                         const CacheBlocks<uint16_t>*, const int*, int,
                                         const TpaCacheDims&, float);

template void flash_tpa_decode<int8_t>(float* const*, const TpaQuery*, const int8_t* const*,
                                       const int*, int, const TpaCacheDims&, float);
template void flash_tpa_decode<int8_t>(float* const*, const TpaQuery*, const CacheBlocks<int8_t>*,
                                       const int*, int, const TpaCacheDims&, float);

}  // namespace t6
#endif  // HWY_ONCE
