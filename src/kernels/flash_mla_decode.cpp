// Absorbed MLA decoding over the latent cache: see flash_decode.h. With the query absorbed,
// [q_lat_h | q_pe_h], every head scores the whole record [c_j | k_pe_j] with one dot product and
// keeps its output in the latent: s_h(j) = scale [q_lat_h | q_pe_h] . [c_j | k_pe_j],
// o_h = sum_j softmax(s_h)(j) c_j (the caller applies W_UV[h]). Each record is read once for all
// H heads, so the kernel is compute-bound (2H(2 d_c + d_h^R) FLOPs per d_c + d_h^R cached numbers).
//
// Written once with Google Highway and compiled per SIMD target (AVX3, AVX2, SCALAR), chosen at
// run time (core/simd.h). The cache is read in blocks of kBlk records (16; 24 on AVX2), each
// block once, front to back, widened to float32 into a panel in L1 (f32 copied, bf16 widened, q8
// k_pe dequantized: float(code) * row scale, and c's codes too unless d_c is a multiple of N, when
// its row scale is folded into the scores and value weights instead), laid out vector-major:
// vector kv (numbers kv N .. kv N + N-1) of all the block's records in one run. Then
//  1. scores: heads in the N lanes (the query transposed once per task, qT, scaled, zero-padded),
//     each record number broadcast times a query vector into one of 16 (AVX2: 12) accumulators,
//     tiles of 16 records x 1 head group or 8 x 2 (AVX2: 12 x 1, 6 x 2); on the panel every
//     record number is at a constant offset from one pointer, so the tile is FMAs with a
//     broadcast memory operand and a query load every tile-width FMAs, nothing else;
//  2. the online softmax across heads lane-wise;
//  3. values accumulated in the latent in register tiles of up to 6 heads x 4 vectors of columns
//     (2 on AVX2), the panel's rows loaded once per tile.
// The next block's bytes are prefetched into L2 a few lines per step of the score tiles (a burst
// of a block's lines stalls on the core's outstanding-miss limit). Reading each block once and in
// order, rather than 8 records at a time in place, lets the hardware prefetcher stream it.
// (Measured 2026-12-02 on a heavily loaded 2-core machine, one thread, minimum thread CPU time over
// repeated calls, previous kernel / this one, small-mla's shape: bf16 and q8 caches 1.1-1.4x
// faster, f32 equal from memory but ~10% slower when the cache sits in L2 (the copy).)
// Whole blocks of a float32 cache of the presets' record lengths skip the panel (BlockInPlace):
// with the length a template argument the records are at constant offsets too.
// A bf16 cache on CPUs with AVX-512 BF16 takes the vdpbf16ps path further down (MlaRangeDotBody):
// on small-mla's shape, one thread, 1024 records in L2, 94.5 ns per record against 166.6 for the
// widened bf16 records and 171.7 for float32 (2026-12-03, Zen 4).
// (Tried and not kept, 2026-12: a dot form of the scores on AVX-512, the record in the lanes and
// 13 heads x 2 records of accumulators reduced by two transpose-adds, uses every lane where this
// form uses 13 of 16 on small-mla, but measured 5-15% slower per kernel call: 28 loads per 26
// FMAs and the reductions.)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/simd.h"
#include "kernels/bf16.h"
#include "kernels/flash_decode_common.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/flash_mla_decode.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/flash_decode-inl.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
using namespace flash;
using flash_detail::align64;
using flash_detail::Partial;

// Records per block (kBlk), records per score tile with one head group (kTile1) and with two
// (kTile2), and vectors of latent columns per value tile (kValueVecs). AVX2 (16 registers): score
// tiles of 12 accumulators, a query vector or two and a broadcast; value tiles of up to 6 heads x
// 2 vectors (12 accumulators, 2 row vectors and a weight). AVX-512 (32 registers): score tiles of
// 16 accumulators, value tiles of up to 6 heads x 4 vectors. The block's panel (kBlk records as
// float32) stays in L1 beside the transposed query (18 KB on small-mla) and the accumulators:
// 24 x 288 floats = 27 KB on AVX2 (Zen's L1 is 32 KB), 16 x 288 = 18 KB on AVX-512 (blocks of 32,
// 36 KB, measured 5-9% slower per call on small-mla: the panel, query and accumulators then
// overflow the 48 KB L1; blocks of 12 on AVX2 were no faster).
#if HWY_TARGET == HWY_AVX2
constexpr int kBlk = 24;
constexpr int kTile1 = 12;
constexpr int kTile2 = 6;
constexpr int kValueVecs = 2;
#else
constexpr int kBlk = 16;
constexpr int kTile1 = 16;
constexpr int kTile2 = 8;
constexpr int kValueVecs = 4;
#endif
static_assert(kBlk % kTile1 == 0 && kBlk % kTile2 == 0, "score tiles must divide the block");

// ---- The block's panel ----
// Record j's numbers k = kv N + l (kv < nkv = ceil(rec / N)) at pan[(kv kBlk + j) N + l], the
// lanes past rec zero: vector kv of every record of the block in one contiguous run. The score
// tiles address record j's number k at a constant offset from one pointer per kv (no pointer per
// record), and the value tiles read latent column vector kv of record t at a constant offset from
// one pointer per record.
HWY_INLINE float* PanelVec(float* pan, long kv, int j) {
    return pan + (size_t(kv) * kBlk + size_t(j)) * kN;
}

HWY_INLINE float ToF32(float x) {
    return x;
}
HWY_INLINE float ToF32(uint16_t x) {
    return bf16_to_float(x);
}

// The block's n f32 or bf16 records (rec numbers each, relem apart from blk) into the panel,
// vector kv of every record in turn (the panel written front to back).
template <typename T>
HWY_INLINE void WidenBlock(float* pan, const T* blk, int n, long relem, long rec) {
    const long full = rec / kN;
    for (long kv = 0; kv < full; kv++) {
        const T* src = blk + kv * kN;
        float* dst = PanelVec(pan, kv, 0);
        for (int j = 0; j < n; j++) hn::Store(LoadF32(src + j * relem), DF(), dst + j * kN);
    }
    if (full * kN < rec)  // the last, partial vector (lanes past rec stay zero)
        for (int j = 0; j < n; j++) {
            float* dst = PanelVec(pan, full, j);
            for (long k = full * kN; k < rec; k++) dst[k - full * kN] = ToF32(blk[j * relem + k]);
        }
}

// The same for q8 records, dequantized: codes of rows [0, B) times s0[j], of [B, rec) times s1[j]
// (float(code) * scale: the scalar dequantizer's exact numbers); with fold (B a multiple of N),
// the codes of [0, B) are left unscaled (s0 is applied to the scores and the value weights).
HWY_INLINE void WidenBlockQ8(float* pan, const int8_t* blk, int n, long relem, long rec, long B,
                             const float* s0, const float* s1, bool fold) {
    const DF d;
    const long full = rec / kN;
    for (long kv = 0; kv < full; kv++) {
        const long k = kv * kN;
        const int8_t* src = blk + k;
        float* dst = PanelVec(pan, kv, 0);
        if (fold && k < B) {
            for (int j = 0; j < n; j++) hn::Store(LoadF32(src + j * relem), d, dst + j * kN);
        } else if (k + kN <= B || k >= B) {
            const float* s = k >= B ? s1 : s0;
            for (int j = 0; j < n; j++)
                hn::Store(hn::Mul(LoadF32(src + j * relem), hn::Set(d, s[j])), d, dst + j * kN);
        } else {  // the vector across the row boundary
            const auto m = LaneMask(int(B - k));
            for (int j = 0; j < n; j++) {
                const VF sv = hn::IfThenElse(m, hn::Set(d, s0[j]), hn::Set(d, s1[j]));
                hn::Store(hn::Mul(LoadF32(src + j * relem), sv), d, dst + j * kN);
            }
        }
    }
    if (full * kN < rec)
        for (int j = 0; j < n; j++) {
            float* dst = PanelVec(pan, full, j);
            for (long k = full * kN; k < rec; k++)
                dst[k - full * kN] = float(blk[j * relem + k]) * (k < B ? s0[j] : s1[j]);
        }
}

// ---- Scores ----
// The next block's bytes, prefetched into L2 a few lines per step of the score tiles, so that
// the misses spread over the arithmetic (a burst of them stalls on the core's outstanding-miss
// limit).
struct Prefetch {
    const char* p = nullptr;
    const char* end = nullptr;
    int per = 0;  // lines per kv step
    HWY_INLINE void step() {
        for (int i = 0; i < per && p < end; i++, p += 64) __builtin_prefetch(p, 0, 2);
    }
};

// Scores of the panel's records [jt, jt + NR) for head groups g .. g + NG - 1 (NG 1 or 2):
// S[(jt + jj) Hp + (g + gg) N] = sum_k qT[g + gg][k] pan(jt + jj)[k], for jj < cnt. Heads are in
// the lanes (qT (G, nkv N, N): group g's row k at qT + (g nkv N + k) N), each record number is
// broadcast and multiplies a query vector: NR x NG independent accumulators, no horizontal sums.
// kKv and kRec: floats from vector kv of a record to vector kv + 1 and from one record to the
// next: the panel's kBlk N and N, or a float32 block read in place (ScoresInPlace): N and
// the record's length.
template <int NR, int NG, size_t kKv = size_t(kBlk) * kN, size_t kRec = kN>
HWY_INLINE void ScoreTile(const float* qg, size_t qgs, const float* pan, int jt, int cnt, int nkv,
                          int kvB, const float* sk, float* S, int Hp, Prefetch& pf) {
    const DF d;
    VF a[NG][NR];
#pragma GCC unroll 16
    for (int jj = 0; jj < NR; jj++)
#pragma GCC unroll 2
        for (int gg = 0; gg < NG; gg++) a[gg][jj] = hn::Zero(d);
    for (int kv = 0; kv < nkv; kv++) {
        if (kv == kvB) {  // q8, scales folded: the sums so far times record jj's scale sk[jj]
#pragma GCC unroll 16
            for (int jj = 0; jj < NR; jj++) {
                const VF s = hn::Set(d, sk[jj]);
#pragma GCC unroll 2
                for (int gg = 0; gg < NG; gg++) a[gg][jj] = hn::Mul(a[gg][jj], s);
            }
        }
        const float* pk = pan + size_t(kv) * kKv + size_t(jt) * kRec;
        const float* qk = qg + size_t(kv) * kN * kN;
#pragma GCC unroll 16
        for (int kk = 0; kk < kN; kk++) {
            const VF q0 = hn::LoadU(d, qk + kk * kN);
            const VF q1 = NG > 1 ? hn::LoadU(d, qk + qgs + kk * kN) : q0;
#pragma GCC unroll 16
            for (int jj = 0; jj < NR; jj++) {
                const VF x = hn::Set(d, pk[jj * kRec + kk]);
                a[0][jj] = hn::MulAdd(x, q0, a[0][jj]);
                if constexpr (NG > 1) a[NG - 1][jj] = hn::MulAdd(x, q1, a[NG - 1][jj]);
            }
        }
        pf.step();
    }
#pragma GCC unroll 16
    for (int jj = 0; jj < NR; jj++)
        if (jj < cnt)
#pragma GCC unroll 2
            for (int gg = 0; gg < NG; gg++)
                hn::StoreU(a[gg][jj], d, S + size_t(jt + jj) * Hp + size_t(kN) * gg);
}

// ---- Online softmax ----
// The online softmax of one block of n records, heads lane-wise (Hp / N groups of N heads, H
// real): S (n, Hp) scores in, probabilities p_h(j) out (times vscale[j] when given: the weights
// the value tiles read, while the running sums l take p unscaled); updates part.m and part.l and
// writes alpha[h] = exp(m_old - m_new), the rescaling of the running sums and accumulators.
HWY_INLINE void BlockSoftmax(float* S, int n, int H, int Hp, Partial part, float* alpha,
                             const float* vscale) {
    const DF d;
    for (int g = 0; g < Hp / kN; g++) {
        const int lanes = H - kN * g;
        const auto mk = LaneMask(lanes);
        const VF m = MaskedLoadF32(part.m + kN * g, lanes);  // padded heads: 0
        VF mb = hn::Set(d, -INFINITY);
        for (int j = 0; j < n; j++) mb = hn::Max(mb, hn::LoadU(d, S + size_t(j) * Hp + kN * g));
        const VF mnew = hn::Max(m, mb);
        const VF al = ExpSoftmax(d, hn::Sub(m, mnew));  // m = -inf: 0
        VF sum = hn::Zero(d);
        for (int j = 0; j < n; j++) {
            float* sj = S + size_t(j) * Hp + kN * g;
            const VF e = ExpSoftmax(d, hn::Sub(hn::LoadU(d, sj), mnew));
            hn::StoreU(vscale ? hn::Mul(e, hn::Set(d, vscale[j])) : e, d, sj);
            sum = hn::Add(sum, e);
        }
        const VF l = MaskedLoadF32(part.l + kN * g, lanes);
        hn::BlendedStore(hn::MulAdd(l, al, sum), mk, d, part.l + kN * g);
        hn::BlendedStore(mnew, mk, d, part.m + kN * g);
        hn::StoreU(al, d, alpha + kN * g);
    }
}

// ---- Values ----
// acc[h] = alpha[h] acc[h] + sum_{t < n} W[t Hp + h] c_t for heads [h0, h0 + HB) and latent
// columns [cv0 N, (cv0 + NV) N) ∩ [0, C), in registers: each panel row vector is loaded once per
// tile and the weight broadcast from W (flash_decode-inl.h's values_tile, on the panel).
// kV and kRec: floats from one column vector to the next and from one record to the next (the
// panel's kBlk N and N, or a float32 block read in place: N and the record's length).
template <int HB, int NV, size_t kV = size_t(kBlk) * kN, size_t kRec = kN>
HWY_INLINE void ValuesTile(float* acc, int C, int cv0, int h0, const float* W, int Hp,
                           const float* pan, int n, const float* alpha) {
    static_assert(HB >= 1 && HB <= 6 && NV >= 1 && NV <= 4);
    const DF d;
    const int c0 = cv0 * kN;
    const int n0 = C - c0, n1 = n0 - kN, n2 = n0 - 2 * kN, n3 = n0 - 3 * kN;
    T6_VT_ACC_LOAD(acc, C)
    const float* p = pan + size_t(cv0) * kV;
    const float* w = W + h0;
    for (int t = 0; t < n; t++, p += kRec, w += Hp) {
        // Unaligned loads: a block read in place is only as aligned as its cache.
        const VF b0 = hn::LoadU(d, p);
        const VF b1 = NV > 1 ? hn::LoadU(d, p + kV) : hn::Zero(d);
        const VF b2 = NV > 2 ? hn::LoadU(d, p + 2 * kV) : hn::Zero(d);
        const VF b3 = NV > 3 ? hn::LoadU(d, p + 3 * kV) : hn::Zero(d);
#define T6_VT_FMA(i, a0, a1, a2, a3)                      \
    if constexpr (i < HB) {                               \
        const VF x = hn::Set(d, w[i]);                    \
        a0 = hn::MulAdd(x, b0, a0);                       \
        if constexpr (NV > 1) a1 = hn::MulAdd(x, b1, a1); \
        if constexpr (NV > 2) a2 = hn::MulAdd(x, b2, a2); \
        if constexpr (NV > 3) a3 = hn::MulAdd(x, b3, a3); \
    }
        T6_VT_EACH_HEAD(T6_VT_FMA)
#undef T6_VT_FMA
    }
    T6_VT_ACC_STORE(acc, C)
}

// ValuesTile with NV = the column vectors left from cv0 (at most kValueVecs).
template <int HB, size_t kV = size_t(kBlk) * kN, size_t kRec = kN>
HWY_INLINE void ValuesTileCols(float* acc, int C, int cv0, int h0, const float* W, int Hp,
                               const float* pan, int n, const float* alpha) {
    const int left = (C + kN - 1) / kN - cv0, nv = left < kValueVecs ? left : kValueVecs;
    if (nv >= 4)
        ValuesTile<HB, 4, kV, kRec>(acc, C, cv0, h0, W, Hp, pan, n, alpha);
    else if (nv == 3)
        ValuesTile<HB, 3, kV, kRec>(acc, C, cv0, h0, W, Hp, pan, n, alpha);
    else if (nv == 2)
        ValuesTile<HB, 2, kV, kRec>(acc, C, cv0, h0, W, Hp, pan, n, alpha);
    else
        ValuesTile<HB, 1, kV, kRec>(acc, C, cv0, h0, W, Hp, pan, n, alpha);
}

// Calls f(std::integral_constant<int, HB>{}) with HB = hb for a head tile of 1 to 5 heads and 6
// otherwise: the value tiles' sizes are template arguments, so that their accumulators stay in
// registers.
template <class F>
HWY_INLINE void WithHeadTile(int hb, F&& f) {
    switch (hb) {
        case 1:
            return f(std::integral_constant<int, 1>{});
        case 2:
            return f(std::integral_constant<int, 2>{});
        case 3:
            return f(std::integral_constant<int, 3>{});
        case 4:
            return f(std::integral_constant<int, 4>{});
        case 5:
            return f(std::integral_constant<int, 5>{});
        default:
            return f(std::integral_constant<int, 6>{});
    }
}

// All of acc (H, C): the heads in balanced tiles of at most 6, the columns kValueVecs vectors at
// a time.
template <size_t kV = size_t(kBlk) * kN, size_t kRec = kN>
HWY_INLINE void Values(float* acc, int H, int C, const float* W, int Hp, const float* pan, int n,
                       const float* alpha) {
    const int tiles = (H + 5) / 6, ncv = (C + kN - 1) / kN;
    for (int ti = 0; ti < tiles; ti++) {
        const int h0 = int(long(H) * ti / tiles), hb = int(long(H) * (ti + 1) / tiles) - h0;
        for (int cv0 = 0; cv0 < ncv; cv0 += kValueVecs) {
            WithHeadTile(
                hb, [&](auto HB) HWY_ATTR __attribute__((always_inline)) {
                    ValuesTileCols<decltype(HB)::value, kV, kRec>(acc, C, cv0, h0, W, Hp, pan, n,
                                                                  alpha);
                });
        }
    }
}

// Scores of a whole block of float32 records of kRec numbers (a whole number of vectors) read
// where they are in the cache, without the panel (the value tiles read them in place likewise):
// record j's vector kv is at blk + j kRec + kv N, a constant offset from one pointer per kv (the
// score tiles) or per record (the value tiles), as in the panel; kRec a template argument, so
// that the offsets are instruction displacements (the loop before the panel kept a pointer per
// record). Small-mla's shape (13 heads, 288 numbers), 16K records, 12 calls, ns per record and
// thread, on Zen 5: AVX-512 138.7-142.2 -> 127.4-132.6, AVX2 220.8-229.2 -> 203.8-209.7 (the
// copy into the panel was the difference); `t6 bench decode`: docs/decode-bench.md, session 23.
template <long kRec>
HWY_INLINE void ScoresInPlace(const float* qT, size_t nk, const float* blk, int G, int Hp, float* S,
                              Prefetch& pf) {
    static_assert(kRec % kN == 0, "records of whole vectors");
    constexpr int nkv = int(kRec / kN);
    int g = 0;
    for (; g + 1 < G; g += 2)
        for (int jt = 0; jt < kBlk; jt += kTile2)
            ScoreTile<kTile2, 2, kN, kRec>(qT + size_t(g) * nk * kN, nk * kN, blk, jt, kTile2, nkv,
                                           -1, nullptr, S + size_t(kN) * g, Hp, pf);
    if (g < G)
        for (int jt = 0; jt < kBlk; jt += kTile1)
            ScoreTile<kTile1, 1, kN, kRec>(qT + size_t(g) * nk * kN, 0, blk, jt, kTile1, nkv, -1,
                                           nullptr, S + size_t(kN) * g, Hp, pf);
}

// A whole block (kBlk records of kRec floats) read in place: scores, softmax, values.
template <long kRec>
HWY_INLINE void BlockInPlace(const float* qT, size_t nk, const float* blk, int H, int C, int G,
                             int Hp, float* S, float* alpha, Partial part, Prefetch& pf) {
    ScoresInPlace<kRec>(qT, nk, blk, G, Hp, S, pf);
    BlockSoftmax(S, kBlk, H, Hp, part, alpha, nullptr);
    Values<kN, kRec>(part.acc, H, C, S, Hp, blk, kBlk, alpha);
}

// ---- One task: records [j0, j1) of one sequence ----
// The element type's widening: f32/bf16 records of rec numbers; q8 records (L.bytes bytes) of
// rows [0, B) and [B, rec) with float32 scales at scale_off (q8_cache.h).
struct Q8Rows {
    long bytes = 0, scale_off = 0, B = 0;
    bool two = false;
};

template <typename T>
void MlaRange(const float* q, const CacheBlocks<T>& cache, int j0, int j1, const MlaCacheDims& dm,
              const Q8Rows* q8, float scale, Partial part, std::vector<float>& buf,
              std::vector<float>& sc) {
    const int H = dm.H, C = dm.C, G = (H + kN - 1) / kN, Hp = kN * G;
    const long rec = dm.rec();
    const int nkv = int((rec + kN - 1) / kN);
    const size_t nk = size_t(nkv) * kN;           // rec rounded up to vectors
    const long relem = q8 ? q8->bytes : rec;      // elements (T) per record
    const long rbytes = relem * long(sizeof(T));  // bytes per record
    sc.assign(size_t(G) * nk * kN + size_t(kBlk) * Hp + Hp + 2 * size_t(kBlk), 0.0f);
    float* qT = sc.data();                 // (G, nk, N), scaled, zero-padded heads and k
    float* S = qT + size_t(G) * nk * kN;   // (kBlk, Hp): scores, then probabilities
    float* alpha = S + size_t(kBlk) * Hp;  // (Hp) rescaling of the running sums
    float* s0 = alpha + Hp;                // (kBlk) q8: the block's row scales of c
    float* s1 = s0 + kBlk;                 // (kBlk) and of k_pe
    for (int h = 0; h < H; h++)
        for (long k = 0; k < rec; k++)
            qT[(size_t(h / kN) * nk + size_t(k)) * kN + size_t(h % kN)] = scale * q[h * rec + k];
    // The panel, 64-byte aligned, zeroed (the lanes past rec stay zero; slots past a partial
    // block hold earlier records, whose scores are not stored).
    const size_t pan_n = size_t(kBlk) * nk;
    if (buf.size() < pan_n + 16) buf.resize(pan_n + 16);
    float* pan = align64(buf.data());
    std::fill(pan, pan + pan_n, 0.0f);
    // q8 with c's codes a whole number of vectors (d_c a multiple of N: every preset): the codes
    // of c widened unscaled, its row scale folded into the scores (after kv < kvB) and the value
    // weights, as in s_h(j) = scale (sc_c(j) q_lat_h . codes_c(j) + q_pe_h . k_pe(j)),
    // o_h = sum_j (p_h(j) sc_c(j)) codes_c(j).
    const bool fold = q8 && q8->two && q8->B % kN == 0;
    const int kvB = fold ? int(q8->B / kN) : -1;
    // kv steps of the score tiles per (full) block, for spreading the next block's prefetches.
    const int steps = nkv * ((G / 2) * (kBlk / kTile2) + (G % 2) * (kBlk / kTile1));
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = cache.block(b0, j1, kBlk);
        const T* blk = cache.at(b0, relem);
        // A whole block of float32 records of the presets' lengths (d_c + d_h^R = 256 + 32 at
        // the paper's sizes, 96 + 32 at tiny) is read in place (BlockInPlace).
        const bool inplace = std::is_same_v<T, float> && n == kBlk && (rec == 288 || rec == 128);
        if constexpr (std::is_same_v<T, int8_t>) {
            for (int j = 0; j < n; j++) {
                const int8_t* r = blk + j * relem + q8->scale_off;
                std::memcpy(s0 + j, r, 4);
                std::memcpy(s1 + j, r + (q8->two ? 4 : 0), 4);
            }
            WidenBlockQ8(pan, blk, n, relem, rec, q8->B, s0, s1, fold);
        } else if (!inplace) {
            WidenBlock(pan, blk, n, relem, rec);
        }
        // The next block (never across a cache block), prefetched during the score tiles.
        Prefetch pf;
        const int nb0 = b0 + n;
        if (nb0 < j1) {
            const int nn = cache.block(nb0, j1, kBlk);
            pf.p = reinterpret_cast<const char*>(cache.at(nb0, relem));
            pf.end = pf.p + nn * rbytes;
            pf.per = int((nn * rbytes + 63) / 64 + steps - 1) / steps;
        }
        if constexpr (std::is_same_v<T, float>) {
            if (inplace) {
                if (rec == 288)
                    BlockInPlace<288>(qT, nk, blk, H, C, G, Hp, S, alpha, part, pf);
                else
                    BlockInPlace<128>(qT, nk, blk, H, C, G, Hp, S, alpha, part, pf);
                continue;
            }
        }
        // Scores S[j, h] = qT[:, h] . record j: head groups in pairs, then the odd one.
        int g = 0;
        for (; g + 1 < G; g += 2)
            for (int jt = 0; jt < n; jt += kTile2)
                ScoreTile<kTile2, 2>(qT + size_t(g) * nk * kN, nk * kN, pan, jt, n - jt, nkv, kvB,
                                     s0 + jt, S + size_t(kN) * g, Hp, pf);
        if (g < G)
            for (int jt = 0; jt < n; jt += kTile1)
                ScoreTile<kTile1, 1>(qT + size_t(g) * nk * kN, 0, pan, jt, n - jt, nkv, kvB,
                                     s0 + jt, S + size_t(kN) * g, Hp, pf);
        BlockSoftmax(S, n, H, Hp, part, alpha, fold ? s0 : nullptr);
        Values(part.acc, H, C, S, Hp, pan, n, alpha);
    }
}

#if HWY_TARGET == HWY_AVX3
// ---- bf16 cache on CPUs with AVX-512 BF16 (vdpbf16ps) ----
// Compiled for the AVX3 target with avx512bf16 added by attribute and run only where
// simd_bf16_dot_decode() (as FlashTPA's bf16 path, flash_tpa_decode.cpp). vdpbf16ps multiplies
// pairs of bf16 numbers exactly and adds both products to a float32 lane: twice an fp32 FMA's
// multiply-adds per instruction on the cache's own numbers. The query is rounded to bf16 once per
// task and the probabilities to bf16 per block (as FlashTPA's native path rounds its query factor
// and value weights); the scores, the softmax and the accumulators stay float32.
//  - The block's records are copied into a bf16 panel (half the f32 panel's bytes), 32 numbers
//    (one 64-byte vector) of every record at a time, each vector permuted as PanelNum says.
//  - Scores: heads in the lanes as in ScoreTile, with pairs of numbers: the query's pairs (two
//    consecutive numbers of a head's row, bf16) times a record's pair broadcast from the panel.
//  - Values: pairs of records. Unpacking the 16-bit halves of records t and t+1's panel vectors
//    (vpunpcklwd / vpunpckhwd: no lane crossing) gives the pairs (c_t[x], c_t+1[x]) of 16
//    consecutive latent columns x each, which the permutation puts in column order; the weight is
//    the pair (p_h(t), p_h(t+1)) broadcast.
// (T6_BF16_TARGET and Bf16PairLanes: flash_decode-inl.h.)

constexpr int kBlkDot = 32;  // records per block: even, so that the values pair them
constexpr int kPairs = 16;   // bf16 pairs (uint32) per vector

// Position 8k + i of a panel vector (k the 128-bit block, i < 8) holds number 4k + i of the
// record's 32 (i < 4) or 16 + 4k + i - 4 (i >= 4): unpacklo of two records then gives numbers
// 0..15 of both in order, unpackhi numbers 16..31. Pairs of positions (2s, 2s+1) hold the
// consecutive numbers PanelNum(2s), PanelNum(2s) + 1.
inline int PanelNum(int pos) {
    const int k = pos / 8, i = pos % 8;
    return i < 4 ? 4 * k + i : 16 + 4 * k + i - 4;
}

// The block's n bf16 records (rec numbers, relem apart) into the panel: vector kc of record j
// (numbers 32 kc .. 32 kc + 31, zero past rec) at pan + (kc kBlkDot + j) kPairs, permuted.
inline T6_BF16_TARGET void PanelBf16(uint32_t* pan, const uint16_t* blk, int n, long rec, int nkc,
                                     __m512i idx) {
    for (int kc = 0; kc < nkc; kc++) {
        const long left = rec - 32L * kc;
        const __mmask32 m = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
        uint32_t* dst = pan + size_t(kc) * kBlkDot * kPairs;
        for (int j = 0; j < n; j++) {
            const __m512i v = _mm512_maskz_loadu_epi16(m, blk + j * rec + 32L * kc);
            _mm512_store_si512(dst + size_t(j) * kPairs, _mm512_permutexvar_epi16(idx, v));
        }
    }
}

// Scores of the panel's records [jt, jt + NR) for head groups g .. g + NG - 1 (NG 1 or 2), as
// ScoreTile: S[(jt + jj) Hp + (g + gg) N] = scale sum_s qT[g + gg][s] . pair s of record jt + jj,
// the query's pairs qT (G, nkc 16, 16) in the panel's pair order.
template <int NR, int NG>
inline T6_BF16_TARGET void ScoreTileDot(const uint32_t* qg, size_t qgs, const uint32_t* pan, int jt,
                                        int cnt, int nkc, float scale, float* S, int Hp,
                                        Prefetch& pf) {
    __m512 a[NG][NR];
#pragma GCC unroll 16
    for (int jj = 0; jj < NR; jj++)
#pragma GCC unroll 2
        for (int gg = 0; gg < NG; gg++) a[gg][jj] = _mm512_setzero_ps();
    for (int kc = 0; kc < nkc; kc++) {
        const uint32_t* pk = pan + (size_t(kc) * kBlkDot + size_t(jt)) * kPairs;
        const uint32_t* qk = qg + size_t(kc) * kPairs * kPairs;
#pragma GCC unroll 16
        for (int s = 0; s < kPairs; s++) {
            const __m512bh q0 = (__m512bh)_mm512_loadu_si512(qk + s * kPairs);
            const __m512bh q1 = NG > 1 ? (__m512bh)_mm512_loadu_si512(qk + qgs + s * kPairs) : q0;
#pragma GCC unroll 16
            for (int jj = 0; jj < NR; jj++) {
                const __m512bh x = (__m512bh)_mm512_set1_epi32(int(pk[jj * kPairs + s]));
                a[0][jj] = _mm512_dpbf16_ps(a[0][jj], q0, x);
                if constexpr (NG > 1) a[NG - 1][jj] = _mm512_dpbf16_ps(a[NG - 1][jj], q1, x);
            }
        }
        pf.step();
    }
    const __m512 sv = _mm512_set1_ps(scale);
#pragma GCC unroll 16
    for (int jj = 0; jj < NR; jj++)
        if (jj < cnt)
#pragma GCC unroll 2
            for (int gg = 0; gg < NG; gg++)
                _mm512_storeu_ps(S + size_t(jt + jj) * Hp + size_t(kN) * gg,
                                 _mm512_mul_ps(a[gg][jj], sv));
}

// The block's probabilities S (n, Hp) as pairs of records, Wp (np, Hp): Wp[t][h] =
// (bf16 p_h(2t), bf16 p_h(2t+1)), an odd last record paired with zero. Returns np.
inline T6_BF16_TARGET int PackWeightPairs(uint32_t* Wp, const float* S, int n, int Hp) {
    const int np = (n + 1) / 2;
    for (int t = 0; t < np; t++) {
        const int k0 = 2 * t, k1 = 2 * t + 1;
        for (int g = 0; g < Hp; g += kN) {
            const __m512 w0 = _mm512_loadu_ps(S + size_t(k0) * Hp + g);
            const __m512 w1 =
                k1 < n ? _mm512_loadu_ps(S + size_t(k1) * Hp + g) : _mm512_setzero_ps();
            _mm512_storeu_si512(Wp + size_t(t) * Hp + g, Bf16PairLanes(w0, w1));
        }
    }
    return np;
}

// acc[h] = alpha[h] acc[h] + sum_t W[t][h] c_t for heads [h0, h0 + HB) and the NV (2 or 4)
// column vectors from cv0 N (a whole number of 32-number panel vectors inside C), pairs of
// records at a time: NV / 2 panel vectors of records 2t and 2t+1 unpacked into NV pair vectors.
template <int HB, int NV>
inline T6_BF16_TARGET void ValuesTileDot(float* acc, int C, int cv0, int h0, const uint32_t* Wp,
                                         int Hp, const uint32_t* pan, int np, const float* alpha) {
    static_assert(HB >= 1 && HB <= 6 && (NV == 2 || NV == 4));
    const DF d;
    const int c0 = cv0 * kN;
    constexpr int n0 = NV * kN, n1 = n0 - kN, n2 = n0 - 2 * kN, n3 = n0 - 3 * kN;
    T6_VT_ACC_LOAD(acc, C)
    constexpr size_t kV = size_t(kBlkDot) * kPairs;  // uint32 from one panel vector to the next
    const uint32_t* p = pan + size_t(cv0 / 2) * kV;
    const uint32_t* w = Wp + h0;
    for (int t = 0; t < np; t++, p += 2 * kPairs, w += Hp) {
        const __m512i x0 = _mm512_load_si512(p), y0 = _mm512_load_si512(p + kPairs);
        const __m512bh b0 = (__m512bh)_mm512_unpacklo_epi16(x0, y0);
        const __m512bh b1 = (__m512bh)_mm512_unpackhi_epi16(x0, y0);
        __m512bh b2 = b0, b3 = b1;
        if constexpr (NV > 2) {
            const __m512i x1 = _mm512_load_si512(p + kV), y1 = _mm512_load_si512(p + kV + kPairs);
            b2 = (__m512bh)_mm512_unpacklo_epi16(x1, y1);
            b3 = (__m512bh)_mm512_unpackhi_epi16(x1, y1);
        }
#define T6_VTD_FMA(i, a0, a1, a2, a3)                                   \
    if constexpr (i < HB) {                                             \
        const __m512bh x = (__m512bh)_mm512_set1_epi32(int(w[i]));      \
        a0 = VF{_mm512_dpbf16_ps(a0.raw, b0, x)};                       \
        a1 = VF{_mm512_dpbf16_ps(a1.raw, b1, x)};                       \
        if constexpr (NV > 2) a2 = VF{_mm512_dpbf16_ps(a2.raw, b2, x)}; \
        if constexpr (NV > 2) a3 = VF{_mm512_dpbf16_ps(a3.raw, b3, x)}; \
    }
        T6_VT_EACH_HEAD(T6_VTD_FMA)
#undef T6_VTD_FMA
    }
    T6_VT_ACC_STORE(acc, C)
}

template <int HB>
inline T6_BF16_TARGET void ValuesTilesDot(float* acc, int C, int h0, const uint32_t* Wp, int Hp,
                                          const uint32_t* pan, int np, const float* alpha) {
    const int ncv = C / kN;  // C is a multiple of 32: an even number of column vectors
    int cv0 = 0;
    for (; cv0 + 4 <= ncv; cv0 += 4) ValuesTileDot<HB, 4>(acc, C, cv0, h0, Wp, Hp, pan, np, alpha);
    if (cv0 < ncv) ValuesTileDot<HB, 2>(acc, C, cv0, h0, Wp, Hp, pan, np, alpha);
}

// MlaRange over a bf16 cache with vdpbf16ps; C a multiple of 32.
T6_BF16_TARGET void MlaRangeDotBody(const float* q, const CacheBlocks<uint16_t>& cache, int j0,
                                    int j1, const MlaCacheDims& dm, float scale, Partial part,
                                    std::vector<float>& sc) {
    const int H = dm.H, C = dm.C, G = (H + kN - 1) / kN, Hp = kN * G;
    const long rec = dm.rec();
    const int nkc = int((rec + 31) / 32);  // 32-number panel vectors per record
    thread_local std::vector<uint32_t> u32;
    // qT (G, nkc 16, 16) | the panel (nkc, kBlkDot, 16), 64-byte aligned | Wp (kBlkDot / 2, Hp)
    const size_t n_q = size_t(G) * nkc * kPairs * kPairs, n_pan = size_t(nkc) * kBlkDot * kPairs;
    u32.assign(n_q + n_pan + size_t(kBlkDot / 2) * Hp + kPairs, 0u);
    uint32_t* qT = u32.data();
    uint32_t* pan = qT + n_q;
    pan = align64(pan);
    uint32_t* Wp = pan + n_pan;
    sc.assign(size_t(kBlkDot) * Hp + Hp, 0.0f);
    float* S = sc.data();                     // (kBlkDot, Hp): scores, then probabilities
    float* alpha = S + size_t(kBlkDot) * Hp;  // (Hp)
    __m512i idx;
    {
        alignas(64) uint16_t ix[32];
        for (int pos = 0; pos < 32; pos++) ix[pos] = uint16_t(PanelNum(pos));
        idx = _mm512_load_si512(ix);
    }
    // The query's pairs in the panel's pair order, bf16, unscaled (scale applies to the sums):
    // each head's row rounded at once (to_bf16_serial: float_to_bf16's bits), then permuted as
    // the panel is, 32 numbers at a time, and the pairs transposed into the heads' lanes.
    thread_local std::vector<uint16_t> q16;
    q16.resize(size_t(H) * rec);
    to_bf16_serial(q16.data(), q, size_t(H) * rec);
    for (int h = 0; h < H; h++)
        for (int kc = 0; kc < nkc; kc++) {
            const long left = rec - 32L * kc;
            const __mmask32 m = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
            alignas(64) uint32_t row[kPairs];
            _mm512_store_si512(
                row, _mm512_permutexvar_epi16(
                         idx, _mm512_maskz_loadu_epi16(m, q16.data() + h * rec + 32L * kc)));
            uint32_t* dst = qT + (size_t(h / kN) * nkc + kc) * kPairs * kPairs + size_t(h % kN);
            for (int s = 0; s < kPairs; s++) dst[size_t(s) * kPairs] = row[s];
        }
    const int steps = nkc * ((G / 2) * (kBlkDot / kTile2) + (G % 2) * (kBlkDot / kTile1));
    const int tiles = (H + 5) / 6;
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = cache.block(b0, j1, kBlkDot);
        PanelBf16(pan, cache.at(b0, rec), n, rec, nkc, idx);
        Prefetch pf;
        const int nb0 = b0 + n;
        if (nb0 < j1) {
            const int nn = cache.block(nb0, j1, kBlkDot);
            pf.p = reinterpret_cast<const char*>(cache.at(nb0, rec));
            pf.end = pf.p + nn * rec * 2;
            pf.per = int((nn * rec * 2 + 63) / 64 + steps - 1) / steps;
        }
        int g = 0;
        for (; g + 1 < G; g += 2)
            for (int jt = 0; jt < n; jt += kTile2)
                ScoreTileDot<kTile2, 2>(qT + size_t(g) * nkc * kPairs * kPairs,
                                        size_t(nkc) * kPairs * kPairs, pan, jt, n - jt, nkc, scale,
                                        S + size_t(kN) * g, Hp, pf);
        if (g < G)
            for (int jt = 0; jt < n; jt += kTile1)
                ScoreTileDot<kTile1, 1>(qT + size_t(g) * nkc * kPairs * kPairs, 0, pan, jt, n - jt,
                                        nkc, scale, S + size_t(kN) * g, Hp, pf);
        BlockSoftmax(S, n, H, Hp, part, alpha, nullptr);
        const int np = PackWeightPairs(Wp, S, n, Hp);
        for (int ti = 0; ti < tiles; ti++) {
            const int h0 = int(long(H) * ti / tiles), hb = int(long(H) * (ti + 1) / tiles) - h0;
            WithHeadTile(hb, [&](auto HB) T6_BF16_TARGET {
                ValuesTilesDot<decltype(HB)::value>(part.acc, C, h0, Wp, Hp, pan, np, alpha);
            });
        }
    }
}
#endif  // HWY_TARGET == HWY_AVX3

}  // namespace

void MlaRangeQ8(const float* q, const CacheBlocks<int8_t>& cache, int j0, int j1,
                const MlaCacheDims& dm, const Q8Layout& L, float scale, flash_detail::Partial part,
                std::vector<float>& buf, std::vector<float>& sc) {
    Q8Rows r;
    r.bytes = L.bytes;
    r.scale_off = L.scale_off;
    r.two = L.rows.size() > 1;
    r.B = L.rows.empty() ? 0 : L.rows[0];
    MlaRange(q, cache, j0, j1, dm, &r, scale, part, buf, sc);
}
void MlaRangeF32(const float* q, const CacheBlocks<float>& cache, int j0, int j1,
                 const MlaCacheDims& dm, float scale, flash_detail::Partial part,
                 std::vector<float>& buf, std::vector<float>& sc) {
    MlaRange(q, cache, j0, j1, dm, nullptr, scale, part, buf, sc);
}
void MlaRangeBf16(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
                  const MlaCacheDims& dm, float scale, flash_detail::Partial part,
                  std::vector<float>& buf, std::vector<float>& sc) {
    MlaRange(q, cache, j0, j1, dm, nullptr, scale, part, buf, sc);
}

// vdpbf16ps on a bf16 cache (AVX3 with AVX512_BF16; C a multiple of 32). Only called where
// simd_bf16_dot_decode(); the other targets' copies widen like MlaRangeBf16.
#if HWY_TARGET == HWY_AVX3
T6_BF16_TARGET
#endif
void MlaRangeDot(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
                 const MlaCacheDims& dm, float scale, flash_detail::Partial part,
                 std::vector<float>& buf, std::vector<float>& sc) {
#if HWY_TARGET == HWY_AVX3
    if (dm.C % 32 == 0) {
        MlaRangeDotBody(q, cache, j0, j1, dm, scale, part, sc);
        return;
    }
#endif
    MlaRange(q, cache, j0, j1, dm, nullptr, scale, part, buf, sc);
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(MlaRangeF32);
HWY_EXPORT(MlaRangeBf16);
HWY_EXPORT(MlaRangeQ8);
HWY_EXPORT(MlaRangeDot);

using namespace flash_detail;

namespace {

// bf16_dot: simd_bf16_dot_decode(), read by the caller before its threads start (a bad
// T6_BF16_DOT or T6_SIMD throws there, not inside the parallel region); float records ignore it.
void mla_range(const float* q, const CacheBlocks<float>& cache, int j0, int j1,
               const MlaCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
               std::vector<float>& sc, bool /*bf16_dot*/) {
    HWY_DYNAMIC_DISPATCH(MlaRangeF32)(q, cache, j0, j1, dm, scale, part, buf, sc);
}
void mla_range(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
               const MlaCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
               std::vector<float>& sc, bool bf16_dot) {
    if (bf16_dot)
        HWY_DYNAMIC_DISPATCH(MlaRangeDot)(q, cache, j0, j1, dm, scale, part, buf, sc);
    else
        HWY_DYNAMIC_DISPATCH(MlaRangeBf16)(q, cache, j0, j1, dm, scale, part, buf, sc);
}

}  // namespace

std::string flash_mla_kernel_name(bool bf16_cache, int latent) {
    const std::string target = simd_highway_target_name();
    if (bf16_cache && simd_bf16_dot_decode() && target == "AVX3" && latent % 32 == 0)
        return "avx512bf16: vdpbf16ps on the bf16 latent";
    return "Highway " + target + (bf16_cache ? " (bf16 latent widened per block)" : "");
}

template <typename T>
void flash_mla_decode(float* const* out, const float* const* q, const CacheBlocks<T>* cache,
                      const int* lens, int nseq, const MlaCacheDims& dims, float scale) {
    if constexpr (std::is_same_v<T, int8_t>) {
        const Q8Layout L = q8_layout(dims);
        if (!L.rows.empty()) {  // [c | k_pe] (or one of them) with a scale each: read in place
            run_split(
                out, lens, nseq, dims.H, dims.C,
                [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                    HWY_DYNAMIC_DISPATCH(MlaRangeQ8)
                    (q[t.seq], cache[t.seq], t.j0, t.j1, dims, L, scale, p, buf, sc);
                });
            return;
        }
        run_split(out, lens, nseq, dims.H, dims.C,
                  [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                      q8_chunks(cache[t.seq], t.j0, t.j1, L,
                                [&](const CacheBlocks<float>& v, int n) {
                                    mla_range(q[t.seq], v, 0, n, dims, scale, p, buf, sc, false);
                                });
                  });
    } else {
        const bool bf16_dot = std::is_same_v<T, uint16_t> && simd_bf16_dot_decode();
        run_split(out, lens, nseq, dims.H, dims.C,
                  [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                      mla_range(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc,
                                bf16_dot);
                  });
    }
}

template <typename T>
void flash_mla_decode(float* const* out, const float* const* q, const T* const* cache,
                      const int* lens, int nseq, const MlaCacheDims& dims, float scale) {
    const std::vector<CacheBlocks<T>> views = contiguous_views(cache, nseq);
    flash_mla_decode(out, q, views.data(), lens, nseq, dims, scale);
}

template void flash_mla_decode<float>(float* const*, const float* const*, const float* const*,
                                      const int*, int, const MlaCacheDims&, float);
template void flash_mla_decode<uint16_t>(float* const*, const float* const*, const uint16_t* const*,
                                         const int*, int, const MlaCacheDims&, float);
template void flash_mla_decode<float>(float* const*, const float* const*, const CacheBlocks<float>*,
                                      const int*, int, const MlaCacheDims&, float);
template void flash_mla_decode<uint16_t>(float* const*, const float* const*,
                                         const CacheBlocks<uint16_t>*, const int*, int,
                                         const MlaCacheDims&, float);

template void flash_mla_decode<int8_t>(float* const*, const float* const*, const int8_t* const*,
                                       const int*, int, const MlaCacheDims&, float);
template void flash_mla_decode<int8_t>(float* const*, const float* const*,
                                       const CacheBlocks<int8_t>*, const int*, int,
                                       const MlaCacheDims&, float);

}  // namespace t6
#endif  // HWY_ONCE
