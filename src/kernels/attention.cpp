// Causal scaled-dot-product attention for training and prefill, flash style (Dao et al.,
// "FlashAttention", 2022, Alg. 1 and 2): queries and keys are processed in kBq x kBk tiles; the
// forward pass keeps a running row max m and row sum l (online softmax),
//   S = scale Q K^T,  m' = max(m, rowmax S),  l' = l e^(m - m') + sum_j e^(S_j - m'),
//   O' = O e^(m - m') + e^(S - m') V,  out = O / l,  lse = m + log l,
// and the backward pass recomputes P = exp(S - lse) from the saved log-sum-exp and uses
// D_i = rowsum(dO_i * O_i):
//   dV += P^T dO,  dP = dO V^T,  dS = P * (dP - D_i),  dQ += scale dS K,  dK += scale dS^T Q.
// No T x T score matrix is ever held whole. All tile products go through one register-blocked
// micro-kernel (Mm below), and the exp/row-max/elementwise parts are Google Highway code compiled
// for AVX-512, AVX2 and scalar and chosen at run time (core/simd.h). attention_*_reference are
// the plain O(T^2) loops in double that the tests compare every target against.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

// Target-independent helpers, compiled once (this file is re-included per Highway target).
#ifndef T6_KERNELS_ATTENTION_COMMON_
#define T6_KERNELS_ATTENTION_COMMON_
namespace t6::attn_detail {

constexpr int kBq = 64;  // query tile
constexpr int kBk = 64;  // key tile

// Causal structure of a tile whose queries start `off` = q0 - k0 rows after its keys. Only the
// 4-row blocks' non-masked parts are computed (saves ~1/2 of the diagonal tiles' work):
//  kColsUpTo:  C rows are queries, columns keys: compute columns < off + r0 + 4 only (the rest
//              of C is left unwritten; callers only read causal entries);
//  kInnerUpTo: C rows are queries, the inner index is keys: sum over k < off + r0 + 4;
//  kInnerFrom: C rows are keys, the inner index is queries: sum over k >= r0 - off.
enum class Tri { kColsUpTo, kInnerUpTo, kInnerFrom };

// Per-thread scratch, grown on demand and reused across calls.
struct Scratch {
    std::vector<float> kt, vt, qs, o, s, dp, dq, dk, dv, m, l, di;
};

inline Scratch& scratch() {
    static thread_local Scratch s;
    return s;
}

inline float* grow(std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

// Prefetches rows [t0, t1) of a strided matrix (n floats each, `stride` apart; 64-byte lines). The
// rows a head's task reads and writes are its slice of a (tokens, heads * D) buffer: 256 bytes
// every few KB, met for the first time by the task. Prefetched a few rows ahead (the queries, K,
// V, dO and O as first read, the outputs before they are written), the forward and the backward
// ran 4-7% faster each (tiny and small shapes, Zen 5, AVX-512 and AVX2, medians of 6 alternating
// runs; docs/decode-bench.md, session 24).
inline void prefetch_rows(const float* src, long stride, int t0, int t1, int n,
                          bool write = false) {
    for (int t = t0; t < t1; t++)
        for (int i = 0; i < n; i += 16) {
            if (write)
                __builtin_prefetch(src + t * stride + i, 1, 3);
            else
                __builtin_prefetch(src + t * stride + i, 0, 3);
        }
}

// dst[d*T + t] = src[t*stride + d]: a head's K (or V) transposed so score tiles are row products.
// Blocked by 16 tokens so every d writes one 64-byte run: the plain loop over t then d stored to
// D lines T*4 bytes apart, which with T a power of two fall into a few L1 sets and evict each
// other on every token (it took ~40% of ForwardHead's own time at T = 256).
inline void pack_transposed(float* dst, const float* src, long stride, int T, int D) {
    constexpr int kTb = 16;
    int t0 = 0;
    prefetch_rows(src, stride, 0, std::min(T, kTb), D);
    for (; t0 + kTb <= T; t0 += kTb) {
        prefetch_rows(src, stride, t0 + kTb, std::min(T, t0 + 2 * kTb), D);
        const float* s = src + t0 * stride;
        for (int d = 0; d < D; d++) {
            float* o = dst + (long)d * T + t0;
            for (int i = 0; i < kTb; i++) o[i] = s[i * stride + d];
        }
    }
    for (; t0 < T; t0++) {
        const float* s = src + t0 * stride;
        for (int d = 0; d < D; d++) dst[(long)d * T + t0] = s[d];
    }
}

// Number of keys of tile [k0, k0+nk) that query qi may attend (causal), clipped to [0, nk].
inline int causal_limit(int qi, int k0, int nk) {
    return std::clamp(qi - k0 + 1, 0, nk);
}

}  // namespace t6::attn_detail
#endif  // T6_KERNELS_ATTENTION_COMMON_

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/attention.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using namespace t6::attn_detail;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Vectors of columns per micro-kernel block: 4 x 4 accumulators on AVX-512 (32 registers), the
// classic 4 x 3 on AVX2 (16 registers).
#if HWY_TARGET == HWY_AVX2
constexpr int kMaxNV = 3;
#else
constexpr int kMaxNV = 4;
#endif

// ---------------------------------------------------------------------------------------------
// C[M,N] (row stride ldc) = or += A * B, where A is M x K with element (r,k) at A[r*ar + k*ak]
// (so A may be read transposed) and B is K x N with row stride ldb.

// MR rows x NV vectors of columns; with kTail the last vector has only `tail` valid lanes.
template <int MR, int NV, bool kTail>
HWY_NOINLINE void MicroKernel(int K, const float* HWY_RESTRICT A, long ar, long ak,
                              const float* HWY_RESTRICT B, long ldb, float* HWY_RESTRICT C,
                              long ldc, size_t tail, bool acc) {
    const DF d;
    const size_t N = hn::Lanes(d);
    const auto last = hn::FirstN(d, tail);
    VF c[MR][NV];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const float* p = C + r * ldc + v * N;
            if (!acc)
                c[r][v] = hn::Zero(d);
            else if (kTail && v == NV - 1)
                c[r][v] = hn::MaskedLoad(last, d, p);
            else
                c[r][v] = hn::LoadU(d, p);
        }
    }
    for (int k = 0; k < K; k++) {
        const float* b = B + k * ldb;
        const float* a = A + k * ak;
        VF bv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = (kTail && v == NV - 1) ? hn::MaskedLoad(last, d, b + v * N)
                                           : hn::LoadU(d, b + v * N);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            const VF av = hn::Set(d, a[r * ar]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) c[r][v] = hn::MulAdd(av, bv[v], c[r][v]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float* p = C + r * ldc + v * N;
            if (kTail && v == NV - 1)
                hn::BlendedStore(c[r][v], last, d, p);
            else
                hn::StoreU(c[r][v], d, p);
        }
    }
}

template <int MR, int NV>
HWY_INLINE void CallKernel(bool has_tail, int K, const float* A, long ar, long ak, const float* B,
                           long ldb, float* C, long ldc, size_t tail, bool acc) {
    if (has_tail)
        MicroKernel<MR, NV, true>(K, A, ar, ak, B, ldb, C, ldc, tail, acc);
    else
        MicroKernel<MR, NV, false>(K, A, ar, ak, B, ldb, C, ldc, tail, acc);
}

template <int MR>
HWY_INLINE void CallRows(int nv, bool has_tail, int K, const float* A, long ar, long ak,
                         const float* B, long ldb, float* C, long ldc, size_t tail, bool acc) {
    switch (nv) {
        case 1:
            CallKernel<MR, 1>(has_tail, K, A, ar, ak, B, ldb, C, ldc, tail, acc);
            break;
        case 2:
            CallKernel<MR, 2>(has_tail, K, A, ar, ak, B, ldb, C, ldc, tail, acc);
            break;
        case 3:
            CallKernel<MR, 3>(has_tail, K, A, ar, ak, B, ldb, C, ldc, tail, acc);
            break;
        default:
            if constexpr (kMaxNV >= 4)
                CallKernel<MR, 4>(has_tail, K, A, ar, ak, B, ldb, C, ldc, tail, acc);
            break;
    }
}

void Mm(int M, int N, int K, const float* A, long ar, long ak, const float* B, long ldb, float* C,
        long ldc, bool acc) {
    const DF d;
    const int L = int(hn::Lanes(d));
    const int W = kMaxNV * L;  // columns per block
    for (int n0 = 0; n0 < N; n0 += W) {
        const int nn = std::min(W, N - n0);
        const int nv = (nn + L - 1) / L;
        const int tail = nn - L * (nv - 1);
        const bool has_tail = tail != L;
        for (int r0 = 0; r0 < M; r0 += 4) {
            const int mr = std::min(4, M - r0);
            const float* a = A + r0 * ar;
            float* c = C + r0 * ldc + n0;
            switch (mr) {
                case 1:
                    CallRows<1>(nv, has_tail, K, a, ar, ak, B + n0, ldb, c, ldc, tail, acc);
                    break;
                case 2:
                    CallRows<2>(nv, has_tail, K, a, ar, ak, B + n0, ldb, c, ldc, tail, acc);
                    break;
                case 3:
                    CallRows<3>(nv, has_tail, K, a, ar, ak, B + n0, ldb, c, ldc, tail, acc);
                    break;
                default:
                    CallRows<4>(nv, has_tail, K, a, ar, ak, B + n0, ldb, c, ldc, tail, acc);
                    break;
            }
        }
    }
}

void MmCausal(Tri tri, int off, int M, int N, int K, const float* A, long ar, long ak,
              const float* B, long ldb, float* C, long ldc, bool acc) {
    for (int r0 = 0; r0 < M; r0 += 4) {
        const int mr = std::min(4, M - r0);
        int n = N, kb = 0, ke = K;
        if (tri == Tri::kColsUpTo) n = std::min(N, off + r0 + mr);
        if (tri == Tri::kInnerUpTo) ke = std::min(K, off + r0 + mr);
        if (tri == Tri::kInnerFrom) kb = std::max(0, r0 - off);
        if (n <= 0 || ke <= kb) continue;  // only reached with acc (nothing to add)
        Mm(mr, n, ke - kb, A + r0 * ar + kb * ak, ar, ak, B + kb * ldb, ldb, C + r0 * ldc, ldc,
           acc);
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise helpers.

// y[i] = a * x[i] (y may equal x).
HWY_INLINE void ScaleTo(float* y, float a, const float* x, int n) {
    const DF d;
    const int L = int(hn::Lanes(d));
    const VF va = hn::Set(d, a);
    int i = 0;
    for (; i + L <= n; i += L) hn::StoreU(hn::Mul(va, hn::LoadU(d, x + i)), d, y + i);
    for (; i < n; i++) y[i] = a * x[i];
}

// ds[j] = p[j] * (ds[j] - di) for j < n.
HWY_INLINE void SoftmaxGrad(float* HWY_RESTRICT ds, const float* HWY_RESTRICT p, float di, int n) {
    const DF d;
    const int L = int(hn::Lanes(d));
    const VF vd = hn::Set(d, di);
    int j = 0;
    for (; j + L <= n; j += L)
        hn::StoreU(hn::Mul(hn::LoadU(d, p + j), hn::Sub(hn::LoadU(d, ds + j), vd)), d, ds + j);
    for (; j < n; j++) ds[j] = p[j] * (ds[j] - di);
}

// dst[t*D + d] = scale * src[t*stride + d].
HWY_INLINE void PackScaled(float* dst, const float* src, long stride, int T, int D, float scale) {
    constexpr int kAhead = 8;
    prefetch_rows(src, stride, 0, std::min(T, kAhead), D);
    for (int t = 0; t < T; t++) {
        if (t + kAhead < T) prefetch_rows(src, stride, t + kAhead, t + kAhead + 1, D);
        ScaleTo(dst + (long)t * D, scale, src + t * stride, D);
    }
}

// ---------------------------------------------------------------------------------------------

// Forward for one (batch b, query head h).
void ForwardHead(float* out, float* lse, const float* q, const float* k, const float* v,
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
        PackScaled(qs, qb + q0 * d.q_stride, d.q_stride, nq, D, d.scale);
        std::fill(o, o + (size_t)nq * Dv, 0.0f);
        std::fill(m, m + nq, -INFINITY);
        std::fill(l, l + nq, 0.0f);
        const int kend = q0 + nq;  // keys beyond the last query of the tile are masked
        for (int k0 = 0; k0 < kend; k0 += kBk) {
            const int nk = std::min(kBk, kend - k0);
            const int off = q0 - k0;
            // The tile's V rows, read by O += P V below (first use: one q tile per k tile).
            if (k0 == q0) prefetch_rows(vb + k0 * d.v_stride, d.v_stride, 0, nk, Dv);
            // S = (scale Q) K^T
            MmCausal(Tri::kColsUpTo, off, nq, nk, D, qs, D, 1, kt + k0, T, s, kBk, false);
            for (int i = 0; i < nq; i++) {
                float* row = s + i * kBk;
                const int lim = causal_limit(q0 + i, k0, nk);
                if (lim > 0) {
                    // Online softmax: new max, rescale the old sum and accumulator by e^(m-m').
                    const float mx = std::max(m[i], RowMax(row, lim));
                    const float alpha = std::exp(m[i] - mx);
                    const float sum = ExpShiftSum(row, lim, mx);
                    l[i] = l[i] * alpha + sum;
                    m[i] = mx;
                    if (alpha != 1.0f) ScaleTo(o + (long)i * Dv, alpha, o + (long)i * Dv, Dv);
                }
                std::fill(row + lim, row + nk, 0.0f);
            }
            MmCausal(Tri::kInnerUpTo, off, nq, Dv, nk, s, kBk, 1, vb + k0 * d.v_stride, d.v_stride,
                     o, Dv, true);  // O += P V
        }
        prefetch_rows(out + ((long)b * T + q0) * d.Hq * Dv + (long)h * Dv, (long)d.Hq * Dv, 0, nq,
                      Dv, true);
        for (int i = 0; i < nq; i++) {
            const int t = q0 + i;
            ScaleTo(out + (((long)b * T + t) * d.Hq + h) * Dv, 1.0f / l[i], o + (long)i * Dv, Dv);
            lse[((long)b * d.Hq + h) * T + t] = m[i] + std::log(l[i]);
        }
    }
}

// Backward for one query head h (reading KV head kvh); accumulates into the task's dK, dV.
void BackwardHead(float* dq, float* dkacc, float* dvacc, const float* dout, const float* out,
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
    PackScaled(qs, qb, d.q_stride, T, D, d.scale);
    std::fill(dqa, dqa + (size_t)T * D, 0.0f);
    for (int t = 0; t < T; t++) {  // rowsum(dO O); the first read of dO's and O's rows
        if (t % 8 == 0) {
            prefetch_rows(dob, ldo, t + 8, std::min(T, t + 16), Dv);
            prefetch_rows(ob, ldo, t + 8, std::min(T, t + 16), Dv);
        }
        di[t] = Dot(dob + t * ldo, ob + t * ldo, Dv);
    }
    for (int k0 = 0; k0 < T; k0 += kBk) {
        const int nk = std::min(kBk, T - k0);
        for (int q0 = (k0 / kBq) * kBq; q0 < T; q0 += kBq) {
            const int nq = std::min(kBq, T - q0);
            const int off = q0 - k0;
            MmCausal(Tri::kColsUpTo, off, nq, nk, D, qs + (long)q0 * D, D, 1, kt + k0, T, p, kBk,
                     false);                // S
            for (int i = 0; i < nq; i++) {  // P = exp(S - lse), causal entries only
                float* row = p + i * kBk;
                const int lim = causal_limit(q0 + i, k0, nk);
                ExpShiftSum(row, lim, lb[q0 + i]);
                std::fill(row + lim, row + nk, 0.0f);
            }
            // dV += P^T dO (A read transposed: row = key, k-index = query)
            MmCausal(Tri::kInnerFrom, off, nk, Dv, nq, p, 1, kBk, dob + q0 * ldo, ldo,
                     dvacc + (long)k0 * Dv, Dv, true);
            MmCausal(Tri::kColsUpTo, off, nq, nk, Dv, dob + q0 * ldo, ldo, 1, vt + k0, T, ds, kBk,
                     false);                // dP = dO V^T
            for (int i = 0; i < nq; i++) {  // dS = P * (dP - D_i); dP is valid up to lim only
                float* dsr = ds + i * kBk;
                const int lim = causal_limit(q0 + i, k0, nk);
                SoftmaxGrad(dsr, p + i * kBk, di[q0 + i], lim);
                std::fill(dsr + lim, dsr + nk, 0.0f);
            }
            MmCausal(Tri::kInnerUpTo, off, nq, D, nk, ds, kBk, 1, kb + k0 * d.k_stride, d.k_stride,
                     dqa + (long)q0 * D, D, true);  // dQ += dS K (scaled below)
            MmCausal(Tri::kInnerFrom, off, nk, D, nq, ds, 1, kBk, qs + (long)q0 * D, D,
                     dkacc + (long)k0 * D, D, true);  // dK += dS^T (scale Q)
        }
    }
    float* dqb = dq + (long)b * T * d.q_stride + (long)h * D;
    prefetch_rows(dqb, d.q_stride, 0, std::min(T, 8), D, true);
    for (int t = 0; t < T; t++) {
        if (t + 8 < T) prefetch_rows(dqb, d.q_stride, t + 8, t + 9, D, true);
        ScaleTo(dqb + t * d.q_stride, d.scale, dqa + (long)t * D, D);
    }
}

// Backward for one (batch b, KV head kvh): all query heads of its group, so dK/dV of this KV
// head are owned by one task (no write races, deterministic).
void BackwardKvHead(float* dq, float* dk, float* dv, const float* dout, const float* out,
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
        BackwardHead(dq, dka, dva, dout, out, lse, q, k, kt, vt, d, b, kvh * group + j, kvh);
    }
    float* dkb = dk + (long)b * T * d.k_stride + (long)kvh * D;
    float* dvb = dv + (long)b * T * d.v_stride + (long)kvh * Dv;
    for (int t = 0; t < T; t++) {
        if (t % 8 == 0) {
            prefetch_rows(dkb, d.k_stride, t + 8, std::min(T, t + 16), D, true);
            prefetch_rows(dvb, d.v_stride, t + 8, std::min(T, t + 16), Dv, true);
        }
        std::copy(dka + (long)t * D, dka + (long)(t + 1) * D, dkb + t * d.k_stride);
        std::copy(dva + (long)t * Dv, dva + (long)(t + 1) * Dv, dvb + t * d.v_stride);
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(ForwardHead);
HWY_EXPORT(BackwardKvHead);

namespace {

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
        HWY_DYNAMIC_DISPATCH(ForwardHead)(out, lse, q, k, v, d, task / d.Hq, task % d.Hq);
    }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v,
                        const AttnDims& d) {
    check_dims(d);
    const int tasks = d.B * d.Hkv;
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < tasks; task++) {
        HWY_DYNAMIC_DISPATCH(BackwardKvHead)
        (dq, dk, dv, dout, out, lse, q, k, v, d, task / d.Hkv, task % d.Hkv);
    }
}

// ---------------------------------------------------------------------------------------------
// Plain references: the softmax of every causal row in full, in double.

// Query (b, t, head h) of the references below, in double: p[j] = exp(s_j - mx) for the causal
// scores s_j = scale q.k_j, j <= t, with mx their max; returns sum_j p[j].
static double causal_exp_scores_reference(double* p, double* mx_out, const float* q, const float* k,
                                          const AttnDims& d, int b, int h, int t) {
    const int T = d.T, D = d.D, kvh = h / (d.Hq / d.Hkv);
    const float* qi = q + ((long)b * T + t) * d.q_stride + (long)h * D;
    double mx = -INFINITY;
    for (int j = 0; j <= t; j++) {
        const float* kj = k + ((long)b * T + j) * d.k_stride + (long)kvh * D;
        double s = 0.0;
        for (int c = 0; c < D; c++) s += double(qi[c]) * double(kj[c]);
        p[j] = s * double(d.scale);
        mx = std::max(mx, p[j]);
    }
    double sum = 0.0;
    for (int j = 0; j <= t; j++) sum += (p[j] = std::exp(p[j] - mx));
    *mx_out = mx;
    return sum;
}

void attention_forward_reference(float* out, float* lse, const float* q, const float* k,
                                 const float* v, const AttnDims& d) {
    check_dims(d);
    const int T = d.T, Dv = d.Dv, group = d.Hq / d.Hkv;
    std::vector<double> p(T), o(Dv);
    for (int b = 0; b < d.B; b++) {
        for (int h = 0; h < d.Hq; h++) {
            const int kvh = h / group;
            for (int t = 0; t < T; t++) {
                double mx = 0.0;
                const double sum = causal_exp_scores_reference(p.data(), &mx, q, k, d, b, h, t);
                std::fill(o.begin(), o.end(), 0.0);
                for (int j = 0; j <= t; j++) {
                    const float* vj = v + ((long)b * T + j) * d.v_stride + (long)kvh * Dv;
                    for (int c = 0; c < Dv; c++) o[c] += p[j] / sum * double(vj[c]);
                }
                float* dst = out + (((long)b * T + t) * d.Hq + h) * Dv;
                for (int c = 0; c < Dv; c++) dst[c] = float(o[c]);
                lse[((long)b * d.Hq + h) * T + t] = float(mx + std::log(sum));
            }
        }
    }
}

void attention_backward_reference(float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const AttnDims& d) {
    check_dims(d);
    const int T = d.T, D = d.D, Dv = d.Dv, group = d.Hq / d.Hkv;
    auto at = [](float* base, long stride, int b, int T_, int t, int head, int width) {
        return base + ((long)b * T_ + t) * stride + (long)head * width;
    };
    // dk, dv are sums over the query heads of a group: accumulate in double, write once.
    std::vector<double> dka((size_t)d.B * T * d.Hkv * D, 0.0), dva((size_t)d.B * T * d.Hkv * Dv);
    std::vector<double> p(T), dp(T), g(D);
    for (int b = 0; b < d.B; b++) {
        for (int h = 0; h < d.Hq; h++) {
            const int kvh = h / group;
            for (int t = 0; t < T; t++) {
                const float* qi = q + ((long)b * T + t) * d.q_stride + (long)h * D;
                const float* go = dout + (((long)b * T + t) * d.Hq + h) * Dv;
                double mx = 0.0;
                const double sum = causal_exp_scores_reference(p.data(), &mx, q, k, d, b, h, t);
                double pdp = 0.0;
                for (int j = 0; j <= t; j++) {
                    p[j] /= sum;
                    const float* vj = v + ((long)b * T + j) * d.v_stride + (long)kvh * Dv;
                    double s = 0.0;
                    for (int c = 0; c < Dv; c++) s += double(go[c]) * double(vj[c]);
                    dp[j] = s;
                    pdp += p[j] * s;
                }
                std::fill(g.begin(), g.end(), 0.0);
                for (int j = 0; j <= t; j++) {
                    const double dsj = p[j] * (dp[j] - pdp) * double(d.scale);
                    const float* kj = k + ((long)b * T + j) * d.k_stride + (long)kvh * D;
                    double* dkj = dka.data() + (((size_t)b * T + j) * d.Hkv + kvh) * D;
                    double* dvj = dva.data() + (((size_t)b * T + j) * d.Hkv + kvh) * Dv;
                    for (int c = 0; c < D; c++) {
                        g[c] += dsj * double(kj[c]);
                        dkj[c] += dsj * double(qi[c]);
                    }
                    for (int c = 0; c < Dv; c++) dvj[c] += p[j] * double(go[c]);
                }
                float* dqi = at(dq, d.q_stride, b, T, t, h, D);
                for (int c = 0; c < D; c++) dqi[c] = float(g[c]);
            }
        }
        for (int t = 0; t < T; t++) {
            for (int kvh = 0; kvh < d.Hkv; kvh++) {
                float* dkt = at(dk, d.k_stride, b, T, t, kvh, D);
                float* dvt = at(dv, d.v_stride, b, T, t, kvh, Dv);
                const double* sk = dka.data() + (((size_t)b * T + t) * d.Hkv + kvh) * D;
                const double* sv = dva.data() + (((size_t)b * T + t) * d.Hkv + kvh) * Dv;
                for (int c = 0; c < D; c++) dkt[c] = float(sk[c]);
                for (int c = 0; c < Dv; c++) dvt[c] = float(sv[c]);
            }
        }
    }
}

}  // namespace t6
#endif  // HWY_ONCE
