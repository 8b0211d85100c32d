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

// One task of FlashTPA: query q over cache records [j0, j1). Portable version (any D).
template <typename T>
void tpa_range_generic(const TpaQuery& q, const T* cache, int j0, int j1, const TpaCacheDims& dm,
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

#ifdef __AVX512F__
// ---- FlashTPA with AVX-512 (D a multiple of 16) ----
// Per block of n cached tokens the three steps of Algorithm 2 run as small register-blocked
// matrix products:
//  1. feature products P[t][i][j] = B_Q[i] . B_K[t][j], an (R_Q x D) by (D x n R_K) product: the
//     B_K row is held in registers, each product is a 16-lane partial sum, and 16 partial sums
//     are reduced at once by a transpose-add tree (no horizontal sum per product);
//  2. rank mixing with heads in vector lanes: s[t][h] = sum_j A_K[t][j][h] sum_i A_Q'[i][h]
//     P[t][i][j] (A_Q' transposed, scale/(R_Q R_K) folded in), then the online softmax
//     lane-wise over heads;
//  3. values: acc[h][:] = alpha[h] acc[h][:] + sum_{t,s} W[t,s][h] B_V[t][s][:] with
//     W[t,s][h] = p[t][h] A_V[t][h,s] / R_V, an (H x n R_V) by (n R_V x D) product in register
//     tiles of up to 6 heads x 64 columns (24 accumulators; each B_V row is loaded once per tile
//     and the weights are broadcast from memory).
// Multiply-adds per cached token: R_Q R_K D + H R_Q R_K + H R_V D (paper Appendix A.4).
// For T6_kvonly (full q) step 1 is the (H x D) by (D x n R_K) product q_h . B_K[t][j] and step 2
// s[t][h] = scale/R_K sum_j A_K[t][h,j] P[t][h][j].

inline __mmask16 lane_mask(int count) {
    return count >= 16  ? __mmask16(0xffff)
           : count <= 0 ? __mmask16(0)
                        : __mmask16((1u << count) - 1);
}

// dst (R, Hp): dst[s][h] = src[h*R + s] for h < H, 0 for H <= h < Hp (T6_kvonly's per-head
// feature products come head-major; the kernel wants heads in lanes).
inline void deinterleave(const float* src, int R, int H, int Hp, float* dst) {
    if (R == 1) {
        for (int h = 0; h < Hp; h += 16)
            _mm512_storeu_ps(dst + h, _mm512_maskz_loadu_ps(lane_mask(H - h), src + h));
    } else if (R == 2) {
        const __m512i even =
            _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
        for (int h = 0; h < Hp; h += 16) {
            const int count = 2 * (H - h);
            const __m512 lo = _mm512_maskz_loadu_ps(lane_mask(count), src + 2 * h);
            const __m512 hi = _mm512_maskz_loadu_ps(lane_mask(count - 16), src + 2 * h + 16);
            _mm512_storeu_ps(dst + h, _mm512_permutex2var_ps(lo, even, hi));
            _mm512_storeu_ps(dst + Hp + h, _mm512_permutex2var_ps(lo, odd, hi));
        }
    } else {
        for (int s = 0; s < R; s++) {
            for (int h = 0; h < H; h++) dst[s * Hp + h] = src[h * R + s];
            for (int h = H; h < Hp; h++) dst[s * Hp + h] = 0.0f;
        }
    }
}

// acc rows [h0, h0+HB), columns [c0, c0+64) ∩ [0, D): acc = alpha acc + sum_k W[k][h] B_k, over
// the k = (t, s) of a block, B_k = recs[t][off_bv + s*D ..].
// Cache lines [l0, l1) of each of the next block's n records (base, rec_bytes apart) are
// prefetched while a tile runs, so the next block streams in during the arithmetic.
struct NextBlock {
    const char* base = nullptr;
    long rec_bytes = 0;
    int n = 0, l0 = 0, l1 = 0;
};

template <int HB>
void tpa_values_tile(float* acc, int D, int c0, int h0, const float* W, int Hp, int Rv,
                     const float* recs, long rec, long off_bv, int n, const float* alpha,
                     const NextBlock& nb) {
    static_assert(HB >= 1 && HB <= 6);
    const __mmask16 m0 = lane_mask(D - c0), m1 = lane_mask(D - c0 - 16),
                    m2 = lane_mask(D - c0 - 32), m3 = lane_mask(D - c0 - 48);
    // Named accumulators (an array of __m512 makes GCC spill them).
    __m512 r00, r01, r02, r03, r10, r11, r12, r13, r20, r21, r22, r23, r30, r31, r32, r33, r40, r41,
        r42, r43, r50, r51, r52, r53;
#define T6_TPA_LOAD(i, a0, a1, a2, a3)                               \
    if constexpr (i < HB) {                                          \
        const __m512 al = _mm512_set1_ps(alpha[h0 + i]);             \
        const float* src = acc + size_t(h0 + i) * D + c0;            \
        a0 = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m0, src));      \
        a1 = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m1, src + 16)); \
        a2 = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m2, src + 32)); \
        a3 = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m3, src + 48)); \
    } else {                                                         \
        a0 = a1 = a2 = a3 = _mm512_setzero_ps();                     \
    }
    T6_TPA_LOAD(0, r00, r01, r02, r03)
    T6_TPA_LOAD(1, r10, r11, r12, r13)
    T6_TPA_LOAD(2, r20, r21, r22, r23)
    T6_TPA_LOAD(3, r30, r31, r32, r33)
    T6_TPA_LOAD(4, r40, r41, r42, r43)
    T6_TPA_LOAD(5, r50, r51, r52, r53)
#undef T6_TPA_LOAD
    for (int t = 0; t < n; t++) {
        if (t < nb.n) {
            const char* nx = nb.base + t * nb.rec_bytes;
            for (int l = nb.l0; l < nb.l1; l++) _mm_prefetch(nx + 64L * l, _MM_HINT_T0);
        }
        for (int s = 0; s < Rv; s++) {
            const float* b = recs + t * rec + off_bv + long(s) * D + c0;
            const __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16),
                         b2 = _mm512_maskz_loadu_ps(m2, b + 32),
                         b3 = _mm512_maskz_loadu_ps(m3, b + 48);
            const float* w = W + size_t(t * Rv + s) * Hp + h0;
#define T6_TPA_FMA(i, a0, a1, a2, a3)          \
    if constexpr (i < HB) {                    \
        const __m512 p = _mm512_set1_ps(w[i]); \
        a0 = _mm512_fmadd_ps(p, b0, a0);       \
        a1 = _mm512_fmadd_ps(p, b1, a1);       \
        a2 = _mm512_fmadd_ps(p, b2, a2);       \
        a3 = _mm512_fmadd_ps(p, b3, a3);       \
    }
            T6_TPA_FMA(0, r00, r01, r02, r03)
            T6_TPA_FMA(1, r10, r11, r12, r13)
            T6_TPA_FMA(2, r20, r21, r22, r23)
            T6_TPA_FMA(3, r30, r31, r32, r33)
            T6_TPA_FMA(4, r40, r41, r42, r43)
            T6_TPA_FMA(5, r50, r51, r52, r53)
#undef T6_TPA_FMA
        }
    }
#define T6_TPA_STORE(i, a0, a1, a2, a3)             \
    if constexpr (i < HB) {                         \
        float* dst = acc + size_t(h0 + i) * D + c0; \
        _mm512_mask_storeu_ps(dst, m0, a0);         \
        _mm512_mask_storeu_ps(dst + 16, m1, a1);    \
        _mm512_mask_storeu_ps(dst + 32, m2, a2);    \
        _mm512_mask_storeu_ps(dst + 48, m3, a3);    \
    }
    T6_TPA_STORE(0, r00, r01, r02, r03)
    T6_TPA_STORE(1, r10, r11, r12, r13)
    T6_TPA_STORE(2, r20, r21, r22, r23)
    T6_TPA_STORE(3, r30, r31, r32, r33)
    T6_TPA_STORE(4, r40, r41, r42, r43)
    T6_TPA_STORE(5, r50, r51, r52, r53)
#undef T6_TPA_STORE
}

// Feature products of one block: Pv[e] (16-lane partial sums) for e = (t*NQ + i)*Rk + j, the
// product of query feature row i (of NQ rows of D) with B_K[t][j]; D = 16*NC.
template <int NC>
void tpa_feature_products(float* Pv, const float* QB, int NQ, const float* recs, long rec,
                          long off_bk, int Rk, int n) {
    for (int t = 0; t < n; t++)
        for (int j = 0; j < Rk; j++) {
            const float* bk = recs + t * rec + off_bk + long(j) * 16 * NC;
            __m512 k[NC];
            for (int c = 0; c < NC; c++) k[c] = _mm512_loadu_ps(bk + 16 * c);
            for (int i = 0; i < NQ; i++) {
                const float* qb = QB + size_t(i) * 16 * NC;
                __m512 a = _mm512_mul_ps(k[0], _mm512_loadu_ps(qb));
                for (int c = 1; c < NC; c++)
                    a = _mm512_fmadd_ps(k[c], _mm512_loadu_ps(qb + 16 * c), a);
                _mm512_storeu_ps(Pv + 16 * (size_t(t * NQ + i) * Rk + j), a);
            }
        }
}

template <typename T>
void tpa_range_avx512(const TpaQuery& q, const T* cache, int j0, int j1, const TpaCacheDims& dm,
                      float scale, Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    const bool full = q.A != nullptr;
    const int H = dm.H, Rk = dm.Rk, Rv = dm.Rv, D = dm.D, NQ = full ? q.Rq : H;
    const int G = (H + 15) / 16, Hp = 16 * G;
    const long rec = dm.rec();
    const int E = (kBlock * NQ * Rk + 15) / 16 * 16;
    const size_t nAQ = size_t(NQ) * Hp, nS = size_t(kBlock) * Hp, nW = size_t(kBlock) * Rv * Hp,
                 nPv = size_t(E) * 16, nP = E, nX = size_t(Hp) * Rk;
    sc.assign(nAQ + nS + nW + nPv + nP + nX + 3 * size_t(Hp), 0.0f);
    float* AQt = sc.data();  // (NQ, Hp) A_Q transposed and scaled (full TPA)
    float* St = AQt + nAQ;   // (kBlock, Hp) scores, then probabilities
    float* W = St + nS;      // (kBlock*Rv, Hp) value weights
    float* Pv = W + nW;      // (E, 16) partial feature products
    float* P = Pv + nPv;     // (E) feature products
    float* X = P + nP;       // (Rk, Hp) kvonly: P of one token, heads in lanes
    float* m = X + nX;       // (Hp) running max
    float* l = m + Hp;       // (Hp) running sum
    float* alpha = l + Hp;   // (Hp) rescaling of acc
    if (full)
        for (int i = 0; i < NQ; i++)
            for (int h = 0; h < H; h++) AQt[i * Hp + h] = q.A[h * NQ + i] * scale / float(NQ * Rk);
    for (int h = 0; h < Hp; h++) m[h] = -INFINITY;
    const __m512 c_kv = _mm512_set1_ps(scale / float(Rk)), c_v = _mm512_set1_ps(1.0f / float(Rv));
    for (int b0 = j0; b0 < j1; b0 += kBlock) {
        const int n = std::min(kBlock, j1 - b0);
        const float* recs = records_f32(cache, rec, b0, n, buf);
        // 1. Feature products, reduced 16 at a time.
        switch (D / 16) {
            case 1:
                tpa_feature_products<1>(Pv, q.B, NQ, recs, rec, dm.off_BK(), Rk, n);
                break;
            case 2:
                tpa_feature_products<2>(Pv, q.B, NQ, recs, rec, dm.off_BK(), Rk, n);
                break;
            case 3:
                tpa_feature_products<3>(Pv, q.B, NQ, recs, rec, dm.off_BK(), Rk, n);
                break;
            case 4:
                tpa_feature_products<4>(Pv, q.B, NQ, recs, rec, dm.off_BK(), Rk, n);
                break;
            case 5:
                tpa_feature_products<5>(Pv, q.B, NQ, recs, rec, dm.off_BK(), Rk, n);
                break;
            case 6:
                tpa_feature_products<6>(Pv, q.B, NQ, recs, rec, dm.off_BK(), Rk, n);
                break;
            case 7:
                tpa_feature_products<7>(Pv, q.B, NQ, recs, rec, dm.off_BK(), Rk, n);
                break;
            default:
                tpa_feature_products<8>(Pv, q.B, NQ, recs, rec, dm.off_BK(), Rk, n);
                break;
        }
        const int En = n * NQ * Rk;
        for (int e = En; e < (En + 15) / 16 * 16; e++)
            _mm512_storeu_ps(Pv + 16 * size_t(e), _mm512_setzero_ps());
        for (int e0 = 0; e0 < En; e0 += 16) {
            __m512 v[16];
            for (int k = 0; k < 16; k++) v[k] = _mm512_loadu_ps(Pv + 16 * size_t(e0 + k));
            _mm512_storeu_ps(P + e0, detail::hsum16(v));
        }
        // 2. Rank mixing, heads in lanes (the cache stores A_K and A_V rank-major, so a row of
        // 16 heads is one masked load).
        for (int t = 0; t < n; t++) {
            if (full) continue;
            // T6_kvonly: s[t][h] = scale/R_K sum_j A_K[t][j][h] P[t][h][j].
            deinterleave(P + size_t(t) * H * Rk, Rk, H, Hp, X);
            const float* ak = recs + t * rec + dm.off_AK();
            for (int g = 0; g < Hp; g += 16) {
                const __mmask16 mk = lane_mask(H - g);
                __m512 s = _mm512_setzero_ps();
                for (int j = 0; j < Rk; j++)
                    s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, ak + long(j) * H + g),
                                        _mm512_loadu_ps(X + j * Hp + g), s);
                _mm512_storeu_ps(St + size_t(t) * Hp + g, _mm512_mul_ps(c_kv, s));
            }
        }
        // Full TPA: s[t][h] = sum_j A_K[t][j][h] sum_i A_Q'[i][h] P[t][i][j], four tokens at a
        // time so that the FMA chains over i are independent (kBlock is a multiple of 4; rows
        // past n repeat row n-1 and are never read).
        if (full)
            for (int g = 0; g < Hp; g += 16) {
                const __mmask16 mk = lane_mask(H - g);
                for (int t = 0; t < n; t += 4) {
                    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
                    const float* p0 = P + size_t(t) * NQ * Rk;
                    const size_t pt = size_t(NQ) * Rk;
                    const float* ak0 = recs + t * rec + dm.off_AK() + g;
                    const float* ak1 = recs + std::min(t + 1, n - 1) * rec + dm.off_AK() + g;
                    const float* ak2 = recs + std::min(t + 2, n - 1) * rec + dm.off_AK() + g;
                    const float* ak3 = recs + std::min(t + 3, n - 1) * rec + dm.off_AK() + g;
                    for (int j = 0; j < Rk; j++) {
                        __m512 u0 = _mm512_setzero_ps(), u1 = u0, u2 = u0, u3 = u0;
                        for (int i = 0; i < NQ; i++) {
                            const __m512 a = _mm512_loadu_ps(AQt + i * Hp + g);
                            const float* pi = p0 + i * Rk + j;
                            u0 = _mm512_fmadd_ps(a, _mm512_set1_ps(pi[0]), u0);
                            u1 = _mm512_fmadd_ps(a, _mm512_set1_ps(pi[pt]), u1);
                            u2 = _mm512_fmadd_ps(a, _mm512_set1_ps(pi[2 * pt]), u2);
                            u3 = _mm512_fmadd_ps(a, _mm512_set1_ps(pi[3 * pt]), u3);
                        }
                        const long o = long(j) * H;
                        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, ak0 + o), u0, s0);
                        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, ak1 + o), u1, s1);
                        s2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, ak2 + o), u2, s2);
                        s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, ak3 + o), u3, s3);
                    }
                    float* st = St + size_t(t) * Hp + g;
                    _mm512_storeu_ps(st, s0);
                    _mm512_storeu_ps(st + Hp, s1);
                    _mm512_storeu_ps(st + 2 * Hp, s2);
                    _mm512_storeu_ps(st + 3 * Hp, s3);
                }
            }
        // Online softmax, lane-wise over heads, fused with the value weights
        // W[t,s][h] = p[t][h] A_V[t][s][h] / R_V.
        for (int g = 0; g < Hp; g += 16) {
            const __mmask16 mk = lane_mask(H - g);
            const __m512 mo = _mm512_loadu_ps(m + g);
            __m512 mb = _mm512_set1_ps(-INFINITY);
            for (int t = 0; t < n; t++)
                mb = _mm512_max_ps(mb, _mm512_loadu_ps(St + size_t(t) * Hp + g));
            const __m512 mnew = _mm512_max_ps(mo, mb);
            const __m512 al = detail::exp512(_mm512_sub_ps(mo, mnew));  // m = -inf: 0
            __m512 sum = _mm512_setzero_ps();
            for (int t = 0; t < n; t++) {
                const __m512 e =
                    detail::exp512(_mm512_sub_ps(_mm512_loadu_ps(St + size_t(t) * Hp + g), mnew));
                sum = _mm512_add_ps(sum, e);
                const __m512 ec = _mm512_mul_ps(c_v, e);
                const float* av = recs + t * rec + dm.off_AV() + g;
                for (int s = 0; s < Rv; s++)
                    _mm512_storeu_ps(
                        W + (size_t(t) * Rv + s) * Hp + g,
                        _mm512_mul_ps(ec, _mm512_maskz_loadu_ps(mk, av + long(s) * H)));
            }
            _mm512_storeu_ps(l + g, _mm512_fmadd_ps(_mm512_loadu_ps(l + g), al, sum));
            _mm512_storeu_ps(m + g, mnew);
            _mm512_storeu_ps(alpha + g, al);
        }
        // Head tiles of 5 or 6 (balanced).
        // The next block is prefetched during the value tiles, each tile taking a share of every
        // record's cache lines: the block reads each record in several places (B_K, A_K, A_V,
        // B_V), which the hardware prefetcher does not follow, and prefetches issued in one
        // burst stall on the core's outstanding-miss limit.
        const int tiles = (H + 5) / 6;
        const long rec_bytes = rec * long(sizeof(T));
        const int lines = int((rec_bytes + 63) / 64);
        for (int ti = 0; ti < tiles; ti++) {
            const int h0 = int(long(H) * ti / tiles), hb = int(long(H) * (ti + 1) / tiles) - h0;
            NextBlock nb;
            if (b0 + kBlock < j1) {
                nb.base = reinterpret_cast<const char*>(cache + (long(b0) + kBlock) * rec);
                nb.rec_bytes = rec_bytes;
                nb.n = std::min(kBlock, j1 - b0 - kBlock);
                nb.l0 = lines * ti / tiles;
                nb.l1 = lines * (ti + 1) / tiles;
            }
            for (int c0 = 0; c0 < D; c0 += 64) {
                if (c0 > 0) nb.n = 0;
                switch (hb) {
                    case 6:
                        tpa_values_tile<6>(part.acc, D, c0, h0, W, Hp, Rv, recs, rec, dm.off_BV(),
                                           n, alpha, nb);
                        break;
                    case 5:
                        tpa_values_tile<5>(part.acc, D, c0, h0, W, Hp, Rv, recs, rec, dm.off_BV(),
                                           n, alpha, nb);
                        break;
                    case 4:
                        tpa_values_tile<4>(part.acc, D, c0, h0, W, Hp, Rv, recs, rec, dm.off_BV(),
                                           n, alpha, nb);
                        break;
                    case 3:
                        tpa_values_tile<3>(part.acc, D, c0, h0, W, Hp, Rv, recs, rec, dm.off_BV(),
                                           n, alpha, nb);
                        break;
                    case 2:
                        tpa_values_tile<2>(part.acc, D, c0, h0, W, Hp, Rv, recs, rec, dm.off_BV(),
                                           n, alpha, nb);
                        break;
                    default:
                        tpa_values_tile<1>(part.acc, D, c0, h0, W, Hp, Rv, recs, rec, dm.off_BV(),
                                           n, alpha, nb);
                        break;
                }
            }
        }
    }
    for (int h = 0; h < H; h++) part.m[h] = m[h], part.l[h] = l[h];
}
#endif

// One task of FlashTPA: query q over cache records [j0, j1).
template <typename T>
void tpa_range(const TpaQuery& q, const T* cache, int j0, int j1, const TpaCacheDims& dm,
               float scale, Partial part, std::vector<float>& buf, std::vector<float>& sc) {
#ifdef __AVX512F__
    if (dm.D % 16 == 0 && dm.D <= 128) {
        tpa_range_avx512(q, cache, j0, j1, dm, scale, part, buf, sc);
        return;
    }
#endif
    tpa_range_generic(q, cache, j0, j1, dm, scale, part, buf, sc);
}

// One task of standard K/V decoding: query q (Hq*D) over records [j0, j1). Portable version.
template <typename T>
void kv_range_generic(const float* q, const T* cache, int j0, int j1, const KvCacheDims& dm,
                      float scale, Partial part, std::vector<float>& buf, std::vector<float>& sc) {
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

#ifdef __AVX512F__
// Standard K/V decoding with AVX-512 (D = 16*NC). The kernel is bound by the bytes of the cache
// (2 FLOPs per 4-byte element), so each record is streamed once, token-major, in blocks of 16:
//  1. scores: every K row is loaded into registers once and multiplied with the query heads that
//     share it (GQA groups); the 16-lane partial sums of head h are laid out [h][t] so that one
//     transpose-add (hsum16) gives the block's 16 scores of head h in vector lanes;
//  2. online softmax per head on that one vector;
//  3. values: acc[h] (NC registers) += p[h][t] V[t][kv(h)] over the block, which is still in L2.
constexpr int kKvBlock = 16;

template <int NC, typename T>
void kv_range_avx512(const float* q, const T* cache, int j0, int j1, const KvCacheDims& dm,
                     float scale, Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    constexpr int D = 16 * NC;
    const int Hq = dm.Hq, Hkv = dm.Hkv, group = Hq / Hkv;
    const long rec = dm.rec();
    sc.assign(size_t(Hq) * kKvBlock * 16 + 16, 0.0f);
    float* Pv = sc.data();                       // (Hq, kKvBlock, 16) partial scores
    float* p = Pv + size_t(Hq) * kKvBlock * 16;  // (16) probabilities of one head
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int b0 = j0; b0 < j1; b0 += kKvBlock) {
        const int n = std::min(kKvBlock, j1 - b0);
        const float* recs = records_f32(cache, rec, b0, n, buf);
        for (int t = 0; t < n; t++) {
            if (b0 + kKvBlock + t < j1) {  // the matching record of the next block, into L2
                const char* nx =
                    reinterpret_cast<const char*>(cache + (long(b0) + kKvBlock + t) * rec);
                for (long off = 0; off < rec * long(sizeof(T)); off += 64)
                    _mm_prefetch(nx + off, _MM_HINT_T1);
            }
            for (int kv = 0; kv < Hkv; kv++) {
                const float* kr = recs + t * rec + long(kv) * D;
                __m512 k[NC];
                for (int c = 0; c < NC; c++) k[c] = _mm512_loadu_ps(kr + 16 * c);
                for (int g = 0; g < group; g++) {
                    const int h = kv * group + g;
                    const float* qh = q + size_t(h) * D;
                    __m512 a = _mm512_mul_ps(k[0], _mm512_loadu_ps(qh));
                    for (int c = 1; c < NC; c++)
                        a = _mm512_fmadd_ps(k[c], _mm512_loadu_ps(qh + 16 * c), a);
                    _mm512_storeu_ps(Pv + (size_t(h) * kKvBlock + t) * 16, a);
                }
            }
        }
        const __mmask16 valid = lane_mask(n);
        for (int h = 0; h < Hq; h++) {
            __m512 v[16];
            for (int t = 0; t < 16; t++)
                v[t] = t < n ? _mm512_loadu_ps(Pv + (size_t(h) * kKvBlock + t) * 16)
                             : _mm512_setzero_ps();
            const __m512 s = _mm512_mask_blend_ps(valid, _mm512_set1_ps(-INFINITY),
                                                  _mm512_mul_ps(vscale, detail::hsum16(v)));
            const float mb = _mm512_reduce_max_ps(s);
            const float mnew = std::max(part.m[h], mb);
            const float alpha = std::exp(part.m[h] - mnew);  // m = -inf on the first block: 0
            const __m512 e = detail::exp512(_mm512_sub_ps(s, _mm512_set1_ps(mnew)));  // -inf: 0
            part.l[h] = part.l[h] * alpha + _mm512_reduce_add_ps(e);
            part.m[h] = mnew;
            _mm512_storeu_ps(p, e);
            float* acc = part.acc + size_t(h) * D;
            const __m512 al = _mm512_set1_ps(alpha);
            __m512 a[NC];
            for (int c = 0; c < NC; c++) a[c] = _mm512_mul_ps(al, _mm512_loadu_ps(acc + 16 * c));
            const float* vr = recs + long(Hkv + h / group) * D;
            for (int t = 0; t < n; t++) {
                const __m512 pt = _mm512_set1_ps(p[t]);
                for (int c = 0; c < NC; c++)
                    a[c] = _mm512_fmadd_ps(pt, _mm512_loadu_ps(vr + t * rec + 16 * c), a[c]);
            }
            for (int c = 0; c < NC; c++) _mm512_storeu_ps(acc + 16 * c, a[c]);
        }
    }
}
#endif

// One task of standard K/V decoding: query q (Hq*D) over records [j0, j1).
template <typename T>
void kv_range(const float* q, const T* cache, int j0, int j1, const KvCacheDims& dm, float scale,
              Partial part, std::vector<float>& buf, std::vector<float>& sc) {
#ifdef __AVX512F__
    switch (dm.D) {
        case 32:
            return kv_range_avx512<2>(q, cache, j0, j1, dm, scale, part, buf, sc);
        case 64:
            return kv_range_avx512<4>(q, cache, j0, j1, dm, scale, part, buf, sc);
        case 128:
            return kv_range_avx512<8>(q, cache, j0, j1, dm, scale, part, buf, sc);
        default:
            break;
    }
#endif
    kv_range_generic(q, cache, j0, j1, dm, scale, part, buf, sc);
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

// Splits every sequence's cache into ranges so that all threads have work: about 8 tasks per
// thread in all, in proportion to each sequence's length (several tasks per thread, handed out
// dynamically, keep both threads busy when the shared machine preempts one of them).
std::vector<Task> make_tasks(const int* lens, int nseq) {
    const int threads = omp_get_max_threads();
    long total = 0;
    for (int i = 0; i < nseq; i++) total += lens[i];
    std::vector<Task> tasks;
    for (int i = 0; i < nseq; i++) {
        const long want = total > 0 ? (long(lens[i]) * 8 * threads + total - 1) / total : 1;
        int splits = int(std::max(1L, std::min(want, long(lens[i] / kMinSplitTokens))));
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
