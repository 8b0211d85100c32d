// Prefill / scoring attention over a KV cache (chunk_attention.h): flash attention of a chunk
// of queries against key/value tiles formed from the cache, S = scale Q K^T and acc += P V by
// GEMM, with the online softmax per query row in between (m_new = max(m, max_j s_j),
// l = l e^{m - m_new} + sum_j e^{s_j - m_new}, acc *= e^{m - m_new}). The softmax rows are a
// Google Highway kernel compiled per SIMD target and chosen at run time (core/simd.h).
#include "kernels/chunk_attention.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)
#include "kernels/gemm.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/chunk_attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {

// Online softmax of rows i < nq of S (row stride ld, nk scores each): scores become
// probabilities relative to the new running max m[i]; l[i] is updated and alpha[i] = e^{m - m_new}
// returned for rescaling the row's output.
void SoftmaxRows(float* S, int ld, int nq, int nk, float* m, float* l, float* alpha) {
    for (int i = 0; i < nq; i++) {
        float* s = S + size_t(i) * ld;
        const float mb = RowMax(s, nk);
        const float mnew = std::max(m[i], mb);
        alpha[i] = std::exp(m[i] - mnew);
        l[i] = l[i] * alpha[i] + ExpShiftSum(s, nk, mnew);
        m[i] = mnew;
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(SoftmaxRows);

namespace {

constexpr int kQ = 64;  // query rows per task
constexpr int kK = 64;  // keys per tile

inline float cache_value(float x) {
    return x;
}
inline float cache_value(uint16_t x) {
    return bf16_to_float(x);
}

// Fills K (kK x D) and V (kK x Dv) for head h from records [j0, j0+n).
template <typename T>
void tile_tpa(float* K, float* V, const T* cache, int j0, int n, int h, const TpaCacheDims& dm) {
    const long rec = dm.rec();
    const int D = dm.D;
    const float ck = 1.0f / float(dm.Rk), cv = 1.0f / float(dm.Rv);
    for (int jj = 0; jj < n; jj++) {
        const T* r = cache + (long(j0) + jj) * rec;
        float* k = K + size_t(jj) * D;
        float* v = V + size_t(jj) * D;
        std::fill(k, k + D, 0.0f);
        std::fill(v, v + D, 0.0f);
        for (int s = 0; s < dm.Rk; s++) {
            const float a = ck * cache_value(r[dm.ak(h, s)]);
            const T* b = r + dm.off_BK() + long(s) * D;
#pragma omp simd
            for (int d = 0; d < D; d++) k[d] += a * cache_value(b[d]);
        }
        for (int s = 0; s < dm.Rv; s++) {
            const float a = cv * cache_value(r[dm.av(h, s)]);
            const T* b = r + dm.off_BV() + long(s) * D;
#pragma omp simd
            for (int d = 0; d < D; d++) v[d] += a * cache_value(b[d]);
        }
    }
}

template <typename T>
void tile_kv(float* K, float* V, const T* cache, int j0, int n, int h, const KvCacheDims& dm) {
    const long rec = dm.rec();
    const int D = dm.D, g = h / (dm.Hq / dm.Hkv);
    for (int jj = 0; jj < n; jj++) {
        const T* r = cache + (long(j0) + jj) * rec;
        for (int d = 0; d < D; d++) {
            K[size_t(jj) * D + d] = cache_value(r[long(g) * D + d]);
            V[size_t(jj) * D + d] = cache_value(r[long(dm.Hkv + g) * D + d]);
        }
    }
}

// Flash attention of query rows [qa, qb) of head h against the cache, tiles from make_tile.
template <typename TileFn>
void chunk_head(float* out, const float* q, int p0, int qa, int qb, int h, int H, int D,
                float scale, TileFn make_tile) {
    const int nq = qb - qa;
    std::vector<float> K(size_t(kK) * D), V(size_t(kK) * D), S(size_t(kQ) * kK),
        acc(size_t(kQ) * D, 0.0f), m(kQ, -INFINITY), l(kQ, 0.0f), alpha(kQ);
    const int last_key = p0 + qb - 1;
    for (int k0 = 0; k0 <= last_key; k0 += kK) {
        const int nk = std::min(kK, last_key + 1 - k0);
        make_tile(K.data(), V.data(), k0, nk);
        gemm(false, true, nq, nk, D, scale, q + (size_t(qa) * H + h) * D, H * D, K.data(), D, 0.0f,
             S.data(), kK);
        for (int i = 0; i < nq; i++) {
            float* s = S.data() + size_t(i) * kK;
            const int qpos = p0 + qa + i;
            for (int jj = std::max(0, qpos + 1 - k0); jj < nk; jj++) s[jj] = -INFINITY;  // causal
        }
        HWY_DYNAMIC_DISPATCH(SoftmaxRows)(S.data(), kK, nq, nk, m.data(), l.data(), alpha.data());
        for (int i = 0; i < nq; i++)
            if (alpha[i] != 1.0f)
                for (int d = 0; d < D; d++) acc[size_t(i) * D + d] *= alpha[i];
        gemm(false, false, nq, D, nk, 1.0f, S.data(), kK, V.data(), D, 1.0f, acc.data(), D);
    }
    for (int i = 0; i < nq; i++) {
        const float inv = 1.0f / l[i];
        float* o = out + (size_t(qa + i) * H + h) * D;
        for (int d = 0; d < D; d++) o[d] = acc[size_t(i) * D + d] * inv;
    }
}

template <typename TileFn>
void chunk_all_heads(float* out, const float* q, int p0, int n, int H, int D, float scale,
                     TileFn tile_for_head) {
    const int qblocks = (n + kQ - 1) / kQ;
#pragma omp parallel for schedule(dynamic, 1) collapse(2)
    for (int h = 0; h < H; h++)
        for (int b = 0; b < qblocks; b++) {
            const int qa = b * kQ, qb = std::min(n, qa + kQ);
            chunk_head(out, q, p0, qa, qb, h, H, D, scale,
                       [&](float* K, float* V, int j0, int nk) { tile_for_head(K, V, j0, nk, h); });
        }
}

}  // namespace

template <typename T>
void tpa_chunk_attention(float* out, const float* q, const T* cache, int p0, int n,
                         const TpaCacheDims& dims, float scale) {
    chunk_all_heads(
        out, q, p0, n, dims.H, dims.D, scale,
        [&](float* K, float* V, int j0, int nk, int h) { tile_tpa(K, V, cache, j0, nk, h, dims); });
}

template <typename T>
void kv_chunk_attention(float* out, const float* q, const T* cache, int p0, int n,
                        const KvCacheDims& dims, float scale) {
    chunk_all_heads(
        out, q, p0, n, dims.Hq, dims.D, scale,
        [&](float* K, float* V, int j0, int nk, int h) { tile_kv(K, V, cache, j0, nk, h, dims); });
}

template void tpa_chunk_attention<float>(float*, const float*, const float*, int, int,
                                         const TpaCacheDims&, float);
template void tpa_chunk_attention<uint16_t>(float*, const float*, const uint16_t*, int, int,
                                            const TpaCacheDims&, float);
template void kv_chunk_attention<float>(float*, const float*, const float*, int, int,
                                        const KvCacheDims&, float);
template void kv_chunk_attention<uint16_t>(float*, const float*, const uint16_t*, int, int,
                                           const KvCacheDims&, float);

}  // namespace t6
#endif  // HWY_ONCE
