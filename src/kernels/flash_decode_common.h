// Pieces shared by the decoding kernels (flash_tpa_decode.cpp, flash_kv_decode.cpp,
// flash_mla_decode.cpp): the online-softmax partial of one task, the register-tiled value
// aggregation, and the split of every sequence's cache into tasks across threads with the final
// log-sum-exp merge (flash-decoding). Internal to src/kernels.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/bf16.h"
#include "kernels/flash_decode.h"
#include "kernels/vec_math.h"

namespace t6::flash_detail {

constexpr int kBlock = 32;  // cache tokens per online-softmax block

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

#ifdef __AVX512F__
// f(std::integral_constant<int, N>{}) for N = n clamped to [1, Max]: turns a runtime count (a head
// tile's height, a row's number of 16-float chunks) into the template argument of a kernel whose
// registers it sizes.
template <int Max, typename F>
void with_count(int n, F&& f) {
    if constexpr (Max == 1) {
        f(std::integral_constant<int, 1>{});
    } else {
        if (n >= Max) return f(std::integral_constant<int, Max>{});
        with_count<Max - 1>(n, std::forward<F>(f));
    }
}

// 16 cached numbers (lanes outside m zero) as float32: float as is, bf16 widened in registers.
inline __m512 load_f32x16(const float* p, __mmask16 m = 0xffff) {
    return _mm512_maskz_loadu_ps(m, p);
}
#if defined(__AVX512BW__) && defined(__AVX512VL__)
inline __m512 load_f32x16(const uint16_t* p, __mmask16 m = 0xffff) {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}
#else
inline __m512 load_f32x16(const uint16_t* p, __mmask16 m = 0xffff) {
    alignas(64) float f[16];
    for (int i = 0; i < 16; i++) f[i] = (m >> i) & 1 ? bf16_to_float(p[i]) : 0.0f;
    return _mm512_load_ps(f);
}
#endif

inline __mmask16 lane_mask(int count) {
    return count >= 16  ? __mmask16(0xffff)
           : count <= 0 ? __mmask16(0)
                        : __mmask16((1u << count) - 1);
}

// Value aggregation of one block, shared by FlashTPA (k = (t, s), R_V rows per record) and
// absorbed MLA (k = t, the latent c_t, one row per record): acc (H, D) = alpha acc + W^T B with
// W (n*Rv, Hp) the weights of row k per head and B_k = recs[t][off_bv + s*D ..].
// values_tile does heads [h0, h0+HB) and columns [c0, c0+64) ∩ [0, D) in registers: each B_k
// row is loaded once per tile and the HB weights are broadcast from memory.
// Cache lines [l0, l1) of each of the next block's n records (base, rec_bytes apart) are
// prefetched into L2 while a tile runs, so the next block streams in during the arithmetic
// (into L2, not L1: a block is larger than L1, and prefetching it there evicts the block in use).
// The rows and weights are float32 (E = float), or, on CPUs with AVX-512 BF16, bf16 pairs
// (E = Bf16Pair): row k of B then holds rows 2k and 2k+1 of the block interleaved column by
// column, the weight of row k holds both rows' weights, and vdpbf16ps does both rows' multiply-adds
// in one instruction (products exact, sums in float32).
struct NextBlock {
    const char* base = nullptr;
    long rec_bytes = 0;
    int n = 0, l0 = 0, l1 = 0;
};

struct Bf16Pair {
    uint32_t bits;  // lower half: the even row's bf16, upper half: the odd row's
};

template <typename E>
struct ValueOps;

template <>
struct ValueOps<float> {
    static __m512 load(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
    static __m512 weight(const float* w) { return _mm512_set1_ps(*w); }
    static __m512 madd(__m512 acc, __m512 w, __m512 b) { return _mm512_fmadd_ps(w, b, acc); }
};

#ifdef __AVX512BF16__
template <>
struct ValueOps<Bf16Pair> {
    static __m512 load(__mmask16 m, const Bf16Pair* p) {
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi32(m, p));
    }
    static __m512 weight(const Bf16Pair* w) {
        return _mm512_castsi512_ps(_mm512_set1_epi32(int(w->bits)));
    }
    static __m512 madd(__m512 acc, __m512 w, __m512 b) {
        return _mm512_dpbf16_ps(acc, __m512bh(w), __m512bh(b));
    }
};
#endif

template <int HB, typename E>
void values_tile(float* acc, int D, int c0, int h0, const E* W, int Hp, int Rv, const E* recs,
                 long rec, long off_bv, int n, const float* alpha, const NextBlock& nb) {
    using Op = ValueOps<E>;
    static_assert(HB >= 1 && HB <= 6);
    const __mmask16 m0 = lane_mask(D - c0), m1 = lane_mask(D - c0 - 16),
                    m2 = lane_mask(D - c0 - 32), m3 = lane_mask(D - c0 - 48);
    // Named accumulators (an array of __m512 makes GCC spill them).
    __m512 r00, r01, r02, r03, r10, r11, r12, r13, r20, r21, r22, r23, r30, r31, r32, r33, r40, r41,
        r42, r43, r50, r51, r52, r53;
#define T6_VT_LOAD(i, a0, a1, a2, a3)                                \
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
    T6_VT_LOAD(0, r00, r01, r02, r03)
    T6_VT_LOAD(1, r10, r11, r12, r13)
    T6_VT_LOAD(2, r20, r21, r22, r23)
    T6_VT_LOAD(3, r30, r31, r32, r33)
    T6_VT_LOAD(4, r40, r41, r42, r43)
    T6_VT_LOAD(5, r50, r51, r52, r53)
#undef T6_VT_LOAD
    for (int t = 0; t < n; t++) {
        if (t < nb.n) {
            const char* nx = nb.base + t * nb.rec_bytes;
            for (int l = nb.l0; l < nb.l1; l++) _mm_prefetch(nx + 64L * l, _MM_HINT_T1);
        }
        for (int s = 0; s < Rv; s++) {
            const E* b = recs + t * rec + off_bv + long(s) * D + c0;
            const __m512 b0 = Op::load(m0, b), b1 = Op::load(m1, b + 16), b2 = Op::load(m2, b + 32),
                         b3 = Op::load(m3, b + 48);
            const E* w = W + size_t(t * Rv + s) * Hp + h0;
#define T6_VT_FMA(i, a0, a1, a2, a3)        \
    if constexpr (i < HB) {                 \
        const __m512 p = Op::weight(w + i); \
        a0 = Op::madd(a0, p, b0);           \
        a1 = Op::madd(a1, p, b1);           \
        a2 = Op::madd(a2, p, b2);           \
        a3 = Op::madd(a3, p, b3);           \
    }
            T6_VT_FMA(0, r00, r01, r02, r03)
            T6_VT_FMA(1, r10, r11, r12, r13)
            T6_VT_FMA(2, r20, r21, r22, r23)
            T6_VT_FMA(3, r30, r31, r32, r33)
            T6_VT_FMA(4, r40, r41, r42, r43)
            T6_VT_FMA(5, r50, r51, r52, r53)
#undef T6_VT_FMA
        }
    }
#define T6_VT_STORE(i, a0, a1, a2, a3)              \
    if constexpr (i < HB) {                         \
        float* dst = acc + size_t(h0 + i) * D + c0; \
        _mm512_mask_storeu_ps(dst, m0, a0);         \
        _mm512_mask_storeu_ps(dst + 16, m1, a1);    \
        _mm512_mask_storeu_ps(dst + 32, m2, a2);    \
        _mm512_mask_storeu_ps(dst + 48, m3, a3);    \
    }
    T6_VT_STORE(0, r00, r01, r02, r03)
    T6_VT_STORE(1, r10, r11, r12, r13)
    T6_VT_STORE(2, r20, r21, r22, r23)
    T6_VT_STORE(3, r30, r31, r32, r33)
    T6_VT_STORE(4, r40, r41, r42, r43)
    T6_VT_STORE(5, r50, r51, r52, r53)
#undef T6_VT_STORE
}

// All of acc: the heads in balanced tiles of at most max_hb (<= 6) heads. The next block's
// record lines (nb.base, nb.rec_bytes, nb.n; nb.n == 0: none) are shared out across the tiles:
// the caller reads each record in several places, which the hardware prefetcher does not
// follow, and prefetches issued in one burst stall on the core's outstanding-miss limit.
template <typename E>
void values_tiles(float* acc, int H, int D, int max_hb, const E* W, int Hp, int Rv, const E* recs,
                  long rec, long off_bv, int n, const float* alpha, NextBlock next) {
    const int tiles = (H + max_hb - 1) / max_hb;
    const int lines = int((next.rec_bytes + 63) / 64);
    for (int ti = 0; ti < tiles; ti++) {
        const int h0 = int(long(H) * ti / tiles), hb = int(long(H) * (ti + 1) / tiles) - h0;
        NextBlock nb = next;
        nb.l0 = lines * ti / tiles;
        nb.l1 = lines * (ti + 1) / tiles;
        for (int c0 = 0; c0 < D; c0 += 64) {
            if (c0 > 0) nb.n = 0;
            with_count<6>(hb, [&](auto HB) {
                values_tile<HB, E>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha, nb);
            });
        }
    }
}
#endif

struct Task {
    int seq, j0, j1;
};

// Splits the sequences' caches into tasks (flash_decode_split.cpp).
std::vector<Task> make_tasks(const int* lens, int nseq);

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

}  // namespace t6::flash_detail
