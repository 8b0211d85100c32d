#include "kernels/flash_decode.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/vec_math.h"

namespace t6 {

namespace {

constexpr int kBlock = 32;            // cache tokens per online-softmax block
constexpr int kMinSplitTokens = 256;  // do not split a sequence finer than this

// Online-softmax partial result of one task: per head running max m, sum l and output acc.
struct Partial {
    float* m;
    float* l;
    float* acc;  // (H, Dv)
};

// Records [j0, j0+n) as float: the cache itself when it is float, else converted into buf.
template <typename T>
const float* records_f32(const T* cache, long rec, int j0, int n, std::vector<float>& buf) {
    if constexpr (std::is_same_v<T, float>) {
        (void)buf;
        return cache + long(j0) * rec;
    } else {
        const size_t count = size_t(n) * rec;
        if (buf.size() < count) buf.resize(count);
        const T* src = cache + long(j0) * rec;
#pragma omp simd
        for (size_t i = 0; i < count; i++) buf[i] = bf16_to_float(src[i]);
        return buf.data();
    }
}

[[gnu::always_inline]] inline float dot(const float* a, const float* b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

[[gnu::always_inline]] inline void axpy(float* y, float a, const float* x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

// Online softmax step for one head: scores s[0..n) become probabilities relative to the new
// running max; acc is rescaled. Returns nothing; updates m, l.
inline void softmax_update(float* s, int n, float& m, float& l, float* acc, int Dv) {
    const float mb = detail::row_max(s, n);
    const float mnew = std::max(m, mb);
    const float alpha = std::exp(m - mnew);  // m = -inf on the first block: alpha = 0
    const float sum = detail::exp_shift_sum(s, n, mnew);
    l = l * alpha + sum;
    if (alpha != 1.0f)
        for (int d = 0; d < Dv; d++) acc[d] *= alpha;
    m = mnew;
}

constexpr int kSub = 8;  // records per value sub-block (8 * rec floats stay in L1)

// acc[0..64) += sum_{j < n} p[j] * c * sum_s rec_j[off_av + s] * rec_j[off_bv + s*64 ..]: the
// value aggregation of one head over n records, with the output row held in registers.
inline void values_d64(float* __restrict acc, const float* p, const float* recs, int n, long rec,
                       long off_av, long off_bv, int Rv, float c) {
    float a[64];
    for (int d = 0; d < 64; d++) a[d] = acc[d];
    for (int jj = 0; jj < n; jj++) {
        const float* r = recs + jj * rec;
        const float w = p[jj] * c;
        for (int s = 0; s < Rv; s++) {
            const float ws = w * r[off_av + s];
            const float* b = r + off_bv + s * 64;
#pragma omp simd
            for (int d = 0; d < 64; d++) a[d] += ws * b[d];
        }
    }
    for (int d = 0; d < 64; d++) acc[d] = a[d];
}

// One task of FlashTPA: query q over cache records [j0, j1).
template <typename T>
void tpa_range(const TpaQuery& q, const T* cache, int j0, int j1, const TpaCacheDims& dm,
               float scale, Partial part, std::vector<float>& buf, std::vector<float>& sc) {
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
    const float c_scores = q.A ? scale / float(Rq * Rk) : scale / float(Rk);
    const float c_values = 1.0f / float(Rv);
    for (int b0 = j0; b0 < j1; b0 += kBlock) {
        const int n = std::min(kBlock, j1 - b0);
        const float* recs = records_f32(cache, rec, b0, n, buf);
        for (int jj = 0; jj < n; jj++) {
            const float* r = recs + jj * rec;
            const float* AK = r + dm.off_AK();
            const float* BK = r + dm.off_BK();
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
                    for (int h = 0; h < H; h++) st[h] += AK[h * Rk + s] * G[h];
                }
            } else {
                for (int h = 0; h < H; h++) {
                    float acc = 0.0f;
                    for (int s = 0; s < Rk; s++)
                        acc += AK[h * Rk + s] * dot(q.B + h * D, BK + s * D, D);
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
                               dm.off_AV() + h * Rv, dm.off_BV(), Rv, c_values);
                    continue;
                }
                for (int jj = j0s; jj < j0s + ns; jj++) {
                    const float* r = recs + jj * rec;
                    const float w = S[h * kBlock + jj] * c_values;
                    for (int s = 0; s < Rv; s++)
                        axpy(acc, w * r[dm.off_AV() + h * Rv + s], r + dm.off_BV() + s * D, D);
                }
            }
        }
    }
}

// One task of standard K/V decoding: query q (Hq*D) over records [j0, j1).
template <typename T>
void kv_range(const float* q, const T* cache, int j0, int j1, const KvCacheDims& dm, float scale,
              Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    const int Hq = dm.Hq, Hkv = dm.Hkv, D = dm.D, group = Hq / Hkv;
    const long rec = dm.rec();
    sc.resize(size_t(Hq) * kBlock);
    float* S = sc.data();
    for (int b0 = j0; b0 < j1; b0 += kBlock) {
        const int n = std::min(kBlock, j1 - b0);
        const float* recs = records_f32(cache, rec, b0, n, buf);
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

// One task of absorbed MLA decoding: query q (H, C+R) over records [j0, j1), in blocks of
// kMlaBlock records. Each record is read once for all heads (the kernel is compute-bound).
constexpr int kMlaBlock = 64;

#ifdef __AVX512F__
// AVX-512 version. Heads live in the 16 vector lanes (groups of 16): the query is transposed
// once per task, qT (C+R, Hp) scaled, so the scores of 8 records are 8 accumulators updated by
// broadcast(record element) * qT row, with no horizontal sums; the online softmax runs across
// heads lane-wise; values accumulate in register tiles of 4 heads x 64 latent columns.
template <int HB>
void mla_values_tile(float* acc, int C, int c0, const float* recs, long rec, int n, const float* P,
                     int Hp, int h0, const float* alpha) {
    static_assert(HB >= 1 && HB <= 4);
    __mmask16 m0, m1, m2, m3;
    {
        auto mask = [&](int v) {
            const int left = C - c0 - 16 * v;
            return left >= 16  ? __mmask16(0xffff)
                   : left <= 0 ? __mmask16(0)
                               : __mmask16((1u << left) - 1);
        };
        m0 = mask(0), m1 = mask(1), m2 = mask(2), m3 = mask(3);
    }
    // Named accumulators (an array of __m512 makes GCC spill them every iteration).
    __m512 r00, r01, r02, r03, r10, r11, r12, r13, r20, r21, r22, r23, r30, r31, r32, r33;
#define T6_MLA_LOAD(i, a0, a1, a2, a3)                               \
    if constexpr (i < HB) {                                          \
        const __m512 al = _mm512_set1_ps(alpha[h0 + i]);             \
        const float* src = acc + size_t(h0 + i) * C + c0;            \
        a0 = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m0, src));      \
        a1 = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m1, src + 16)); \
        a2 = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m2, src + 32)); \
        a3 = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m3, src + 48)); \
    } else {                                                         \
        a0 = a1 = a2 = a3 = _mm512_setzero_ps();                     \
    }
    T6_MLA_LOAD(0, r00, r01, r02, r03)
    T6_MLA_LOAD(1, r10, r11, r12, r13)
    T6_MLA_LOAD(2, r20, r21, r22, r23)
    T6_MLA_LOAD(3, r30, r31, r32, r33)
#undef T6_MLA_LOAD
    for (int j = 0; j < n; j++) {
        const float* cj = recs + j * rec + c0;
        const __m512 c0v = _mm512_maskz_loadu_ps(m0, cj), c1v = _mm512_maskz_loadu_ps(m1, cj + 16),
                     c2v = _mm512_maskz_loadu_ps(m2, cj + 32),
                     c3v = _mm512_maskz_loadu_ps(m3, cj + 48);
        const float* pj = P + size_t(j) * Hp + h0;
#define T6_MLA_FMA(i, a0, a1, a2, a3)           \
    if constexpr (i < HB) {                     \
        const __m512 p = _mm512_set1_ps(pj[i]); \
        a0 = _mm512_fmadd_ps(p, c0v, a0);       \
        a1 = _mm512_fmadd_ps(p, c1v, a1);       \
        a2 = _mm512_fmadd_ps(p, c2v, a2);       \
        a3 = _mm512_fmadd_ps(p, c3v, a3);       \
    }
        T6_MLA_FMA(0, r00, r01, r02, r03)
        T6_MLA_FMA(1, r10, r11, r12, r13)
        T6_MLA_FMA(2, r20, r21, r22, r23)
        T6_MLA_FMA(3, r30, r31, r32, r33)
#undef T6_MLA_FMA
    }
#define T6_MLA_STORE(i, a0, a1, a2, a3)             \
    if constexpr (i < HB) {                         \
        float* dst = acc + size_t(h0 + i) * C + c0; \
        _mm512_mask_storeu_ps(dst, m0, a0);         \
        _mm512_mask_storeu_ps(dst + 16, m1, a1);    \
        _mm512_mask_storeu_ps(dst + 32, m2, a2);    \
        _mm512_mask_storeu_ps(dst + 48, m3, a3);    \
    }
    T6_MLA_STORE(0, r00, r01, r02, r03)
    T6_MLA_STORE(1, r10, r11, r12, r13)
    T6_MLA_STORE(2, r20, r21, r22, r23)
    T6_MLA_STORE(3, r30, r31, r32, r33)
#undef T6_MLA_STORE
}

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
        // Latent values: acc[h] = alpha[h] acc[h] + sum_j P[j, h] c_j.
        // Head tiles of 3 or 4 (balanced: a tile of 1 would be latency-bound).
        const int tiles = (H + 3) / 4;
        for (int t = 0; t < tiles; t++) {
            const int h0 = int(long(H) * t / tiles), hb = int(long(H) * (t + 1) / tiles) - h0;
            for (int c0 = 0; c0 < C; c0 += 64) {
                if (hb == 4)
                    mla_values_tile<4>(part.acc, C, c0, recs, rec, n, S, Hp, h0, alpha);
                else if (hb == 3)
                    mla_values_tile<3>(part.acc, C, c0, recs, rec, n, S, Hp, h0, alpha);
                else if (hb == 2)
                    mla_values_tile<2>(part.acc, C, c0, recs, rec, n, S, Hp, h0, alpha);
                else
                    mla_values_tile<1>(part.acc, C, c0, recs, rec, n, S, Hp, h0, alpha);
            }
        }
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

struct Task {
    int seq, j0, j1;
};

// Splits every sequence's cache into ranges so that all threads have work.
std::vector<Task> make_tasks(const int* lens, int nseq) {
    const int threads = omp_get_max_threads();
    std::vector<Task> tasks;
    for (int i = 0; i < nseq; i++) {
        int want = std::max(1, (2 * threads + nseq - 1) / nseq);
        int splits = std::max(1, std::min(want, lens[i] / kMinSplitTokens));
        for (int k = 0; k < splits; k++) {
            int a = int(long(lens[i]) * k / splits), b = int(long(lens[i]) * (k + 1) / splits);
            tasks.push_back({i, a, b});
        }
    }
    return tasks;
}

// Runs range(task, partial, buf, scores) for every task in parallel, then merges the partials of
// each sequence into out[seq] (H, Dv).
template <typename RangeFn>
void run_split(float* const* out, const int* lens, int nseq, int H, int Dv, RangeFn range) {
    std::vector<Task> tasks = make_tasks(lens, nseq);
    const size_t per = size_t(H) * (2 + Dv);
    std::vector<float> parts(tasks.size() * per);
#pragma omp parallel
    {
        std::vector<float> buf, sc;
#pragma omp for schedule(dynamic, 1)
        for (size_t t = 0; t < tasks.size(); t++) {
            float* base = parts.data() + t * per;
            Partial p{base, base + H, base + 2 * H};
            std::fill(p.m, p.m + H, -INFINITY);
            std::fill(p.l, p.l + H, 0.0f);
            std::fill(p.acc, p.acc + size_t(H) * Dv, 0.0f);
            if (tasks[t].j1 > tasks[t].j0) range(tasks[t], p, buf, sc);
        }
    }
    // Combine: o_h = sum_k e^{m_k - M} acc_k / sum_k e^{m_k - M} l_k.
    for (int i = 0; i < nseq; i++) {
        float* o = out[i];
        std::fill(o, o + size_t(H) * Dv, 0.0f);
        for (int h = 0; h < H; h++) {
            float M = -INFINITY;
            for (size_t t = 0; t < tasks.size(); t++)
                if (tasks[t].seq == i) M = std::max(M, parts[t * per + h]);
            if (M == -INFINITY) continue;  // empty cache: output 0
            float L = 0.0f;
            for (size_t t = 0; t < tasks.size(); t++) {
                if (tasks[t].seq != i) continue;
                const float* base = parts.data() + t * per;
                const float w = std::exp(base[h] - M);
                L += w * base[H + h];
                axpy(o + size_t(h) * Dv, w, base + 2 * H + size_t(h) * Dv, Dv);
            }
            const float inv = 1.0f / L;
            for (int d = 0; d < Dv; d++) o[size_t(h) * Dv + d] *= inv;
        }
    }
}

}  // namespace

template <typename T>
void flash_tpa_decode(float* const* out, const TpaQuery* qs, const T* const* cache, const int* lens,
                      int nseq, const TpaCacheDims& dims, float scale) {
    run_split(out, lens, nseq, dims.H, dims.D,
              [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                  tpa_range(qs[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc);
              });
}

template <typename T>
void flash_kv_decode(float* const* out, const float* const* q, const T* const* cache,
                     const int* lens, int nseq, const KvCacheDims& dims, float scale) {
    run_split(out, lens, nseq, dims.Hq, dims.D,
              [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                  kv_range(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc);
              });
}

template <typename T>
void flash_mla_decode(float* const* out, const float* const* q, const T* const* cache,
                      const int* lens, int nseq, const MlaCacheDims& dims, float scale) {
    run_split(out, lens, nseq, dims.H, dims.C,
              [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                  mla_range(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc);
              });
}

template void flash_tpa_decode<float>(float* const*, const TpaQuery*, const float* const*,
                                      const int*, int, const TpaCacheDims&, float);
template void flash_tpa_decode<uint16_t>(float* const*, const TpaQuery*, const uint16_t* const*,
                                         const int*, int, const TpaCacheDims&, float);
template void flash_kv_decode<float>(float* const*, const float* const*, const float* const*,
                                     const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<uint16_t>(float* const*, const float* const*, const uint16_t* const*,
                                        const int*, int, const KvCacheDims&, float);
template void flash_mla_decode<float>(float* const*, const float* const*, const float* const*,
                                      const int*, int, const MlaCacheDims&, float);
template void flash_mla_decode<uint16_t>(float* const*, const float* const*, const uint16_t* const*,
                                         const int*, int, const MlaCacheDims&, float);

}  // namespace t6
