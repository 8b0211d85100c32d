#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/vec_math.h"

// Flash-attention style causal attention (Dao et al., "FlashAttention", 2022, Alg. 1 and 2):
// queries and keys are processed in kBq x kBk tiles; the forward pass keeps a running row max m
// and row sum l (online softmax) and rescales the output accumulator; the backward pass recomputes
// P = exp(S - lse) from the saved log-sum-exp and uses D_i = rowsum(dO_i * O_i):
//   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - D_i),  dQ += scale dS K,  dK += scale dS^T Q.
// All tile products go through one register-blocked micro-kernel (mm below).

namespace t6 {

namespace {

constexpr int kBq = 64;  // query tile
constexpr int kBk = 64;  // key tile

// ---------------------------------------------------------------------------------------------
// C[M,N] (row stride ldc) = or += A * B, where A is M x K with element (r,k) at A[r*ar + k*ak]
// (so A may be read transposed) and B is K x N with row stride ldb.

#ifdef __AVX512F__
// MR rows x NV vectors of 16 columns; the last vector is masked with `last`.
template <int MR, int NV>
void micro_kernel(int K, const float* A, long ar, long ak, const float* B, long ldb, float* C,
                  long ldc, __mmask16 last, bool acc) {
    __m512 c[MR][NV];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const __mmask16 mk = v == NV - 1 ? last : (__mmask16)0xffff;
            c[r][v] = acc ? _mm512_maskz_loadu_ps(mk, C + r * ldc + 16 * v) : _mm512_setzero_ps();
        }
    }
    for (int k = 0; k < K; k++) {
        const float* b = B + k * ldb;
        const float* a = A + k * ak;
        __m512 bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            bv[v] = _mm512_maskz_loadu_ps(v == NV - 1 ? last : (__mmask16)0xffff, b + 16 * v);
        }
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            const __m512 av = _mm512_set1_ps(a[r * ar]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) c[r][v] = _mm512_fmadd_ps(av, bv[v], c[r][v]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const __mmask16 mk = v == NV - 1 ? last : (__mmask16)0xffff;
            _mm512_mask_storeu_ps(C + r * ldc + 16 * v, mk, c[r][v]);
        }
    }
}

using MicroKernel = void (*)(int, const float*, long, long, const float*, long, float*, long,
                             __mmask16, bool);

template <int MR>
constexpr MicroKernel kernel_for(int nv) {
    return nv == 1   ? micro_kernel<MR, 1>
           : nv == 2 ? micro_kernel<MR, 2>
           : nv == 3 ? micro_kernel<MR, 3>
                     : micro_kernel<MR, 4>;
}

void mm(int M, int N, int K, const float* A, long ar, long ak, const float* B, long ldb, float* C,
        long ldc, bool acc) {
    static const MicroKernel table[4][4] = {
        {kernel_for<1>(1), kernel_for<1>(2), kernel_for<1>(3), kernel_for<1>(4)},
        {kernel_for<2>(1), kernel_for<2>(2), kernel_for<2>(3), kernel_for<2>(4)},
        {kernel_for<3>(1), kernel_for<3>(2), kernel_for<3>(3), kernel_for<3>(4)},
        {kernel_for<4>(1), kernel_for<4>(2), kernel_for<4>(3), kernel_for<4>(4)}};
    for (int n0 = 0; n0 < N; n0 += 64) {
        const int nn = std::min(64, N - n0);
        const int nv = (nn + 15) / 16;
        const int tail = nn - 16 * (nv - 1);
        const __mmask16 last = (__mmask16)((1u << tail) - 1u);
        for (int r0 = 0; r0 < M; r0 += 4) {
            const int mr = std::min(4, M - r0);
            table[mr - 1][nv - 1](K, A + r0 * ar, ar, ak, B + n0, ldb, C + r0 * ldc + n0, ldc, last,
                                  acc);
        }
    }
}
#else
void mm(int M, int N, int K, const float* A, long ar, long ak, const float* B, long ldb, float* C,
        long ldc, bool acc) {
    for (int r = 0; r < M; r++) {
        float* __restrict c = C + r * ldc;
        if (!acc)
            for (int n = 0; n < N; n++) c[n] = 0.0f;
        for (int k = 0; k < K; k++) {
            const float a = A[r * ar + k * ak];
            const float* __restrict b = B + k * ldb;
            for (int n = 0; n < N; n++) c[n] += a * b[n];
        }
    }
}
#endif

// Causal structure of a tile whose queries start `off` = q0 - k0 rows after its keys. Only the
// 4-row blocks' non-masked parts are computed (saves ~1/2 of the diagonal tiles' work):
//  kColsUpTo:  C rows are queries, columns keys: compute columns < off + r0 + 4 only (the rest
//              of C is left unwritten; callers only read causal entries);
//  kInnerUpTo: C rows are queries, the inner index is keys: sum over k < off + r0 + 4;
//  kInnerFrom: C rows are keys, the inner index is queries: sum over k >= r0 - off.
enum class Tri { kColsUpTo, kInnerUpTo, kInnerFrom };

void mm_causal(Tri tri, int off, int M, int N, int K, const float* A, long ar, long ak,
               const float* B, long ldb, float* C, long ldc, bool acc) {
    for (int r0 = 0; r0 < M; r0 += 4) {
        const int mr = std::min(4, M - r0);
        int n = N, kb = 0, ke = K;
        if (tri == Tri::kColsUpTo) n = std::min(N, off + r0 + mr);
        if (tri == Tri::kInnerUpTo) ke = std::min(K, off + r0 + mr);
        if (tri == Tri::kInnerFrom) kb = std::max(0, r0 - off);
        if (n <= 0 || ke <= kb) continue;  // only reached with acc (nothing to add)
        mm(mr, n, ke - kb, A + r0 * ar + kb * ak, ar, ak, B + kb * ldb, ldb, C + r0 * ldc, ldc,
           acc);
    }
}

// ---------------------------------------------------------------------------------------------

// Per-thread scratch, grown on demand and reused across calls.
struct Scratch {
    std::vector<float> kt, vt, qs, o, s, dp, dq, dk, dv, m, l, di;
};

Scratch& scratch() {
    static thread_local Scratch s;
    return s;
}

float* grow(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

// dst[d*T + t] = src[t*stride + d]: a head's K (or V) transposed so score tiles are row products.
void pack_transposed(float* dst, const float* src, long stride, int T, int D) {
    for (int t = 0; t < T; t++) {
        const float* s = src + t * stride;
        for (int d = 0; d < D; d++) dst[(long)d * T + t] = s[d];
    }
}

// dst[t*D + d] = scale * src[t*stride + d].
void pack_scaled(float* dst, const float* src, long stride, int T, int D, float scale) {
    for (int t = 0; t < T; t++) {
        const float* s = src + t * stride;
        float* o = dst + (long)t * D;
        for (int d = 0; d < D; d++) o[d] = scale * s[d];
    }
}

// Number of keys of tile [k0, k0+nk) that query qi may attend (causal), clipped to [0, nk].
inline int causal_limit(int qi, int k0, int nk) {
    return std::clamp(qi - k0 + 1, 0, nk);
}

// Forward for one (batch b, query head h).
void forward_head(float* out, float* lse, const float* q, const float* k, const float* v,
                  const AttnDims& d, int b, int h) {
    const int T = d.T, D = d.D, Dv = d.Dv;
    const int kvh = h / (d.Hq / d.Hkv);
    const float* qb = q + (long)b * T * d.q_stride + (long)h * D;
    const float* kb = k + (long)b * T * d.k_stride + (long)kvh * D;
    const float* vb = v + (long)b * T * d.v_stride + (long)kvh * Dv;
    Scratch& sc = scratch();
    float* kt = grow(sc.kt, (size_t)D * T);
    float* qs = grow(sc.qs, (size_t)kBq * D);
    float* o = grow(sc.o, (size_t)kBq * Dv);
    float* s = grow(sc.s, (size_t)kBq * kBk);
    float* m = grow(sc.m, kBq);
    float* l = grow(sc.l, kBq);
    pack_transposed(kt, kb, d.k_stride, T, D);

    for (int q0 = 0; q0 < T; q0 += kBq) {
        const int nq = std::min(kBq, T - q0);
        pack_scaled(qs, qb + q0 * d.q_stride, d.q_stride, nq, D, d.scale);
        std::fill(o, o + (size_t)nq * Dv, 0.0f);
        std::fill(m, m + nq, -INFINITY);
        std::fill(l, l + nq, 0.0f);
        const int kend = q0 + nq;  // keys beyond the last query of the tile are masked
        for (int k0 = 0; k0 < kend; k0 += kBk) {
            const int nk = std::min(kBk, kend - k0);
            const int off = q0 - k0;
            // S = (scale Q) K^T
            mm_causal(Tri::kColsUpTo, off, nq, nk, D, qs, D, 1, kt + k0, T, s, kBk, false);
            for (int i = 0; i < nq; i++) {
                float* row = s + i * kBk;
                const int lim = causal_limit(q0 + i, k0, nk);
                if (lim > 0) {
                    // Online softmax: new max, rescale the old sum and accumulator by e^(m-m').
                    const float mx = std::max(m[i], detail::row_max(row, lim));
                    const float alpha = std::exp(m[i] - mx);
                    const float sum = detail::exp_shift_sum(row, lim, mx);
                    l[i] = l[i] * alpha + sum;
                    m[i] = mx;
                    if (alpha != 1.0f) {
                        float* oi = o + (long)i * Dv;
                        for (int c = 0; c < Dv; c++) oi[c] *= alpha;
                    }
                }
                std::fill(row + lim, row + nk, 0.0f);
            }
            mm_causal(Tri::kInnerUpTo, off, nq, Dv, nk, s, kBk, 1, vb + k0 * d.v_stride, d.v_stride,
                      o, Dv, true);  // O += P V
        }
        for (int i = 0; i < nq; i++) {
            const int t = q0 + i;
            const float inv = 1.0f / l[i];
            float* dst = out + (((long)b * T + t) * d.Hq + h) * Dv;
            const float* oi = o + (long)i * Dv;
            for (int c = 0; c < Dv; c++) dst[c] = oi[c] * inv;
            lse[((long)b * d.Hq + h) * T + t] = m[i] + std::log(l[i]);
        }
    }
}

// Backward for one query head h (reading KV head kvh); accumulates into the task's dK, dV.
void backward_head(float* dq, float* dkacc, float* dvacc, const float* dout, const float* out,
                   const float* lse, const float* q, const float* k, const float* kt,
                   const float* vt, const AttnDims& d, int b, int h, int kvh) {
    const int T = d.T, D = d.D, Dv = d.Dv;
    const long ldo = (long)d.Hq * Dv;
    const float* qb = q + (long)b * T * d.q_stride + (long)h * D;
    const float* kb = k + (long)b * T * d.k_stride + (long)kvh * D;
    const float* dob = dout + (long)b * T * ldo + (long)h * Dv;
    const float* ob = out + (long)b * T * ldo + (long)h * Dv;
    const float* lb = lse + ((long)b * d.Hq + h) * T;
    Scratch& sc = scratch();
    float* qs = grow(sc.qs, (size_t)T * D);
    float* dqa = grow(sc.dq, (size_t)T * D);
    float* di = grow(sc.di, T);
    float* p = grow(sc.s, (size_t)kBq * kBk);
    float* ds = grow(sc.dp, (size_t)kBq * kBk);
    pack_scaled(qs, qb, d.q_stride, T, D, d.scale);
    std::fill(dqa, dqa + (size_t)T * D, 0.0f);
    for (int t = 0; t < T; t++) {  // D_i = rowsum(dO_i * O_i)
        const float* g = dob + t * ldo;
        const float* o = ob + t * ldo;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int c = 0; c < Dv; c++) acc += g[c] * o[c];
        di[t] = acc;
    }
    for (int k0 = 0; k0 < T; k0 += kBk) {
        const int nk = std::min(kBk, T - k0);
        for (int q0 = (k0 / kBq) * kBq; q0 < T; q0 += kBq) {
            const int nq = std::min(kBq, T - q0);
            const int off = q0 - k0;
            mm_causal(Tri::kColsUpTo, off, nq, nk, D, qs + (long)q0 * D, D, 1, kt + k0, T, p, kBk,
                      false);               // S
            for (int i = 0; i < nq; i++) {  // P = exp(S - lse), causal entries only
                float* row = p + i * kBk;
                const int lim = causal_limit(q0 + i, k0, nk);
                detail::exp_shift_sum(row, lim, lb[q0 + i]);
                std::fill(row + lim, row + nk, 0.0f);
            }
            // dV += P^T dO (A read transposed: row = key, k-index = query)
            mm_causal(Tri::kInnerFrom, off, nk, Dv, nq, p, 1, kBk, dob + q0 * ldo, ldo,
                      dvacc + (long)k0 * Dv, Dv, true);
            mm_causal(Tri::kColsUpTo, off, nq, nk, Dv, dob + q0 * ldo, ldo, 1, vt + k0, T, ds, kBk,
                      false);               // dP = dO V^T
            for (int i = 0; i < nq; i++) {  // dS = P * (dP - D_i); dP is valid up to lim only
                const float dii = di[q0 + i];
                float* dsr = ds + i * kBk;
                const float* pr = p + i * kBk;
                const int lim = causal_limit(q0 + i, k0, nk);
                for (int j = 0; j < lim; j++) dsr[j] = pr[j] * (dsr[j] - dii);
                std::fill(dsr + lim, dsr + nk, 0.0f);
            }
            mm_causal(Tri::kInnerUpTo, off, nq, D, nk, ds, kBk, 1, kb + k0 * d.k_stride, d.k_stride,
                      dqa + (long)q0 * D, D, true);  // dQ += dS K (scaled below)
            mm_causal(Tri::kInnerFrom, off, nk, D, nq, ds, 1, kBk, qs + (long)q0 * D, D,
                      dkacc + (long)k0 * D, D, true);  // dK += dS^T (scale Q)
        }
    }
    float* dqb = dq + (long)b * T * d.q_stride + (long)h * D;
    for (int t = 0; t < T; t++) {
        float* dst = dqb + t * d.q_stride;
        const float* src = dqa + (long)t * D;
        for (int c = 0; c < D; c++) dst[c] = d.scale * src[c];
    }
}

// Backward for one (batch b, KV head kvh): all query heads of its group, so dK/dV of this KV
// head are owned by one task (no write races, deterministic).
void backward_kv_head(float* dq, float* dk, float* dv, const float* dout, const float* out,
                      const float* lse, const float* q, const float* k, const float* v,
                      const AttnDims& d, int b, int kvh) {
    const int T = d.T, D = d.D, Dv = d.Dv, group = d.Hq / d.Hkv;
    const float* kb = k + (long)b * T * d.k_stride + (long)kvh * D;
    const float* vb = v + (long)b * T * d.v_stride + (long)kvh * Dv;
    Scratch& sc = scratch();
    float* kt = grow(sc.kt, (size_t)D * T);
    float* vt = grow(sc.vt, (size_t)Dv * T);
    float* dka = grow(sc.dk, (size_t)T * D);
    float* dva = grow(sc.dv, (size_t)T * Dv);
    pack_transposed(kt, kb, d.k_stride, T, D);
    pack_transposed(vt, vb, d.v_stride, T, Dv);
    std::fill(dka, dka + (size_t)T * D, 0.0f);
    std::fill(dva, dva + (size_t)T * Dv, 0.0f);
    for (int j = 0; j < group; j++) {
        backward_head(dq, dka, dva, dout, out, lse, q, k, kt, vt, d, b, kvh * group + j, kvh);
    }
    float* dkb = dk + (long)b * T * d.k_stride + (long)kvh * D;
    float* dvb = dv + (long)b * T * d.v_stride + (long)kvh * Dv;
    for (int t = 0; t < T; t++) {
        std::copy(dka + (long)t * D, dka + (long)(t + 1) * D, dkb + t * d.k_stride);
        std::copy(dva + (long)t * Dv, dva + (long)(t + 1) * Dv, dvb + t * d.v_stride);
    }
}

void check_dims(const AttnDims& d) {
    T6_CHECK(
        d.B >= 0 && d.T >= 0 && d.Hq > 0 && d.Hkv > 0 && d.Hq % d.Hkv == 0 && d.D > 0 && d.Dv > 0,
        "bad attention dims");
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttnDims& d) {
    check_dims(d);
    const int tasks = d.B * d.Hq;
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < tasks; task++) {
        forward_head(out, lse, q, k, v, d, task / d.Hq, task % d.Hq);
    }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v,
                        const AttnDims& d) {
    check_dims(d);
    const int tasks = d.B * d.Hkv;
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < tasks; task++) {
        backward_kv_head(dq, dk, dv, dout, out, lse, q, k, v, d, task / d.Hkv, task % d.Hkv);
    }
}

}  // namespace t6
