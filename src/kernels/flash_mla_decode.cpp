// Absorbed MLA decoding over the latent cache: see flash_decode.h.
#include "kernels/flash_decode_common.h"
#include "kernels/gemm.h"

namespace t6 {

using namespace flash_detail;

namespace {

// One task of absorbed MLA decoding: query q (H, C+R) over records [j0, j1), in blocks of
// kMlaBlock records. Each record is read once for all heads (the kernel is compute-bound).
constexpr int kMlaBlock = 64;

#ifdef __AVX512F__
// AVX-512 version. Heads live in the 16 vector lanes (groups of 16): the query is transposed
// once per task, qT (C+R, Hp) scaled, so the scores of 8 records are 8 accumulators updated by
// broadcast(record element) * qT row, with no horizontal sums; the online softmax runs across
// heads lane-wise; values accumulate in register tiles of 4 heads x 64 latent columns
// (values_tiles).
template <typename T>
void mla_range(const float* q, const T* cache, int j0, int j1, const MlaCacheDims& dm, float scale,
               Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    constexpr int J = 8;  // records per score tile (independent accumulators)
    const int H = dm.H, C = dm.C, G = (H + 15) / 16, Hp = 16 * G;
    const long rec = dm.rec();
    sc.assign(size_t(rec) * Hp + size_t(kMlaBlock) * Hp + Hp, 0.0f);
    float* qT = sc.data();                      // (rec, Hp), scaled, zero-padded heads
    float* S = qT + size_t(rec) * Hp;           // (kMlaBlock, Hp): scores, then probabilities
    float* alpha = S + size_t(kMlaBlock) * Hp;  // (Hp) rescaling of the running sums
    for (int h = 0; h < H; h++)
        for (long k = 0; k < rec; k++) qT[k * Hp + h] = scale * q[h * rec + k];
    for (int b0 = j0; b0 < j1; b0 += kMlaBlock) {
        const int n = std::min(kMlaBlock, j1 - b0);
        const float* recs = records_f32(cache, rec, b0, n, buf);
        // Scores S[j, h] = qT[:, h] . record j.
        for (int g = 0; g < G; g++)
            for (int jt = 0; jt < n; jt += J) {
                // Prefetch the matching records of the next block into L2 (the J record
                // streams read here are too many for the hardware prefetcher to run ahead).
                if (g == 0 && b0 + kMlaBlock + jt < j1) {
                    const int cnt = std::min(J, j1 - (b0 + kMlaBlock + jt));
                    const char* nx =
                        reinterpret_cast<const char*>(cache + (long(b0) + kMlaBlock + jt) * rec);
                    for (long off = 0; off < long(cnt) * rec * long(sizeof(T)); off += 64)
                        _mm_prefetch(nx + off, _MM_HINT_T1);
                }
                const float* rp[J];
                for (int jj = 0; jj < J; jj++) rp[jj] = recs + std::min(jt + jj, n - 1) * rec;
                __m512 a[J];
                for (int jj = 0; jj < J; jj++) a[jj] = _mm512_setzero_ps();
                const float* qg = qT + 16 * g;
                for (long k = 0; k < rec; k++) {
                    const __m512 qv = _mm512_loadu_ps(qg + k * Hp);
                    for (int jj = 0; jj < J; jj++)
                        a[jj] = _mm512_fmadd_ps(_mm512_set1_ps(rp[jj][k]), qv, a[jj]);
                }
                for (int jj = 0; jj < J && jt + jj < n; jj++)
                    _mm512_storeu_ps(S + size_t(jt + jj) * Hp + 16 * g, a[jj]);
            }
        // Online softmax per head, 16 heads per vector.
        for (int g = 0; g < G; g++) {
            const int lanes = std::min(16, H - 16 * g);
            const __mmask16 mk = __mmask16((1u << lanes) - 1);
            const __m512 m = _mm512_mask_loadu_ps(_mm512_set1_ps(0.0f), mk, part.m + 16 * g);
            __m512 mb = _mm512_set1_ps(-INFINITY);
            for (int j = 0; j < n; j++)
                mb = _mm512_max_ps(mb, _mm512_loadu_ps(S + size_t(j) * Hp + 16 * g));
            const __m512 mnew = _mm512_max_ps(m, mb);
            const __m512 al = detail::exp512(_mm512_sub_ps(m, mnew));  // m = -inf: 0
            __m512 sum = _mm512_setzero_ps();
            for (int j = 0; j < n; j++) {
                float* sj = S + size_t(j) * Hp + 16 * g;
                const __m512 e = detail::exp512(_mm512_sub_ps(_mm512_loadu_ps(sj), mnew));
                _mm512_storeu_ps(sj, e);
                sum = _mm512_add_ps(sum, e);
            }
            const __m512 l = _mm512_maskz_loadu_ps(mk, part.l + 16 * g);
            _mm512_mask_storeu_ps(part.l + 16 * g, mk, _mm512_fmadd_ps(l, al, sum));
            _mm512_mask_storeu_ps(part.m + 16 * g, mk, mnew);
            _mm512_storeu_ps(alpha + 16 * g, al);
        }
        // Latent values: acc[h] = alpha[h] acc[h] + sum_j P[j, h] c_j, in head tiles of 3 or 4
        // (the next block was prefetched during the scores).
        values_tiles(part.acc, H, C, 4, S, Hp, 1, recs, rec, 0, n, alpha, NextBlock{});
    }
}
#else
// Portable version: per block, S (H, n) = scale * q @ recs^T and acc (H, C) += P @ recs[:, :C]
// as GEMMs over all heads.
template <typename T>
void mla_range(const float* q, const T* cache, int j0, int j1, const MlaCacheDims& dm, float scale,
               Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    const int H = dm.H, C = dm.C;
    const int rec = int(dm.rec());
    sc.resize(size_t(H) * kMlaBlock);
    float* S = sc.data();
    for (int b0 = j0; b0 < j1; b0 += kMlaBlock) {
        const int n = std::min(kMlaBlock, j1 - b0);
        const float* recs = records_f32(cache, rec, b0, n, buf);
        gemm(false, true, H, n, rec, scale, q, rec, recs, rec, 0.0f, S, kMlaBlock);
        for (int h = 0; h < H; h++)
            softmax_update(S + h * kMlaBlock, n, part.m[h], part.l[h], part.acc + size_t(h) * C, C);
        gemm(false, false, H, C, n, 1.0f, S, kMlaBlock, recs, rec, 1.0f, part.acc, C);
    }
}
#endif

}  // namespace

template <typename T>
void flash_mla_decode(float* const* out, const float* const* q, const T* const* cache,
                      const int* lens, int nseq, const MlaCacheDims& dims, float scale) {
    run_split(out, lens, nseq, dims.H, dims.C,
              [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                  mla_range(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc);
              });
}

template void flash_mla_decode<float>(float* const*, const float* const*, const float* const*,
                                      const int*, int, const MlaCacheDims&, float);
template void flash_mla_decode<uint16_t>(float* const*, const float* const*, const uint16_t* const*,
                                         const int*, int, const MlaCacheDims&, float);

}  // namespace t6
