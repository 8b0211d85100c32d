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
// Each task first copies what its tile products read as their B panel into contiguous scratch:
// K^T and V^T tile by tile (PackTransposed, square blocks transposed in registers), V, K and dO
// as (T, D) rows (the heads' slices of the (tokens, heads * D) buffers are 256-byte rows a
// multiple of 512 bytes apart for the presets, e.g. 8.5 KB for small-t6 and 3 KB for small-mha,
// which fall into few L1 sets). The forward's online softmax takes a
// vector's worth of rows at a time (OnlineSoftmaxRows). Against the per-row version with strided
// panels, at small-t6's shape on Zen 5 (B 4, H 34, T 256; 3 alternating runs, medians) the
// forward went 6.70 -> 5.41 ms on AVX-512 and 9.90 -> 8.92 on AVX2, the backward 13.16 -> 11.96
// and 20.27 -> 19.24 (docs/decode-bench.md, session 25).
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

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
    std::vector<float> kt, vt, kc, vc, doc, qs, o, s, dp, dq, dk, dv, m, l, di;
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
// ran 4-7% faster each (tiny and small shapes, Zen 5, the AVX-512 kernel, medians of 6
// alternating runs; docs/decode-bench.md, session 24).
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

// dst[t * D + d] = src[t * stride + d]: a head's slice of a (tokens, heads * D) buffer copied
// into a contiguous (T, D) matrix, for the tile products that read it as their B panel (rows
// stride * 4 bytes apart fall into few L1 sets when that is a multiple of 512 bytes).
inline void pack_rows(float* dst, const float* src, long stride, int T, int D) {
    constexpr int kAhead = 8;
    prefetch_rows(src, stride, 0, std::min(T, kAhead), D);
    for (int t = 0; t < T; t++) {
        if (t + kAhead < T) prefetch_rows(src, stride, t + kAhead, t + kAhead + 1, D);
        std::copy(src + t * stride, src + t * stride + D, dst + (long)t * D);
    }
}

// Floats of a PackTransposed (T, D) matrix: whole key tiles.
inline size_t tiled_size(int T, int D) {
    return size_t((T + kBk - 1) / kBk) * kBk * size_t(D);
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

// Lanes of a float vector on this target (at most kBq, of which the query tile is a multiple).
constexpr int kLanes = int(hn::MaxLanes(DF()));
static_assert(kBq % kLanes == 0);

// y[i] = a * x[i] (y may equal x).
HWY_INLINE void ScaleTo(float* y, float a, const float* x, int n) {
    const DF d;
    const int L = int(hn::Lanes(d));
    const VF va = hn::Set(d, a);
    int i = 0;
    for (; i + L <= n; i += L) hn::StoreU(hn::Mul(va, hn::LoadU(d, x + i)), d, y + i);
    for (; i < n; i++) y[i] = a * x[i];
}

// ds[j] = p[j] * (ds[j] - di) for j < lim, 0 for lim <= j < n, in whole vectors: a score tile's
// row (kBk >= n floats; entries past lim may hold anything).
HWY_INLINE void SoftmaxGrad(float* HWY_RESTRICT ds, const float* HWY_RESTRICT p, float di, int lim,
                            int n) {
    const DF d;
    const VF vd = hn::Set(d, di);
    for (int j = 0; j < n; j += kLanes)
        hn::StoreU(
            hn::IfThenElseZero(hn::FirstN(d, size_t(std::max(0, lim - j))),
                               hn::Mul(hn::LoadU(d, p + j), hn::Sub(hn::LoadU(d, ds + j), vd))),
            d, ds + j);
}

// p[j] = e^(p[j] - lse) for j < lim, 0 for lim <= j < n, in whole vectors (a score tile's row, as
// above). lse is the row's log-sum-exp, so the exponents are <= 0 (up to rounding): ExpSoftmax.
HWY_INLINE void ExpShiftRow(float* HWY_RESTRICT p, int lim, int n, float lse) {
    const DF d;
    const VF vl = hn::Set(d, lse);
    for (int j = 0; j < n; j += kLanes)
        hn::StoreU(hn::IfThenElseZero(hn::FirstN(d, size_t(std::max(0, lim - j))),
                                      ExpSoftmax<true>(d, hn::Sub(hn::LoadU(d, p + j), vl))),
                   d, p + j);
}

// A head's K (or V) transposed, tile by tile, so that score tiles are row products: key tile
// k0 / kBk is a (D, kBk) block at dst + k0 * D (row stride kBk), i.e. dst[(t / kBk) * D * kBk +
// d * kBk + t % kBk] = src[t * stride + d]. Tile-major rather than one (D, T) matrix: with T a
// power of two, the (D, T) rows T * 4 bytes apart fell into a quarter of the L1 sets, and the
// micro-kernel's 64 x 64 B panel (16 KB, 256 lines on 16 sets at T = 256) could not stay in a
// 12-way L1. Square blocks of kLanes tokens and
// dimensions are transposed in registers; the rest (D or T not a multiple of kLanes) element by
// element.
HWY_INLINE void PackTransposed(float* dst, const float* src, long stride, int T, int D) {
    const auto at = [&](int t, int d) {
        return dst + (long)(t / kBk) * kBk * D + (long)d * kBk + t % kBk;
    };
    const int Dfull = D / kLanes * kLanes;
    prefetch_rows(src, stride, 0, std::min(T, kLanes), D);
    int t0 = 0;
    for (; t0 + kLanes <= T; t0 += kLanes) {
        prefetch_rows(src, stride, t0 + kLanes, std::min(T, t0 + 2 * kLanes), D);
        const float* s = src + t0 * stride;
        for (int d0 = 0; d0 < Dfull; d0 += kLanes) TransposeBlock(s + d0, stride, at(t0, d0), kBk);
        for (int d = Dfull; d < D; d++)
            for (int i = 0; i < kLanes; i++) *at(t0 + i, d) = s[i * stride + d];
    }
    for (; t0 < T; t0++)
        for (int d = 0; d < D; d++) *at(t0, d) = src[t0 * stride + d];
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

// The forward's online-softmax step for rows [i0, i0 + kLanes) of a score tile S (kBq x kBk;
// row i holds query q0 + i against keys k0.., of which causal_limit(q0 + i, k0, nk) are
// attended; rows past nq are left out): the running max m and sum l, the accumulator rows o
// rescaled by alpha = e^(m - m'), and S's rows overwritten by e^(S - m') (zero past the limit, as
// O += P V reads whole rows). A vector's worth of rows at a time, so that their maxima and sums
// come out of one transpose-reduce each and their alphas out of one vector exp: the per-row
// horizontal reductions and scalar exp took about as long as the tile's exps.
HWY_INLINE void OnlineSoftmaxRows(float* HWY_RESTRICT s, float* HWY_RESTRICT m,
                                  float* HWY_RESTRICT l, float* HWY_RESTRICT o, int i0, int nq,
                                  int q0, int k0, int nk, int Dv) {
    const DF d;
    const VF ninf = hn::Set(d, -INFINITY);
    int lim[kLanes];
    VF part[kLanes];
    for (int u = 0; u < kLanes; u++) {
        const int i = i0 + u;
        lim[u] = i < nq ? causal_limit(q0 + i, k0, nk) : 0;
        const float* row = s + (long)i * kBk;
        VF acc = ninf;
        for (int j = 0; j < lim[u]; j += kLanes)
            acc = hn::Max(acc, hn::IfThenElse(hn::FirstN(d, size_t(lim[u] - j)),
                                              hn::LoadU(d, row + j), ninf));
        part[u] = acc;
    }
    // Rows with no attended key keep m (a row's first tile always has one: its diagonal).
    const VF mold = hn::LoadU(d, m + i0);
    const VF mnew = hn::Max(mold, TransposeReduce<true>(d, part));
    // alpha = e^(m - m'): 0 where m = -inf (no key yet; l and o are 0), NaN where m' is (a NaN
    // score: propagated, as torch's softmax does; ExpSoftmax<true>).
    const VF alpha =
        hn::IfThenZeroElse(hn::Eq(mold, ninf), ExpSoftmax<true>(d, hn::Sub(mold, mnew)));
    alignas(64) float mrow[kLanes], arow[kLanes];
    hn::Store(mnew, d, mrow);
    hn::Store(alpha, d, arow);
    for (int u = 0; u < kLanes; u++) {
        const int i = i0 + u;
        float* row = s + (long)i * kBk;
        const VF mi = hn::Set(d, mrow[u]);
        VF acc = hn::Zero(d);
        for (int j = 0; j < nk; j += kLanes) {  // whole vectors: rows are kBk >= nk long
            const VF e =
                hn::IfThenElseZero(hn::FirstN(d, size_t(std::max(0, lim[u] - j))),
                                   ExpSoftmax<true>(d, hn::Sub(hn::LoadU(d, row + j), mi)));
            hn::StoreU(e, d, row + j);
            acc = hn::Add(acc, e);
        }
        part[u] = acc;
        if (i < nq && arow[u] != 1.0f) ScaleTo(o + (long)i * Dv, arow[u], o + (long)i * Dv, Dv);
    }
    hn::StoreU(hn::MulAdd(hn::LoadU(d, l + i0), alpha, TransposeReduce<false>(d, part)), d, l + i0);
    hn::StoreU(mnew, d, m + i0);
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
    const long ldo = (long)d.Hq * Dv;
    out += (long)h * Dv;  // the head's slice of the (B, T, Hq * Dv) output
    Scratch& sc = scratch();
    float* kt = grow(sc.kt, tiled_size(T, D));
    float* vc = grow(sc.vc, (size_t)T * Dv);
    float* qs = grow(sc.qs, (size_t)kBq * D);
    float* o = grow(sc.o, (size_t)kBq * Dv);
    float* s = grow(sc.s, (size_t)kBq * kBk);
    float* m = grow(sc.m, kBq);
    float* l = grow(sc.l, kBq);
    PackTransposed(kt, kb, d.k_stride, T, D);
    pack_rows(vc, vb, d.v_stride, T, Dv);

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
            // S = (scale Q) K^T
            MmCausal(Tri::kColsUpTo, off, nq, nk, D, qs, D, 1, kt + (long)k0 * D, kBk, s, kBk,
                     false);
            for (int i0 = 0; i0 < nq; i0 += kLanes)
                OnlineSoftmaxRows(s, m, l, o, i0, nq, q0, k0, nk, Dv);
            MmCausal(Tri::kInnerUpTo, off, nq, Dv, nk, s, kBk, 1, vc + (long)k0 * Dv, Dv, o, Dv,
                     true);  // O += P V
        }
        prefetch_rows(out + ((long)b * T + q0) * ldo, ldo, 0, nq, Dv, true);
        for (int i = 0; i < nq; i++) {
            const int t = q0 + i;
            ScaleTo(out + ((long)b * T + t) * ldo, 1.0f / l[i], o + (long)i * Dv, Dv);
            lse[((long)b * d.Hq + h) * T + t] = m[i] + std::log(l[i]);
        }
    }
}

// Backward for one query head h (reading KV head kvh); accumulates into the task's dK, dV.
void BackwardHead(float* dq, float* dkacc, float* dvacc, const float* dout, const float* out,
                  const float* lse, const float* q, const float* kc, const float* kt,
                  const float* vt, const AttnDims& d, int b, int h) {
    const int T = d.T, D = d.D, Dv = d.Dv;
    const long ldo = (long)d.Hq * Dv;
    const float* qb = q + (long)b * T * d.q_stride + (long)h * D;
    const float* dob_strided = dout + (long)b * T * ldo + (long)h * Dv;
    const float* ob = out + (long)b * T * ldo + (long)h * Dv;
    const float* lb = lse + ((long)b * d.Hq + h) * T;
    Scratch& sc = scratch();
    float* qs = grow(sc.qs, (size_t)T * D);
    float* dqa = grow(sc.dq, (size_t)T * D);
    float* di = grow(sc.di, T);
    float* dob = grow(sc.doc, (size_t)T * Dv);
    float* p = grow(sc.s, (size_t)kBq * kBk);
    float* ds = grow(sc.dp, (size_t)kBq * kBk);
    PackScaled(qs, qb, d.q_stride, T, D, d.scale);
    std::fill(dqa, dqa + (size_t)T * D, 0.0f);
    // dO's rows copied into a contiguous (T, Dv) matrix (the B panel of dV += P^T dO), and
    // rowsum(dO O); the first read of dO's and O's rows.
    for (int t = 0; t < T; t++) {
        if (t % 8 == 0) {
            prefetch_rows(dob_strided, ldo, t + 8, std::min(T, t + 16), Dv);
            prefetch_rows(ob, ldo, t + 8, std::min(T, t + 16), Dv);
        }
        std::copy(dob_strided + t * ldo, dob_strided + t * ldo + Dv, dob + (long)t * Dv);
        di[t] = Dot(dob + (long)t * Dv, ob + t * ldo, Dv);
    }
    for (int k0 = 0; k0 < T; k0 += kBk) {
        const int nk = std::min(kBk, T - k0);
        for (int q0 = (k0 / kBq) * kBq; q0 < T; q0 += kBq) {
            const int nq = std::min(kBq, T - q0);
            const int off = q0 - k0;
            MmCausal(Tri::kColsUpTo, off, nq, nk, D, qs + (long)q0 * D, D, 1, kt + (long)k0 * D,
                     kBk, p, kBk, false);  // S
            for (int i = 0; i < nq; i++)   // P = exp(S - lse), causal entries only
                ExpShiftRow(p + i * kBk, causal_limit(q0 + i, k0, nk), nk, lb[q0 + i]);
            // dV += P^T dO (A read transposed: row = key, k-index = query)
            MmCausal(Tri::kInnerFrom, off, nk, Dv, nq, p, 1, kBk, dob + (long)q0 * Dv, Dv,
                     dvacc + (long)k0 * Dv, Dv, true);
            MmCausal(Tri::kColsUpTo, off, nq, nk, Dv, dob + (long)q0 * Dv, Dv, 1,
                     vt + (long)k0 * Dv, kBk, ds, kBk, false);  // dP = dO V^T
            for (int i = 0; i < nq; i++)  // dS = P * (dP - D_i); dP is valid up to lim only
                SoftmaxGrad(ds + i * kBk, p + i * kBk, di[q0 + i], causal_limit(q0 + i, k0, nk),
                            nk);
            MmCausal(Tri::kInnerUpTo, off, nq, D, nk, ds, kBk, 1, kc + (long)k0 * D, D,
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
    float* kt = grow(sc.kt, tiled_size(T, D));
    float* vt = grow(sc.vt, tiled_size(T, Dv));
    float* kc = grow(sc.kc, (size_t)T * D);
    float* dka = grow(sc.dk, (size_t)T * D);
    float* dva = grow(sc.dv, (size_t)T * Dv);
    PackTransposed(kt, kb, d.k_stride, T, D);
    PackTransposed(vt, vb, d.v_stride, T, Dv);
    pack_rows(kc, kb, d.k_stride, T, D);
    std::fill(dka, dka + (size_t)T * D, 0.0f);
    std::fill(dva, dva + (size_t)T * Dv, 0.0f);
    for (int j = 0; j < group; j++) {
        BackwardHead(dq, dka, dva, dout, out, lse, q, kc, kt, vt, d, b, kvh * group + j);
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
