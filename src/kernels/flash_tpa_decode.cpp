// FlashTPA decoding (paper Algorithm 2, Appendix B): see flash_decode.h.
#include <cstring>

#include "kernels/bf16.h"
#include "kernels/flash_decode_common.h"

namespace t6 {

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

// ---- bf16 cache on CPUs with AVX-512 BF16 ----
// The block is read as bf16 and multiplied with vdpbf16ps (pairs of bf16 products summed into
// float32 lanes), which does twice the multiply-adds of an fp32 FMA per instruction and reads half
// the bytes: the feature products take the query factor rounded to bf16 once per task, and the
// value aggregation rounds its weights W = p A_V / R_V to bf16 (as GPU flash attention rounds P);
// scores, softmax and accumulators stay float32.
#ifdef __AVX512BF16__
constexpr bool kBf16Dot = true;

// The block's value rows k = t*R_V + s (nr = n R_V of them) and their weights W (nr, Hp) as bf16
// pairs for values_tile: Bi (np, D) with Bi[p][d] = (B_V row 2p [d], row 2p+1 [d]) and
// Wp (np, Hp) with Wp[p][h] = (W[2p][h], W[2p+1][h]); an odd last row is paired with zeros.
// Returns np.
int pack_value_pairs(Bf16Pair* Bi, Bf16Pair* Wp, const uint16_t* recs, long rec, long off_bv,
                     int Rv, int D, const float* W, int Hp, int n) {
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
            const __m512i lo = _mm512_cvtepu16_epi32(__m256i(_mm512_cvtneps_pbh(w0)));
            const __m512i hi = _mm512_cvtepu16_epi32(__m256i(_mm512_cvtneps_pbh(w1)));
            _mm512_storeu_si512(Wp + size_t(p) * Hp + g,
                                _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
    return np;
}
#else
// Without AVX-512 BF16 a bf16 cache is widened to float32 block by block (records_f32); the
// bf16-only helpers above are referenced from discarded `if constexpr (dot)` branches only.
constexpr bool kBf16Dot = false;
#endif

// Feature products of one block: Pv[e] (16-lane partial sums) for e = (t*NQ + i)*Rk + j, the
// product of query feature row i (QB, NQ rows of D) with B_K[t][j]. The rows are float32 (16 per
// FMA) or, with AVX-512 BF16, bf16 (32 per vdpbf16ps); a product takes NC such chunks, the B_K
// chunks held in registers across the NQ query rows.
template <typename R>
struct FeatureOps;

template <>
struct FeatureOps<float> {
    static constexpr int kChunk = 16;
    static __m512 load(const float* p, int /*left*/) { return _mm512_loadu_ps(p); }
    static __m512 madd(__m512 acc, __m512 a, __m512 b) { return _mm512_fmadd_ps(a, b, acc); }
};

#ifdef __AVX512BF16__
template <>
struct FeatureOps<uint16_t> {
    static constexpr int kChunk = 32;
    // left: elements of the row from p on (D may end half-way through a chunk).
    static __m512 load(const uint16_t* p, int left) {
        const __mmask32 m = left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1);
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m, p));
    }
    static __m512 madd(__m512 acc, __m512 a, __m512 b) {
        return _mm512_dpbf16_ps(acc, __m512bh(a), __m512bh(b));
    }
};
#endif

template <int NC, typename R>
void tpa_feature_products(float* Pv, const R* QB, int NQ, const R* recs, long rec, long off_bk,
                          int Rk, int n, int D) {
    using Op = FeatureOps<R>;
    for (int t = 0; t < n; t++)
        for (int j = 0; j < Rk; j++) {
            const R* bk = recs + t * rec + off_bk + long(j) * D;
            __m512 k[NC];
            for (int c = 0; c < NC; c++) k[c] = Op::load(bk + Op::kChunk * c, D - Op::kChunk * c);
            for (int i = 0; i < NQ; i++) {
                const R* qb = QB + size_t(i) * D;
                __m512 a = _mm512_setzero_ps();
                for (int c = 0; c < NC; c++)
                    a = Op::madd(a, k[c], Op::load(qb + Op::kChunk * c, D - Op::kChunk * c));
                _mm512_storeu_ps(Pv + 16 * (size_t(t * NQ + i) * Rk + j), a);
            }
        }
}

template <typename R>
void feature_products(float* Pv, const R* QB, int NQ, const R* recs, long rec, long off_bk, int Rk,
                      int n, int D) {
    with_count<128 / FeatureOps<R>::kChunk>(
        (D + FeatureOps<R>::kChunk - 1) / FeatureOps<R>::kChunk,
        [&](auto NC) { tpa_feature_products<NC>(Pv, QB, NQ, recs, rec, off_bk, Rk, n, D); });
}

template <typename T>
void tpa_range_avx512(const TpaQuery& q, const T* cache, int j0, int j1, const TpaCacheDims& dm,
                      float scale, Partial part, std::vector<float>& buf, std::vector<float>& sc) {
    // dot: a bf16 cache read as bf16 and multiplied with vdpbf16ps; otherwise the block is float32
    // (a bf16 cache converted block by block).
    constexpr bool dot = kBf16Dot && std::is_same_v<T, uint16_t>;
    using R = std::conditional_t<dot, uint16_t, float>;
    const bool full = q.A != nullptr;
    const int H = dm.H, Rk = dm.Rk, Rv = dm.Rv, D = dm.D, NQ = full ? q.Rq : H;
    const int G = (H + 15) / 16, Hp = 16 * G;
    const long rec = dm.rec();
    const int E = (kBlock * NQ * Rk + 15) / 16 * 16;
    const size_t nAQ = size_t(NQ) * Hp, nS = size_t(kBlock) * Hp, nW = size_t(kBlock) * Rv * Hp,
                 nPv = size_t(E) * 16, nP = E, nX = size_t(Hp) * Rk;
    // Every region is written before it is read, except the padded heads of AQt and the running
    // sums l, zeroed below (no memset of the whole scratch per task).
    sc.resize(nAQ + nS + nW + nPv + nP + nX + 3 * size_t(Hp));
    float* AQt = sc.data();  // (NQ, Hp) A_Q transposed and scaled (full TPA)
    float* St = AQt + nAQ;   // (kBlock, Hp) scores, then probabilities
    float* W = St + nS;      // (kBlock*Rv, Hp) value weights
    float* Pv = W + nW;      // (E, 16) partial feature products
    float* P = Pv + nPv;     // (E) feature products
    float* X = P + nP;       // (Rk, Hp) kvonly: P of one token, heads in lanes
    float* m = X + nX;       // (Hp) running max
    float* l = m + Hp;       // (Hp) running sum
    float* alpha = l + Hp;   // (Hp) rescaling of acc
    std::fill(AQt, AQt + nAQ, 0.0f);
    if (full)
        for (int i = 0; i < NQ; i++)
            for (int h = 0; h < H; h++) AQt[i * Hp + h] = q.A[h * NQ + i] * scale / float(NQ * Rk);
    std::fill(m, m + Hp, -INFINITY);
    std::fill(l, l + Hp, 0.0f);
    thread_local std::vector<uint16_t> qb16;   // dot: the query factor in bf16
    thread_local std::vector<Bf16Pair> pairs;  // dot: the block's value rows and weights, paired
    const R* qb;                               // the query factor as the block is read
    if constexpr (dot) {
        qb16.resize(size_t(NQ) * D);
        to_bf16_serial(qb16.data(), q.B, qb16.size());
        pairs.resize(size_t(kBlock * Rv + 1) / 2 * (D + Hp));
        qb = qb16.data();
    } else {
        qb = q.B;
    }
    const __m512 c_kv = _mm512_set1_ps(scale / float(Rk)), c_v = _mm512_set1_ps(1.0f / float(Rv));
    for (int b0 = j0; b0 < j1; b0 += kBlock) {
        const int n = std::min(kBlock, j1 - b0);
        const R* recs;
        if constexpr (dot)
            recs = cache + long(b0) * rec;
        else
            recs = records_f32(cache, rec, b0, n, buf);
        // 1. Feature products, reduced 16 at a time.
        feature_products(Pv, qb, NQ, recs, rec, dm.off_BK(), Rk, n, D);
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
            const R* ak = recs + t * rec + dm.off_AK();
            for (int g = 0; g < Hp; g += 16) {
                const __mmask16 mk = lane_mask(H - g);
                __m512 s = _mm512_setzero_ps();
                for (int j = 0; j < Rk; j++)
                    s = _mm512_fmadd_ps(load_f32x16(ak + long(j) * H + g, mk),
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
                    const R* ak0 = recs + t * rec + dm.off_AK() + g;
                    const R* ak1 = recs + std::min(t + 1, n - 1) * rec + dm.off_AK() + g;
                    const R* ak2 = recs + std::min(t + 2, n - 1) * rec + dm.off_AK() + g;
                    const R* ak3 = recs + std::min(t + 3, n - 1) * rec + dm.off_AK() + g;
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
                        s0 = _mm512_fmadd_ps(load_f32x16(ak0 + o, mk), u0, s0);
                        s1 = _mm512_fmadd_ps(load_f32x16(ak1 + o, mk), u1, s1);
                        s2 = _mm512_fmadd_ps(load_f32x16(ak2 + o, mk), u2, s2);
                        s3 = _mm512_fmadd_ps(load_f32x16(ak3 + o, mk), u3, s3);
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
                const R* av = recs + t * rec + dm.off_AV() + g;
                for (int s = 0; s < Rv; s++)
                    _mm512_storeu_ps(W + (size_t(t) * Rv + s) * Hp + g,
                                     _mm512_mul_ps(ec, load_f32x16(av + long(s) * H, mk)));
            }
            _mm512_storeu_ps(l + g, _mm512_fmadd_ps(_mm512_loadu_ps(l + g), al, sum));
            _mm512_storeu_ps(m + g, mnew);
            _mm512_storeu_ps(alpha + g, al);
        }
        // Values in head tiles of 5 or 6, prefetching the next block meanwhile.
        NextBlock next;
        if (b0 + kBlock < j1) {
            next.base = reinterpret_cast<const char*>(cache + (long(b0) + kBlock) * rec);
            next.rec_bytes = rec * long(sizeof(T));
            next.n = std::min(kBlock, j1 - b0 - kBlock);
        }
        if constexpr (dot) {
            Bf16Pair* Bi = pairs.data();
            Bf16Pair* Wp = Bi + size_t(kBlock * Rv + 1) / 2 * D;
            const int np = pack_value_pairs(Bi, Wp, recs, rec, dm.off_BV(), Rv, D, W, Hp, n);
            values_tiles(part.acc, H, D, 6, Wp, Hp, 1, Bi, D, 0, np, alpha, next);
        } else {
            values_tiles(part.acc, H, D, 6, W, Hp, Rv, recs, rec, dm.off_BV(), n, alpha, next);
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

}  // namespace

template <typename T>
void flash_tpa_decode(float* const* out, const TpaQuery* qs, const T* const* cache, const int* lens,
                      int nseq, const TpaCacheDims& dims, float scale) {
    run_split(out, lens, nseq, dims.H, dims.D,
              [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                  tpa_range(qs[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf, sc);
              });
}

const char* flash_tpa_kernel_name(bool bf16_cache) {
#ifdef __AVX512F__
    if (bf16_cache && kBf16Dot) return "AVX-512 BF16 (vdpbf16ps on the bf16 factors)";
    return bf16_cache ? "AVX-512 fp32 FMA (bf16 factors widened per block)" : "AVX-512 fp32 FMA";
#else
    return bf16_cache ? "portable (bf16 factors widened per block)" : "portable";
#endif
}

template void flash_tpa_decode<float>(float* const*, const TpaQuery*, const float* const*,
                                      const int*, int, const TpaCacheDims&, float);
template void flash_tpa_decode<uint16_t>(float* const*, const TpaQuery*, const uint16_t* const*,
                                         const int*, int, const TpaCacheDims&, float);

}  // namespace t6
