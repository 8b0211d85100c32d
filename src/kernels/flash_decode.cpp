#include "kernels/flash_decode.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

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

inline float dot(const float* a, const float* b, int n) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

inline void axpy(float* y, float a, const float* x, int n) {
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

// One task of FlashTPA: query q over cache records [j0, j1).
template <typename T>
void tpa_range(const TpaQuery& q, const T* cache, int j0, int j1, const TpaCacheDims& dm,
               float scale, Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    const int H = dm.H, Rk = dm.Rk, Rv = dm.Rv, D = dm.D, Rq = q.Rq;
    const long rec = dm.rec();
    sc.resize(size_t(H) * kBlock + size_t(Rq > 0 ? Rq : H) * Rk);
    float* S = sc.data();               // (H, kBlock) scores, then probabilities
    float* P = S + size_t(H) * kBlock;  // (Rq, Rk) or (H, Rk) dot products
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
                for (int h = 0; h < H; h++) {
                    const float* aq = q.A + h * Rq;
                    float acc = 0.0f;
                    for (int s = 0; s < Rk; s++) {
                        float g = 0.0f;
                        for (int a = 0; a < Rq; a++) g += aq[a] * P[a * Rk + s];
                        acc += AK[h * Rk + s] * g;
                    }
                    S[h * kBlock + jj] = acc * c_scores;
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
        for (int h = 0; h < H; h++) {
            float* acc = part.acc + size_t(h) * D;
            softmax_update(S + h * kBlock, n, part.m[h], part.l[h], acc, D);
            const float* p = S + h * kBlock;
            for (int jj = 0; jj < n; jj++) {
                const float* r = recs + jj * rec;
                const float* AV = r + dm.off_AV() + h * Rv;
                const float* BV = r + dm.off_BV();
                const float w = p[jj] * c_values;
                for (int s = 0; s < Rv; s++) axpy(acc, w * AV[s], BV + s * D, D);
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
        for (int h = 0; h < Hq; h++) {
            float* acc = part.acc + size_t(h) * D;
            softmax_update(S + h * kBlock, n, part.m[h], part.l[h], acc, D);
            const float* p = S + h * kBlock;
            const long voff = long(Hkv) * D + long(h / group) * D;
            for (int jj = 0; jj < n; jj++) axpy(acc, p[jj], recs + jj * rec + voff, D);
        }
    }
}

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

template void flash_tpa_decode<float>(float* const*, const TpaQuery*, const float* const*,
                                      const int*, int, const TpaCacheDims&, float);
template void flash_tpa_decode<uint16_t>(float* const*, const TpaQuery*, const uint16_t* const*,
                                         const int*, int, const TpaCacheDims&, float);
template void flash_kv_decode<float>(float* const*, const float* const*, const float* const*,
                                     const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<uint16_t>(float* const*, const float* const*, const uint16_t* const*,
                                        const int*, int, const KvCacheDims&, float);

}  // namespace t6
