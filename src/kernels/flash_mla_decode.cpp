// Absorbed MLA decoding over the latent cache: see flash_decode.h. With the query absorbed,
// [q_lat_h | q_pe_h], every head scores the whole record [c_j | k_pe_j] with one dot product and
// keeps its output in the latent: s_h(j) = scale [q_lat_h | q_pe_h] . [c_j | k_pe_j],
// o_h = sum_j softmax(s_h)(j) c_j (the caller applies W_UV[h]). Each record is read once for all
// H heads, so the kernel is compute-bound (2H(2 d_c + d_h^R) FLOPs per d_c + d_h^R cached numbers).
//
// Written once with Google Highway and compiled per SIMD target (AVX3, AVX2, SCALAR), chosen at
// run time (core/simd.h). Heads live in the N vector lanes (groups of N): the query is
// transposed once per task, qT (C+R, Hp) scaled, so the scores of 8 records are 8 accumulators
// updated by broadcast(record element) * qT row, with no horizontal sums (two head groups share
// each broadcast when their number is even: ScoreTilePair); the online softmax runs
// across heads lane-wise; values accumulate in register tiles of up to 6 heads x 4N latent
// columns (x 2N on AVX2: kValueVecs) (values_tiles, flash_decode-inl.h). A bf16 cache is widened
// block by block. Blocks of 32 records (36 KB of f32 on small-mla, in L1 for the value tiles); the
// next block is prefetched into L2 a few lines per record during the value tiles (NextBlock), not
// in one burst: a burst of a block's ~300-600 lines stalls on the core's outstanding-miss limit.
// (Tried and not kept, 2026-12: a dot form of the scores on AVX-512, the record in the lanes and
// 13 heads x 2 records of accumulators reduced by two transpose-adds, uses every lane where this
// form uses 13 of 16 on small-mla, but measured 5-15% slower per kernel call: 28 loads per 26
// FMAs and the reductions.)
//
// A q8 cache (q8_cache.h: the record is the codes of c (d_c) and k_pe (d_h^R), contiguous, then
// padding and the two rows' float32 scales sc_c(j), sc_pe(j)) has its own kernel, MlaRangeQ8: the
// codes are widened int8 -> int32 -> float32 with vector loads, unscaled, 8 records at a time just
// before the score tile that reads them (so they are in L1 when the broadcasts read them), into
// a block buffer that the value tiles read again; the row scales are per-record scalars, folded
// in after the products:
//   s_h(j) = scale (sc_c(j) q_lat_h . codes_c(j) + sc_pe(j) q_pe_h . codes_pe(j))
//   o_h    = sum_j (p_h(j) sc_c(j)) codes_c(j)     (the softmax sums take p_h(j) unscaled)
// so no dequantized copy of the records is made (the chunk path, q8_chunks, remains for layouts
// that are not two rows: d_c or d_h^R zero).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

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
using flash_detail::Partial;

constexpr int kMlaBlock = 32;  // records per online-softmax block (as kQ8Block)
constexpr int kScoreTile = 8;  // records per score tile (independent accumulators)
// Value tiles: up to 6 heads x kValueVecs vectors of latent columns. On AVX2 (16 registers) 2
// vectors, so that 6 heads fit (12 accumulators, 2 row vectors and a weight: values_tiles); its
// default of 4 vectors there means tiles of 3 heads whose 12 accumulators, 4 row vectors and a
// weight are 17 registers, one accumulator spilled to the stack and reloaded every record.
#if HWY_TARGET == HWY_AVX2
constexpr int kValueVecs = 2;
#else
constexpr int kValueVecs = 4;
#endif

// One score tile: a[jj] (heads g*N.. in lanes) = sum_{k0 <= k < k1} qT[k, heads] rp[jj][k] for
// the kScoreTile records rp (broadcast record element times a qT row: no horizontal sums).
HWY_INLINE void ScoreTile(const float* qg, int Hp, const float* const* rp, long k0, long k1,
                          VF* a) {
    const DF d;
    for (int jj = 0; jj < kScoreTile; jj++) a[jj] = hn::Zero(d);
    for (long k = k0; k < k1; k++) {
        const VF qv = hn::LoadU(d, qg + k * Hp);
        for (int jj = 0; jj < kScoreTile; jj++)
            a[jj] = hn::MulAdd(hn::Set(d, rp[jj][k]), qv, a[jj]);
    }
}

// ScoreTile for two head groups at once (heads g*N.. and (g+1)*N.. of qg, qg + N): a[jj] and
// a[kScoreTile + jj]. Each broadcast record element feeds two FMAs, so per record element one
// broadcast and two FMAs instead of two and two (AVX2 broadcasts are instructions of their own;
// on AVX-512 they are a load port each); records in halves of 4: 8 accumulators, 2 query
// vectors and a broadcast in registers.
HWY_INLINE void ScoreTilePair(const float* qg, int Hp, const float* const* rp, long k0, long k1,
                              VF* a) {
    const DF d;
    for (int half = 0; half < kScoreTile; half += 4) {
        const float* r0 = rp[half];
        const float* r1 = rp[half + 1];
        const float* r2 = rp[half + 2];
        const float* r3 = rp[half + 3];
        VF a0 = hn::Zero(d), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (long k = k0; k < k1; k++) {
            const VF q0 = hn::LoadU(d, qg + k * Hp), q1 = hn::LoadU(d, qg + k * Hp + kN);
            VF x = hn::Set(d, r0[k]);
            a0 = hn::MulAdd(x, q0, a0);
            b0 = hn::MulAdd(x, q1, b0);
            x = hn::Set(d, r1[k]);
            a1 = hn::MulAdd(x, q0, a1);
            b1 = hn::MulAdd(x, q1, b1);
            x = hn::Set(d, r2[k]);
            a2 = hn::MulAdd(x, q0, a2);
            b2 = hn::MulAdd(x, q1, b2);
            x = hn::Set(d, r3[k]);
            a3 = hn::MulAdd(x, q0, a3);
            b3 = hn::MulAdd(x, q1, b3);
        }
        a[half] = a0;
        a[half + 1] = a1;
        a[half + 2] = a2;
        a[half + 3] = a3;
        a[kScoreTile + half] = b0;
        a[kScoreTile + half + 1] = b1;
        a[kScoreTile + half + 2] = b2;
        a[kScoreTile + half + 3] = b3;
    }
}

// The scores of groups [g, g + gs) (gs 1 or 2) of one score tile into a[gg * kScoreTile + jj].
HWY_INLINE void ScoreGroups(const float* qT, int Hp, int g, int gs, const float* const* rp, long k0,
                            long k1, VF* a) {
    if (gs == 2)
        ScoreTilePair(qT + kN * g, Hp, rp, k0, k1, a);
    else
        ScoreTile(qT + kN * g, Hp, rp, k0, k1, a);
}

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
        const VF al = hn::Exp(d, hn::Sub(m, mnew));  // m = -inf: 0
        VF sum = hn::Zero(d);
        for (int j = 0; j < n; j++) {
            float* sj = S + size_t(j) * Hp + kN * g;
            const VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, sj), mnew));
            hn::StoreU(vscale ? hn::Mul(e, hn::Set(d, vscale[j])) : e, d, sj);
            sum = hn::Add(sum, e);
        }
        const VF l = MaskedLoadF32(part.l + kN * g, lanes);
        hn::BlendedStore(hn::MulAdd(l, al, sum), mk, d, part.l + kN * g);
        hn::BlendedStore(mnew, mk, d, part.m + kN * g);
        hn::StoreU(al, d, alpha + kN * g);
    }
}

template <typename T>
HWY_INLINE void MlaRangeT(const float* q, const CacheBlocks<T>& cache, int j0, int j1,
                          const MlaCacheDims& dm, float scale, Partial part,
                          std::vector<float>& buf, std::vector<float>& sc) {
    constexpr int J = kScoreTile;
    const DF d;
    const int H = dm.H, C = dm.C, G = (H + kN - 1) / kN, Hp = kN * G;
    const long rec = dm.rec();
    sc.assign(size_t(rec) * Hp + size_t(kMlaBlock) * Hp + Hp, 0.0f);
    float* qT = sc.data();                      // (rec, Hp), scaled, zero-padded heads
    float* S = qT + size_t(rec) * Hp;           // (kMlaBlock, Hp): scores, then probabilities
    float* alpha = S + size_t(kMlaBlock) * Hp;  // (Hp) rescaling of the running sums
    for (int h = 0; h < H; h++)
        for (long k = 0; k < rec; k++) qT[k * Hp + h] = scale * q[h * rec + k];
    // Blocks of kMlaBlock records, never across a cache block (CacheBlocks).
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = std::min({kMlaBlock, j1 - b0, cache.left(b0)});
        const float* recs = RecordsF32(cache.at(b0, rec), rec, 0, n, buf);
        const int nb0 = b0 + n;  // the next block
        const int nn = nb0 < j1 ? std::min({kMlaBlock, j1 - nb0, cache.left(nb0)}) : 0;
        const T* next = nn > 0 ? cache.at(nb0, rec) : nullptr;
        // Scores S[j, h] = qT[:, h] . record j.
        // Head groups in pairs when their number is even (ScoreTilePair).
        const int gs = G % 2 == 0 ? 2 : 1;
        for (int g = 0; g < G; g += gs)
            for (int jt = 0; jt < n; jt += J) {
                const float* rp[J];
                for (int jj = 0; jj < J; jj++) rp[jj] = recs + std::min(jt + jj, n - 1) * rec;
                VF a[2 * J];
                ScoreGroups(qT, Hp, g, gs, rp, 0, rec, a);
                for (int gg = 0; gg < gs; gg++)
                    for (int jj = 0; jj < J && jt + jj < n; jj++)
                        hn::StoreU(a[gg * J + jj], d, S + size_t(jt + jj) * Hp + kN * (g + gg));
            }
        // Online softmax per head, N heads per vector.
        BlockSoftmax(S, n, H, Hp, part, alpha, nullptr);
        // Latent values: acc[h] = alpha[h] acc[h] + sum_j P[j, h] c_j, in head tiles of up to 6,
        // prefetching the next block into L2.
        values_tiles<OpF32>(
            part.acc, H, C, 6, S, Hp, 1, recs, rec, 0, n, alpha,
            NextBlock{reinterpret_cast<const char*>(next), rec * long(sizeof(T)), nn, 0, 0},
            kValueVecs);
    }
}

// q8 records per online-softmax block: the block's widened codes (kQ8Block (d_c + d_h^R) floats,
// 36 KB on small-mla) stay in L1 for the value tiles.
constexpr int kQ8Block = 32;

// n int8 codes widened to float32 (unscaled).
HWY_INLINE void WidenCodes(float* dst, const int8_t* src, long n) {
    long i = 0;
    for (; i + kN <= n; i += kN) hn::StoreU(LoadF32(src + i), DF(), dst + i);
    for (; i < n; i++) dst[i] = float(src[i]);
}

// MlaRangeT over q8 records read in place (the header comment): the same score tiles, softmax and
// value tiles on codes widened 8 records at a time, the row scales folded into the scores and
// the value weights.
void MlaRangeQ8Impl(const float* q, const CacheBlocks<int8_t>& cache, int j0, int j1,
                    const MlaCacheDims& dm, const Q8Layout& L, float scale, Partial part,
                    std::vector<float>& buf, std::vector<float>& sc) {
    constexpr int J = kScoreTile;
    const DF d;
    const int H = dm.H, C = dm.C, G = (H + kN - 1) / kN, Hp = kN * G;
    const long rec = dm.rec();                    // codes per record: the widened stride
    const long rb = L.bytes, soff = L.scale_off;  // bytes per record, the scales' offset
    sc.assign(size_t(rec) * Hp + size_t(kQ8Block) * Hp + Hp + 2 * size_t(kQ8Block), 0.0f);
    float* qT = sc.data();                     // (rec, Hp), scaled, zero-padded heads
    float* S = qT + size_t(rec) * Hp;          // (kQ8Block, Hp): scores, then value weights
    float* alpha = S + size_t(kQ8Block) * Hp;  // (Hp) rescaling of the running sums
    float* sck = alpha + Hp;                   // (kQ8Block) c's row scales
    float* spe = sck + kQ8Block;               // (kQ8Block) k_pe's row scales
    if (buf.size() < size_t(kQ8Block) * rec) buf.resize(size_t(kQ8Block) * rec);
    float* recs = buf.data();  // (kQ8Block, rec): the block's codes as float32
    for (int h = 0; h < H; h++)
        for (long k = 0; k < rec; k++) qT[k * Hp + h] = scale * q[h * rec + k];
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = std::min({kQ8Block, j1 - b0, cache.left(b0)});
        const int8_t* blk = cache.at(b0, rb);
        const int nb0 = b0 + n;  // the next block
        const int nn = nb0 < j1 ? std::min({kQ8Block, j1 - nb0, cache.left(nb0)}) : 0;
        const int8_t* next = nn > 0 ? cache.at(nb0, rb) : nullptr;
        for (int j = 0; j < n; j++) {
            std::memcpy(sck + j, blk + j * rb + soff, 4);
            std::memcpy(spe + j, blk + j * rb + soff + 4, 4);
        }
        // Scores S[j, h] = sc_c(j) (qT_c[:, h] . codes_c(j)) + sc_pe(j) (qT_pe[:, h] .
        // codes_pe(j)).
        const int gs = G % 2 == 0 ? 2 : 1;  // head groups in pairs (as MlaRangeT)
        for (int g = 0; g < G; g += gs)
            for (int jt = 0; jt < n; jt += J) {
                const int cnt = std::min(J, n - jt);
                if (g == 0) {
                    for (int jj = 0; jj < cnt; jj++)
                        WidenCodes(recs + (jt + jj) * rec, blk + (jt + jj) * rb, rec);
                }
                const float* rp[J];
                for (int jj = 0; jj < J; jj++) rp[jj] = recs + std::min(jt + jj, n - 1) * rec;
                VF a[2 * J];
                ScoreGroups(qT, Hp, g, gs, rp, 0, C, a);
                for (int gg = 0; gg < gs; gg++)
                    for (int jj = 0; jj < cnt; jj++)
                        hn::StoreU(hn::Mul(a[gg * J + jj], hn::Set(d, sck[jt + jj])), d,
                                   S + size_t(jt + jj) * Hp + kN * (g + gg));
                ScoreGroups(qT, Hp, g, gs, rp, C, rec, a);
                for (int gg = 0; gg < gs; gg++)
                    for (int jj = 0; jj < cnt; jj++) {
                        float* s = S + size_t(jt + jj) * Hp + kN * (g + gg);
                        hn::StoreU(
                            hn::MulAdd(a[gg * J + jj], hn::Set(d, spe[jt + jj]), hn::LoadU(d, s)),
                            d, s);
                    }
            }
        // Online softmax per head (as MlaRangeT); the softmax sums take p, the value tiles
        // p sc_c(j) (they read c's codes).
        BlockSoftmax(S, n, H, Hp, part, alpha, sck);
        // Latent values on the widened codes: acc[h] = alpha[h] acc[h] + sum_j W[j, h] codes_c(j),
        // in head tiles of up to 6 (kValueVecs columns wide): each tile reads every c row once,
        // and fewer tiles measured ~13% less kernel time than tiles of 4 on small-mla (AVX-512).
        values_tiles<OpF32>(part.acc, H, C, 6, S, Hp, 1, recs, rec, 0, n, alpha,
                            NextBlock{reinterpret_cast<const char*>(next), rb, nn, 0, 0},
                            kValueVecs);
    }
}

}  // namespace

void MlaRangeQ8(const float* q, const CacheBlocks<int8_t>& cache, int j0, int j1,
                const MlaCacheDims& dm, const Q8Layout& L, float scale, flash_detail::Partial part,
                std::vector<float>& buf, std::vector<float>& sc) {
    MlaRangeQ8Impl(q, cache, j0, j1, dm, L, scale, part, buf, sc);
}
void MlaRangeF32(const float* q, const CacheBlocks<float>& cache, int j0, int j1,
                 const MlaCacheDims& dm, float scale, flash_detail::Partial part,
                 std::vector<float>& buf, std::vector<float>& sc) {
    MlaRangeT(q, cache, j0, j1, dm, scale, part, buf, sc);
}
void MlaRangeBf16(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
                  const MlaCacheDims& dm, float scale, flash_detail::Partial part,
                  std::vector<float>& buf, std::vector<float>& sc) {
    MlaRangeT(q, cache, j0, j1, dm, scale, part, buf, sc);
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(MlaRangeF32);
HWY_EXPORT(MlaRangeBf16);
HWY_EXPORT(MlaRangeQ8);

using namespace flash_detail;

namespace {

void mla_range(const float* q, const CacheBlocks<float>& cache, int j0, int j1,
               const MlaCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
               std::vector<float>& sc) {
    HWY_DYNAMIC_DISPATCH(MlaRangeF32)(q, cache, j0, j1, dm, scale, part, buf, sc);
}
void mla_range(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
               const MlaCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
               std::vector<float>& sc) {
    HWY_DYNAMIC_DISPATCH(MlaRangeBf16)(q, cache, j0, j1, dm, scale, part, buf, sc);
}

}  // namespace

template <typename T>
void flash_mla_decode(float* const* out, const float* const* q, const CacheBlocks<T>* cache,
                      const int* lens, int nseq, const MlaCacheDims& dims, float scale) {
    if constexpr (std::is_same_v<T, int8_t>) {
        const Q8Layout L = q8_layout(dims);
        if (L.rows.size() == 2) {  // [c | k_pe] with a scale each: the codes read in place
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
                                    mla_range(q[t.seq], v, 0, n, dims, scale, p, buf, sc);
                                });
                  });
    } else {
        run_split(out, lens, nseq, dims.H, dims.C,
                  [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                      mla_range(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc);
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
