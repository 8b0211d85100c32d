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

constexpr int kKvBlock = 16;  // tokens per online-softmax block

// A q8 cache (T = int8_t, kernels/q8_cache.h) is read in place too: the codes are widened to
// float32 in registers and the row scales folded in, the K row's into the head's score
// (scale_k * (q . codes)), the V row's into the probability ((p * scale_v) * codes).
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
    sc.resize(size_t(Hq) * kKvBlock * kN + 2 * kKvBlock);  // written before read: no memset
    float* Pv = sc.data();                                 // (Hq, kKvBlock, N) partial scores
    float* s = Pv + size_t(Hq) * kKvBlock * kN;            // (kKvBlock) scores of one head
    float* p = s + kKvBlock;                               // (kKvBlock) probabilities
    const VF vscale = hn::Set(d, scale);
    // Blocks of kKvBlock records, never across a cache block (CacheBlocks).
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = std::min({kKvBlock, j1 - b0, cache.left(b0)});
        const T* recs = cache.at(b0, rec);  // read in place, bf16 widened on load
        const int nb0 = b0 + n;             // the next block
        const int nn = nb0 < j1 ? std::min({kKvBlock, j1 - nb0, cache.left(nb0)}) : 0;
        const T* next = nn > 0 ? cache.at(nb0, rec) : nullptr;
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
                const VF sk = hn::Set(d, row_scale(recs + t * rec, kv));
                for (int g = 0; g < group; g++) {
                    const int h = kv * group + g;
                    const float* qh = q + size_t(h) * D;
                    VF a = hn::Mul(k[0], hn::LoadU(d, qh));
                    for (int c = 1; c < NC; c++) a = hn::MulAdd(k[c], hn::LoadU(d, qh + kN * c), a);
                    if constexpr (kQ8) a = hn::Mul(a, sk);
                    hn::StoreU(a, d, Pv + (size_t(h) * kKvBlock + t) * kN);
                }
            }
        }
        for (int h = 0; h < Hq; h++) {
            // Scores of the block, N at a time; tokens past n are -inf (probability 0).
            VF mb = hn::Set(d, -INFINITY);
            for (int t0 = 0; t0 < kKvBlock; t0 += kN) {
                VF v[kN];
                for (int k = 0; k < kN; k++)
                    v[k] = t0 + k < n ? hn::LoadU(d, Pv + (size_t(h) * kKvBlock + t0 + k) * kN)
                                      : hn::Zero(d);
                const VF st = hn::IfThenElse(LaneMask(n - t0), hn::Mul(vscale, TransposeSum(v)),
                                             hn::Set(d, -INFINITY));
                hn::StoreU(st, d, s + t0);
                mb = hn::Max(mb, st);
            }
            const float mnew = std::max(part.m[h], hn::GetLane(hn::MaxOfLanes(d, mb)));
            const float alpha = std::exp(part.m[h] - mnew);  // m = -inf on the first block: 0
            const VF vm = hn::Set(d, mnew);
            VF sum = hn::Zero(d);
            for (int t0 = 0; t0 < kKvBlock; t0 += kN) {
                const VF e = hn::Exp(d, hn::Sub(hn::LoadU(d, s + t0), vm));  // -inf: 0
                hn::StoreU(e, d, p + t0);
                sum = hn::Add(sum, e);
            }
            part.l[h] = part.l[h] * alpha + hn::GetLane(hn::SumOfLanes(d, sum));
            part.m[h] = mnew;
            float* acc = part.acc + size_t(h) * D;
            const VF al = hn::Set(d, alpha);
            VF a[NC];
            for (int c = 0; c < NC; c++) a[c] = hn::Mul(al, hn::LoadU(d, acc + kN * c));
            const T* vr = recs + long(Hkv + h / group) * D;
            for (int t = 0; t < n; t++) {
                const VF pt = hn::Set(d, p[t] * row_scale(recs + t * rec, Hkv + h / group));
                for (int c = 0; c < NC; c++)
                    a[c] = hn::MulAdd(pt, LoadF32(vr + t * rec + kN * c), a[c]);
            }
            for (int c = 0; c < NC; c++) hn::StoreU(a[c], d, acc + kN * c);
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
