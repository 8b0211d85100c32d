// Flash-decoding over a standard K/V cache (MHA, MQA, GQA): see flash_decode.h. One query token
// per sequence, o_h = sum_j softmax_j(scale q_h . K[j, kv(h)]) V[j, kv(h)], kv(h) = h / (Hq/Hkv),
// with the online softmax over blocks of the cache and the cache split into tasks across threads
// (flash_decode_common.h).
//
// The vector kernel is written once with Google Highway and compiled per SIMD target (AVX3,
// AVX2, SCALAR: foreach_target.h); run-time dispatch picks the target in force (core/simd.h).
// It is bound by the bytes of the cache (2 FLOPs per cached number), so each record is streamed
// once, token-major, in blocks of 16 tokens:
//  1. scores: every K row is loaded into registers once and multiplied with the query heads that
//     share it (GQA groups); the N-lane partial sums of head h are laid out [h][t] so that one
//     transpose-add gives N of the block's scores of head h in vector lanes;
//  2. online softmax per head on those 16 / N vectors;
//  3. values: acc[h] (D/N registers) += p[h][t] V[t][kv(h)] over the block, which is still in L2.
// A bf16 cache is read in place and widened in registers. Head sizes other than 16, 32, 64 or
// 128 (or not a multiple of N) take a portable plain-loop version.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/simd.h"
#include "kernels/flash_decode_common.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/flash_kv_decode.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/flash_decode-inl.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
using namespace flash;
using flash_detail::Partial;

constexpr int kKvBlock = 16;   // tokens per online-softmax block
constexpr int kTileHeads = 6;  // heads per value tile (their accumulators stay in registers)

// Value-tile columns: NV vectors of the row at a time (HB*NV accumulators, NV row vectors and a
// broadcast probability in registers: 6*4 + 4 + 1 of 32 on AVX3 and NEON, 6*2 + 2 + 1 of 16 on
// AVX2).
template <int NC>
constexpr int ValueVecs() {
#if HWY_TARGET == HWY_AVX2
    return NC < 2 ? NC : 2;
#else
    return NC < 4 ? NC : 4;
#endif
}

// Value aggregation of one tile: heads [h0, h0+HB), columns [c0, c0 + NV*N), over the block's n
// records: acc[h] = alpha[h] acc[h] + sum_t P[h][t] V[t, kv(h)]. kShared: the tile's heads share
// one KV head (a GQA/MQA group), so each V row is loaded (bf16/q8: widened) once per tile and
// multiplies every head of it; otherwise (MHA) head h0+i reads KV head h0+i. The accumulators
// stay in registers across the block (HB*NV independent FMA chains).
template <int HB, int NV, bool kShared, typename T>
HWY_INLINE void ValuesTileKv(float* acc, int D, int c0, int h0, long v_off, const float* P,
                             const float* alpha, const T* recs, long rec, int n) {
    const DF d;
    VF a[HB][NV];
#pragma GCC unroll 8
    for (int i = 0; i < HB; i++) {
        const VF al = hn::Set(d, alpha[h0 + i]);
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++)
            a[i][c] = hn::Mul(al, hn::LoadU(d, acc + size_t(h0 + i) * D + c0 + kN * c));
    }
    if constexpr (kShared) {
        const T* vr = recs + v_off + c0;
        for (int t = 0; t < n; t++) {
            VF v[NV];
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++) v[c] = LoadF32(vr + t * rec + kN * c);
#pragma GCC unroll 8
            for (int i = 0; i < HB; i++) {
                const VF p = hn::Set(d, P[(h0 + i) * kKvBlock + t]);
#pragma GCC unroll 4
                for (int c = 0; c < NV; c++) a[i][c] = hn::MulAdd(p, v[c], a[i][c]);
            }
        }
    } else {
        for (int t = 0; t < n; t++) {
#pragma GCC unroll 8
            for (int i = 0; i < HB; i++) {
                const T* vr = recs + t * rec + v_off + long(i) * D + c0;
                const VF p = hn::Set(d, P[(h0 + i) * kKvBlock + t]);
#pragma GCC unroll 4
                for (int c = 0; c < NV; c++) a[i][c] = hn::MulAdd(p, LoadF32(vr + kN * c), a[i][c]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < HB; i++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) hn::StoreU(a[i][c], d, acc + size_t(h0 + i) * D + c0 + kN * c);
}

// Heads [h0, h0+hb) (hb <= kTileHeads) in one tile, all columns, NV vectors at a time.
template <int NC, bool kShared, typename T>
HWY_INLINE void ValuesTilesKv(float* acc, int h0, int hb, long v_off, const float* P,
                              const float* alpha, const T* recs, long rec, int n) {
    constexpr int D = NC * kN, NV = ValueVecs<NC>();
    static_assert(NC % NV == 0);
    for (int c0 = 0; c0 < D; c0 += NV * kN) {
        switch (hb) {
#define T6_KV_TILE(HB)                                                                \
    case HB:                                                                          \
        ValuesTileKv<HB, NV, kShared>(acc, D, c0, h0, v_off, P, alpha, recs, rec, n); \
        break;
            T6_KV_TILE(1)
            T6_KV_TILE(2)
            T6_KV_TILE(3)
            T6_KV_TILE(4)
            T6_KV_TILE(5)
            T6_KV_TILE(6)
#undef T6_KV_TILE
            default:
                break;
        }
    }
}

// A q8 cache (T = int8_t, kernels/q8_cache.h) is read in place too: the codes are widened to
// float32 in registers and the row scales folded in, the K row's into the scores (scale_k times
// the block's transposed dot products q . codes), the V row's into the probabilities
// ((p * scale_v) * codes).
//
// Per block of kKvBlock records: (1) partial scores, each K row loaded once for the group of
// query heads that shares it; (2) per head, the block's scores (transpose-add) and its maximum;
// then, vectorised over heads, the new running maxima and the rescale factors alpha; per head the
// probabilities and the running sums; (3) values in register tiles of up to kTileHeads heads of
// one group (ValuesTileKv), so each V row is loaded once per tile, not once per query head.
template <int NC, typename T>
HWY_INLINE void KvRangeD(const float* q, const CacheBlocks<T>& cache, int j0, int j1,
                         const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    constexpr int D = NC * kN;
    constexpr bool kQ8 = std::is_same_v<T, int8_t>;
    const DF d;
    const int Hq = dm.Hq, Hkv = dm.Hkv, group = Hq / Hkv;
    // q8: the codes (2 Hkv D bytes, a multiple of 4) then 2 Hkv scales (K heads, V heads).
    const long codes = 2L * Hkv * D;
    const long rec = kQ8 ? codes + 8L * Hkv : dm.rec();
    const auto row_scale = [&](const T* r, int row) {
        float s = 1.0f;
        if constexpr (kQ8) std::memcpy(&s, r + codes + 4L * row, 4);
        (void)r, (void)row;
        return s;
    };
    const int hpad = (Hq + kN - 1) / kN * kN;
    // Written before read: no memset.
    sc.resize(size_t(Hq) * kKvBlock * (kN + 1) + 2 * size_t(hpad) + 2 * size_t(Hkv) * kKvBlock);
    float* Pv = sc.data();                       // (Hq, kKvBlock, N) partial scores
    float* P = Pv + size_t(Hq) * kKvBlock * kN;  // (Hq, kKvBlock) scores, then probabilities
    float* MB = P + size_t(Hq) * kKvBlock;       // (hpad) block maxima
    float* alpha = MB + hpad;                    // (hpad) rescale factors
    float* KS = alpha + hpad;                    // q8: (Hkv, kKvBlock) scale * K row scales
    float* VS = KS + size_t(Hkv) * kKvBlock;     // q8: (Hkv, kKvBlock) V row scales
    const VF vscale = hn::Set(d, scale);
    // Blocks of kKvBlock records, never across a cache block (CacheBlocks).
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = std::min({kKvBlock, j1 - b0, cache.left(b0)});
        const T* recs = cache.at(b0, rec);  // read in place, bf16 widened on load
        const int nb0 = b0 + n;             // the next block
        const int nn = nb0 < j1 ? std::min({kKvBlock, j1 - nb0, cache.left(nb0)}) : 0;
        const T* next = nn > 0 ? cache.at(nb0, rec) : nullptr;
        // (1) Partial scores: N-lane partial dot products Pv[h][t].
        for (int t = 0; t < n; t++) {
            if (t < nn) {  // the matching record of the next block, into L2
                const char* nx = reinterpret_cast<const char*>(next + t * rec);
                for (long off = 0; off < rec * long(sizeof(T)); off += 64)
                    __builtin_prefetch(nx + off, 0, 2);
            }
            for (int kv = 0; kv < Hkv; kv++) {
                const T* kr = recs + t * rec + long(kv) * D;
                VF k[NC];
                for (int c = 0; c < NC; c++) k[c] = LoadF32(kr + kN * c);
                for (int g = 0; g < group; g++) {
                    const int h = kv * group + g;
                    const float* qh = q + size_t(h) * D;
                    VF a = hn::Mul(k[0], hn::LoadU(d, qh));
                    for (int c = 1; c < NC; c++) a = hn::MulAdd(k[c], hn::LoadU(d, qh + kN * c), a);
                    hn::StoreU(a, d, Pv + (size_t(h) * kKvBlock + t) * kN);
                }
            }
        }
        if constexpr (kQ8) {
            for (int kv = 0; kv < Hkv; kv++)
                for (int t = 0; t < kKvBlock; t++) {
                    const bool in = t < n;
                    KS[kv * kKvBlock + t] = in ? scale * row_scale(recs + t * rec, kv) : 0.0f;
                    VS[kv * kKvBlock + t] = in ? row_scale(recs + t * rec, Hkv + kv) : 0.0f;
                }
        }
        // (2) The block's scores per head, N at a time (tokens past n are -inf: probability 0),
        // and their maximum.
        for (int h = 0; h < Hq; h++) {
            VF mb = hn::Set(d, -INFINITY);
            for (int t0 = 0; t0 < kKvBlock; t0 += kN) {
                VF v[kN];
                for (int k = 0; k < kN; k++)
                    v[k] = t0 + k < n ? hn::LoadU(d, Pv + (size_t(h) * kKvBlock + t0 + k) * kN)
                                      : hn::Zero(d);
                VF st;
                if constexpr (kQ8)
                    st = hn::Mul(TransposeSum(v), hn::LoadU(d, KS + (h / group) * kKvBlock + t0));
                else
                    st = hn::Mul(vscale, TransposeSum(v));
                st = hn::IfThenElse(LaneMask(n - t0), st, hn::Set(d, -INFINITY));
                hn::StoreU(st, d, P + h * kKvBlock + t0);
                mb = hn::Max(mb, st);
            }
            MB[h] = hn::GetLane(hn::MaxOfLanes(d, mb));
        }
        // The new running maxima and alpha = e^{m_old - m_new}, N heads at a time (m = -inf on
        // the first block: alpha 0).
        for (int h0 = 0; h0 < Hq; h0 += kN) {
            const auto live = LaneMask(Hq - h0);
            const VF m = hn::MaskedLoad(live, d, part.m + h0);
            const VF mnew = hn::Max(m, hn::MaskedLoad(live, d, MB + h0));
            hn::StoreU(hn::Exp(d, hn::Sub(m, mnew)), d, alpha + h0);
            hn::BlendedStore(mnew, live, d, part.m + h0);
        }
        // Probabilities (q8: times the V row scales) and running sums.
        for (int h = 0; h < Hq; h++) {
            const VF vm = hn::Set(d, part.m[h]);
            VF sum = hn::Zero(d);
            for (int t0 = 0; t0 < kKvBlock; t0 += kN) {
                float* ph = P + h * kKvBlock + t0;
                const VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, ph), vm));  // -inf: 0
                sum = hn::Add(sum, e);
                if constexpr (kQ8)
                    hn::StoreU(hn::Mul(e, hn::LoadU(d, VS + (h / group) * kKvBlock + t0)), d, ph);
                else
                    hn::StoreU(e, d, ph);
            }
            part.l[h] = part.l[h] * alpha[h] + hn::GetLane(hn::SumOfLanes(d, sum));
        }
        // (3) Values, in register tiles of heads: a group's heads share each V row (GQA, MQA);
        // with groups of one (MHA) a tile spans several KV heads.
        if (group == 1) {
            const int tiles = (Hq + kTileHeads - 1) / kTileHeads;
            for (int ti = 0; ti < tiles; ti++) {
                const int h0 = Hq * ti / tiles, hb = Hq * (ti + 1) / tiles - h0;
                ValuesTilesKv<NC, false>(part.acc, h0, hb, long(Hkv + h0) * D, P, alpha, recs, rec,
                                         n);
            }
        } else {
            const int tiles = (group + kTileHeads - 1) / kTileHeads;
            for (int kv = 0; kv < Hkv; kv++)
                for (int ti = 0; ti < tiles; ti++) {
                    const int h0 = kv * group + group * ti / tiles;
                    const int hb = kv * group + group * (ti + 1) / tiles - h0;
                    ValuesTilesKv<NC, true>(part.acc, h0, hb, long(Hkv + kv) * D, P, alpha, recs,
                                            rec, n);
                }
        }
    }
}

// The vector kernel for D in {16, 32, 64, 128} with N | D; false when D is not one of them.
template <typename T>
HWY_INLINE bool KvRangeT(const float* q, const CacheBlocks<T>& cache, int j0, int j1,
                         const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    if (dm.D % kN != 0) return false;
    switch (dm.D / kN) {
#define T6_KV_CASE(NC)                                       \
    case NC:                                                 \
        KvRangeD<NC>(q, cache, j0, j1, dm, scale, part, sc); \
        return true;
#if HWY_TARGET == HWY_SCALAR
        T6_KV_CASE(16)
        T6_KV_CASE(32)
        T6_KV_CASE(64)
        T6_KV_CASE(128)
#elif HWY_TARGET == HWY_AVX2
        T6_KV_CASE(2)
        T6_KV_CASE(4)
        T6_KV_CASE(8)
        T6_KV_CASE(16)
#elif HWY_TARGET == HWY_NEON
        T6_KV_CASE(4)
        T6_KV_CASE(8)
        T6_KV_CASE(16)
        T6_KV_CASE(32)
#else
        T6_KV_CASE(1)
        T6_KV_CASE(2)
        T6_KV_CASE(4)
        T6_KV_CASE(8)
#endif
#undef T6_KV_CASE
        default:
            return false;
    }
}

}  // namespace

bool KvRangeF32(const float* q, const CacheBlocks<float>& cache, int j0, int j1,
                const KvCacheDims& dm, float scale, flash_detail::Partial part,
                std::vector<float>& sc) {
    return KvRangeT(q, cache, j0, j1, dm, scale, part, sc);
}
bool KvRangeBf16(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
                 const KvCacheDims& dm, float scale, flash_detail::Partial part,
                 std::vector<float>& sc) {
    return KvRangeT(q, cache, j0, j1, dm, scale, part, sc);
}
bool KvRangeQ8(const float* q, const CacheBlocks<int8_t>& cache, int j0, int j1,
               const KvCacheDims& dm, float scale, flash_detail::Partial part,
               std::vector<float>& sc) {
    return KvRangeT(q, cache, j0, j1, dm, scale, part, sc);
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(KvRangeF32);
HWY_EXPORT(KvRangeBf16);
HWY_EXPORT(KvRangeQ8);

using namespace flash_detail;

namespace {

// One task of standard K/V decoding: query q (Hq*D) over records [j0, j1). Portable version.
template <typename T>
void kv_range_generic(const float* q, const CacheBlocks<T>& cache, int j0, int j1,
                      const KvCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
                      std::vector<float>& sc) {
    const int Hq = dm.Hq, Hkv = dm.Hkv, D = dm.D, group = Hq / Hkv;
    const long rec = dm.rec();
    sc.resize(size_t(Hq) * kBlock);
    float* S = sc.data();
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = std::min({kBlock, j1 - b0, cache.left(b0)});
        const float* recs = records_f32(cache.at(b0, rec), rec, 0, n, buf);
        for (int jj = 0; jj < n; jj++) {
            const float* K = recs + jj * rec;
            for (int h = 0; h < Hq; h++)
                S[h * kBlock + jj] = scale * dot(q + h * D, K + (h / group) * D, D);
        }
        for (int h = 0; h < Hq; h++)
            softmax_update(S + h * kBlock, n, part.m[h], part.l[h], part.acc + size_t(h) * D, D);
        // Token-major, so each record streams through L1 once for all heads.
        for (int jj = 0; jj < n; jj++) {
            const float* V = recs + jj * rec + long(Hkv) * D;
            for (int h = 0; h < Hq; h++)
                axpy(part.acc + size_t(h) * D, S[h * kBlock + jj], V + long(h / group) * D, D);
        }
    }
}

bool kv_range_simd(const float* q, const CacheBlocks<float>& cache, int j0, int j1,
                   const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    return HWY_DYNAMIC_DISPATCH(KvRangeF32)(q, cache, j0, j1, dm, scale, part, sc);
}
bool kv_range_simd(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
                   const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    return HWY_DYNAMIC_DISPATCH(KvRangeBf16)(q, cache, j0, j1, dm, scale, part, sc);
}
bool kv_range_simd(const float* q, const CacheBlocks<int8_t>& cache, int j0, int j1,
                   const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    return HWY_DYNAMIC_DISPATCH(KvRangeQ8)(q, cache, j0, j1, dm, scale, part, sc);
}

}  // namespace

template <typename T>
void flash_kv_decode(float* const* out, const float* const* q, const CacheBlocks<T>* cache,
                     const int* lens, int nseq, const KvCacheDims& dims, float scale) {
    if constexpr (std::is_same_v<T, int8_t>) {
        const Q8Layout L = q8_layout(dims);
        run_split(out, lens, nseq, dims.Hq, dims.D,
                  [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                      // In place (codes widened in registers); head sizes the vector kernel
                      // does not take dequantize chunk by chunk for the portable version.
                      if (kv_range_simd(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, sc))
                          return;
                      q8_chunks(
                          cache[t.seq], t.j0, t.j1, L, [&](const CacheBlocks<float>& v, int n) {
                              if (!kv_range_simd(q[t.seq], v, 0, n, dims, scale, p, sc))
                                  kv_range_generic(q[t.seq], v, 0, n, dims, scale, p, buf, sc);
                          });
                  });
    } else {
        run_split(out, lens, nseq, dims.Hq, dims.D,
                  [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                      if (!kv_range_simd(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, sc))
                          kv_range_generic(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf,
                                           sc);
                  });
    }
}

template <typename T>
void flash_kv_decode(float* const* out, const float* const* q, const T* const* cache,
                     const int* lens, int nseq, const KvCacheDims& dims, float scale) {
    const std::vector<CacheBlocks<T>> views = contiguous_views(cache, nseq);
    flash_kv_decode(out, q, views.data(), lens, nseq, dims, scale);
}

template void flash_kv_decode<float>(float* const*, const float* const*, const float* const*,
                                     const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<uint16_t>(float* const*, const float* const*, const uint16_t* const*,
                                        const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<float>(float* const*, const float* const*, const CacheBlocks<float>*,
                                     const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<uint16_t>(float* const*, const float* const*,
                                        const CacheBlocks<uint16_t>*, const int*, int,
                                        const KvCacheDims&, float);

template void flash_kv_decode<int8_t>(float* const*, const float* const*, const int8_t* const*,
                                      const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<int8_t>(float* const*, const float* const*,
                                      const CacheBlocks<int8_t>*, const int*, int,
                                      const KvCacheDims&, float);

}  // namespace t6
#endif  // HWY_ONCE
