// Per-target (Google Highway) vector pieces shared by the decoding kernels: widening loads of
// cached numbers, the transpose-add of partial dot products, and the register-tiled value
// aggregation acc (H, D) = alpha acc + W^T B used by FlashTPA (TPA paper, Algorithm 2 / Appendix
// A.4: o_h = 1/R_V sum_j p_h(j) sum_s A_V[j,h,s] B_V[j,s]) and by absorbed MLA (o_h = sum_j
// p_h(j) c_j). Include from a file compiled with hwy/foreach_target.h, after hwy/highway.h and
// flash_decode_common.h (Highway's "-inl.h" convention: the guard below re-includes it once per
// target). Everything is in t6::HWY_NAMESPACE::flash.
//
// Vectors have N = Lanes(d) float lanes: 16 on AVX3, 8 on AVX2, 4 on NEON, 1 on SCALAR. Value tiles
// hold HB heads x NV vectors of columns in registers, HB <= kMaxTileHeads (6 on AVX3: 24 of 32 zmm;
// 3 on AVX2: 12 of 16 ymm; 6 on NEON: 24 of 32 q registers).
#if defined(T6_KERNELS_FLASH_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef T6_KERNELS_FLASH_DECODE_INL_H_
#undef T6_KERNELS_FLASH_DECODE_INL_H_
#else
#define T6_KERNELS_FLASH_DECODE_INL_H_
#endif

#include <cstdint>
#include <type_traits>
#include <vector>

#include "hwy/highway.h"
#include "kernels/bf16.h"
#include "kernels/flash_decode_common.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE::flash {
namespace hn = hwy::HWY_NAMESPACE;
using flash_detail::NextBlock;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr int kN = int(hn::MaxLanes(DF()));  // float lanes per vector

#if HWY_TARGET == HWY_AVX2
constexpr int kMaxTileHeads = 3;
#else
constexpr int kMaxTileHeads = 6;
#endif

// Lines [l0, l1) of the next block (64 bytes each from base) for a piece of the kernel to
// prefetch into L2, spread over its loop (a burst of prefetches stalls on the core's
// outstanding-miss limit).
struct LineShare {
    const char* base = nullptr;
    long l0 = 0, l1 = 0;
    bool to_l1 = false;  // prefetched into L1, else L2 (PrefetchLine)
    long count() const { return l1 - l0; }
    // Piece k of `pieces` equal pieces of this share.
    LineShare piece(long k, long pieces) const {
        return {base, l0 + count() * k / pieces, l0 + count() * (k + 1) / pieces, to_l1};
    }
};

// One cache line of upcoming records, into L1 (prefetcht0) or L2 (prefetcht1): l1 from the
// share (LineShare::to_l1, NextBlock::to_l1), set by the kernel where flash_prefetch_l1() applies.
HWY_INLINE void PrefetchLine(const char* p, bool l1) {
    if (l1)
        __builtin_prefetch(p, 0, 3);
    else
        __builtin_prefetch(p, 0, 2);
}

// Prefetches a share's lines spread over the `steps` steps of a loop: count / steps per step,
// the remainder carried (no division in the loop).
struct LineSpread {
    const char* p;
    int lines, steps, carry = 0;
    bool to_l1;
    LineSpread(const LineShare& s, int steps_)
        : p(s.base + 64 * s.l0), lines(int(s.count())), steps(steps_), to_l1(s.to_l1) {}
    HWY_INLINE void step() {
        for (carry += lines; carry >= steps; carry -= steps, p += 64) PrefetchLine(p, to_l1);
    }
};

// The mask of the first count lanes (count may be <= 0 or >= N).
HWY_INLINE hn::Mask<DF> LaneMask(int count) {
    return hn::FirstN(DF(), size_t(count < 0 ? 0 : count));
}

// N cached numbers as float32: float as is, bf16 (the upper half of a float32) widened.
HWY_INLINE VF LoadF32(const float* p) {
    return hn::LoadU(DF(), p);
}
HWY_INLINE VF LoadF32(const uint16_t* p) {
    const hn::RebindToUnsigned<DF> du;
    const hn::Rebind<uint16_t, DF> d16;
    return hn::BitCast(DF(), hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, p))));
}
// N int8 codes of a q8 cache row as float32 (int8 -> int32 -> float32; the row's scale is applied
// by the caller, folded into a score or a probability).
HWY_INLINE VF LoadF32(const int8_t* p) {
    const hn::Rebind<int32_t, DF> di32;
    const hn::Rebind<int8_t, DF> di8;
    return hn::ConvertTo(DF(), hn::PromoteTo(di32, hn::LoadU(di8, p)));
}
// The same with lanes >= count zero. The float load is a masked load (no access past count);
// the bf16 one may read (not use) up to N-1 numbers past count on AVX2 and SCALAR, so callers
// pass rows that continue inside the same cache record.
HWY_INLINE VF MaskedLoadF32(const float* p, int count) {
    if (count >= kN) return hn::LoadU(DF(), p);
    return hn::MaskedLoad(LaneMask(count), DF(), p);
}
// Stores the first count lanes of v (count may be <= 0 or >= N): a whole vector with a plain
// store. AVX2's masked store (vmaskmovps) is microcoded on AMD CPUs: on Zen 4, the twelve masked
// stores that ended each AVX2 FlashTPA value tile took about a third of the tile's time.
HWY_INLINE void StoreF32(VF v, int count, float* p) {
    if (count >= kN)
        hn::StoreU(v, DF(), p);
    else
        hn::BlendedStore(v, LaneMask(count), DF(), p);
}
HWY_INLINE VF MaskedLoadF32(const uint16_t* p, int count) {
    if (count >= kN) return LoadF32(p);
    const hn::RebindToUnsigned<DF> du;
    const hn::Rebind<uint16_t, DF> d16;
    const auto m = hn::FirstN(d16, size_t(count < 0 ? 0 : count));
    return hn::BitCast(DF(), hn::ShiftLeft<16>(hn::PromoteTo(du, hn::MaskedLoad(m, d16, p))));
}

// Records [j0, j0+n) of a cache (rec numbers each) as float32: the cache itself when it is float,
// else widened into buf with vector loads (flash_detail::records_f32 in vector form).
HWY_INLINE const float* RecordsF32(const float* cache, long rec, int j0, int /*n*/,
                                   std::vector<float>& /*buf*/) {
    return cache + long(j0) * rec;
}
HWY_INLINE const float* RecordsF32(const uint16_t* cache, long rec, int j0, int n,
                                   std::vector<float>& buf) {
    const size_t count = size_t(n) * rec;
    if (buf.size() < count + kN) buf.resize(count + kN);
    const uint16_t* src = cache + long(j0) * rec;
    float* dst = buf.data();
    size_t i = 0;
    for (; i + kN <= count; i += kN) hn::StoreU(LoadF32(src + i), DF(), dst + i);
    for (; i < count; i++) dst[i] = bf16_to_float(src[i]);
    return dst;
}

// Lane k of the result is the sum of the N lanes of v[k] (N partial dot products reduced at
// once by a transpose-add tree instead of N horizontal sums; vec_math-inl.h).
HWY_INLINE VF TransposeSum(const VF* v) {
    return TransposeReduce<false>(DF(), v);
}

// ---- Value aggregation ----
// values_tile does heads [h0, h0+HB) and columns [c0, c0 + NV*N) ∩ [0, D) in registers: each row
// k of B (B_k = recs[t*rec + off_bv + s*D ..], k = t*Rv + s) is loaded once per tile, and the
// weight W[k][h] is broadcast from memory. Op says how rows and weights (elements E) are loaded
// and multiplied: float32 here (OpF32); vdpbf16ps on bf16 pairs in flash_tpa_decode.cpp.
struct OpF32 {
    using E = float;
    static HWY_INLINE VF Load(const float* p, int count) { return MaskedLoadF32(p, count); }
    static HWY_INLINE VF Weight(const float* w) { return hn::Set(DF(), *w); }
    static HWY_INLINE VF MulAdd(VF acc, VF w, VF b) { return hn::MulAdd(w, b, acc); }
};

// The accumulators of a value tile (values_tile here, the MLA kernel's panel tile): heads
// [h0, h0 + HB) x NV vectors of the rows of ACC (LD floats apart) from column c0, in named
// registers r00..r53 (an array of vectors makes GCC spill them). T6_VT_ACC_LOAD declares them and
// loads alpha[h] acc[h]; T6_VT_ACC_STORE stores them back, masked to the row's end. Both expect d,
// alpha, h0, c0 and n0..n3 (the columns left from each vector) in scope.
#define T6_VT_ACC_LOAD1(i, a0, a1, a2, a3, ACC, LD)                               \
    if constexpr (i < HB) {                                                       \
        const VF al = hn::Set(d, alpha[h0 + i]);                                  \
        const float* src = (ACC) + size_t(h0 + i) * (LD) + c0;                    \
        a0 = hn::Mul(al, MaskedLoadF32(src, n0));                                 \
        a1 = NV > 1 ? hn::Mul(al, MaskedLoadF32(src + kN, n1)) : hn::Zero(d);     \
        a2 = NV > 2 ? hn::Mul(al, MaskedLoadF32(src + 2 * kN, n2)) : hn::Zero(d); \
        a3 = NV > 3 ? hn::Mul(al, MaskedLoadF32(src + 3 * kN, n3)) : hn::Zero(d); \
    } else {                                                                      \
        a0 = a1 = a2 = a3 = hn::Zero(d);                                          \
    }
#define T6_VT_ACC_LOAD(ACC, LD)                                                                  \
    VF r00, r01, r02, r03, r10, r11, r12, r13, r20, r21, r22, r23, r30, r31, r32, r33, r40, r41, \
        r42, r43, r50, r51, r52, r53;                                                            \
    T6_VT_ACC_LOAD1(0, r00, r01, r02, r03, ACC, LD)                                              \
    T6_VT_ACC_LOAD1(1, r10, r11, r12, r13, ACC, LD)                                              \
    T6_VT_ACC_LOAD1(2, r20, r21, r22, r23, ACC, LD)                                              \
    T6_VT_ACC_LOAD1(3, r30, r31, r32, r33, ACC, LD)                                              \
    T6_VT_ACC_LOAD1(4, r40, r41, r42, r43, ACC, LD)                                              \
    T6_VT_ACC_LOAD1(5, r50, r51, r52, r53, ACC, LD)
#define T6_VT_ACC_STORE1(i, a0, a1, a2, a3, ACC, LD)          \
    if constexpr (i < HB) {                                   \
        float* dst = (ACC) + size_t(h0 + i) * (LD) + c0;      \
        StoreF32(a0, n0, dst);                                \
        if constexpr (NV > 1) StoreF32(a1, n1, dst + kN);     \
        if constexpr (NV > 2) StoreF32(a2, n2, dst + 2 * kN); \
        if constexpr (NV > 3) StoreF32(a3, n3, dst + 3 * kN); \
    }
// M(i, ai0, ai1, ai2, ai3) for each of the six heads' accumulators (M: a tile's multiply-adds).
#define T6_VT_EACH_HEAD(M)   \
    M(0, r00, r01, r02, r03) \
    M(1, r10, r11, r12, r13) \
    M(2, r20, r21, r22, r23) \
    M(3, r30, r31, r32, r33) \
    M(4, r40, r41, r42, r43) \
    M(5, r50, r51, r52, r53)
#define T6_VT_ACC_STORE(ACC, LD)                     \
    T6_VT_ACC_STORE1(0, r00, r01, r02, r03, ACC, LD) \
    T6_VT_ACC_STORE1(1, r10, r11, r12, r13, ACC, LD) \
    T6_VT_ACC_STORE1(2, r20, r21, r22, r23, ACC, LD) \
    T6_VT_ACC_STORE1(3, r30, r31, r32, r33, ACC, LD) \
    T6_VT_ACC_STORE1(4, r40, r41, r42, r43, ACC, LD) \
    T6_VT_ACC_STORE1(5, r50, r51, r52, r53, ACC, LD)

template <int HB, int NV, bool kFull, class Op>
HWY_INLINE void values_tile_body(float* acc, int D, int c0, int h0, const typename Op::E* W, int Hp,
                                 int Rv, const typename Op::E* recs, long rec, long off_bv, int n,
                                 const float* alpha, NextBlock nb) {
    static_assert(HB >= 1 && HB <= 6 && NV >= 1 && NV <= 4);
    const DF d;
    // kFull: the tile's NV vectors lie inside the row (no masks).
    const int n0 = kFull ? NV * kN : D - c0, n1 = n0 - kN, n2 = n0 - 2 * kN, n3 = n0 - 3 * kN;
    T6_VT_ACC_LOAD(acc, D)
    const typename Op::E* bt = recs + off_bv + c0;
    const typename Op::E* wt = W + h0;
    for (int t = 0; t < n; t++, bt += rec, wt += size_t(Rv) * Hp) {
        if (t < nb.n) {  // the next block's record t, lines [l0, l1)
            for (int l = nb.l0; l < nb.l1; l++) PrefetchLine(nb.base + 64L * l, nb.to_l1);
            nb.base += nb.rec_bytes;
        }
        const typename Op::E* b = bt;
        const typename Op::E* w = wt;
        for (int s = 0; s < Rv; s++, b += D, w += Hp) {
            const VF b0 = kFull ? Op::Load(b, kN) : Op::Load(b, n0);
            const VF b1 = NV > 1 ? Op::Load(b + kN, kFull ? kN : n1) : hn::Zero(d);
            const VF b2 = NV > 2 ? Op::Load(b + 2 * kN, kFull ? kN : n2) : hn::Zero(d);
            const VF b3 = NV > 3 ? Op::Load(b + 3 * kN, kFull ? kN : n3) : hn::Zero(d);
#define T6_VT_FMA(i, a0, a1, a2, a3)                      \
    if constexpr (i < HB) {                               \
        const VF p = Op::Weight(w + i);                   \
        a0 = Op::MulAdd(a0, p, b0);                       \
        if constexpr (NV > 1) a1 = Op::MulAdd(a1, p, b1); \
        if constexpr (NV > 2) a2 = Op::MulAdd(a2, p, b2); \
        if constexpr (NV > 3) a3 = Op::MulAdd(a3, p, b3); \
    }
            T6_VT_EACH_HEAD(T6_VT_FMA)
#undef T6_VT_FMA
        }
    }
    T6_VT_ACC_STORE(acc, D)
}

// The float32 tile as a function of its own: inlined into the caller's long body, GCC kept the
// caller's values live across the loop and spilled them into vector registers, reloading them
// at every token (AVX-512: 23 of the loop's ~140 instructions per token). Other Ops stay inline
// (ValueOpsBf16's leaves carry a target attribute that a separate function would not).
// R_V = 2 (every preset's) gets a body of its own: with the rank loop's trip count known, GCC
// unrolls it and the two rows' loads and multiply-adds interleave. FlashTPA alone, small-t6's
// shape from memory, two threads, Zen 5, paired medians: AVX2 0.945-0.981 of the time (5 runs),
// AVX-512 0.946-0.999 (docs/decode-bench.md, session 39).
template <int HB, int NV, bool kFull>
HWY_NOINLINE void values_tile_f32(float* acc, int D, int c0, int h0, const float* W, int Hp, int Rv,
                                  const float* recs, long rec, long off_bv, int n,
                                  const float* alpha, NextBlock nb) {
    // (Whole column tiles of at least two vectors only, the ones of head sizes 64 and 128: each
    // second body adds to the compile time of the kernel's file.)
    if constexpr (kFull && NV >= 2) {
        if (Rv == 2) {
            values_tile_body<HB, NV, kFull, OpF32>(acc, D, c0, h0, W, Hp, 2, recs, rec, off_bv, n,
                                                   alpha, nb);
            return;
        }
    }
    values_tile_body<HB, NV, kFull, OpF32>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha,
                                           nb);
}

template <int HB, int NV, class Op>
HWY_INLINE void values_tile(float* acc, int D, int c0, int h0, const typename Op::E* W, int Hp,
                            int Rv, const typename Op::E* recs, long rec, long off_bv, int n,
                            const float* alpha, NextBlock nb) {
    const bool full = c0 + NV * kN <= D;
    if constexpr (std::is_same_v<Op, OpF32>) {
        if (full)
            values_tile_f32<HB, NV, true>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha,
                                          nb);
        else
            values_tile_f32<HB, NV, false>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha,
                                           nb);
    } else {
        if (full)
            values_tile_body<HB, NV, true, Op>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n,
                                               alpha, nb);
        else
            values_tile_body<HB, NV, false, Op>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n,
                                                alpha, nb);
    }
}

// values_tile with NV = the vectors left in the row from c0 (at most max_nv <= 4), chosen at run
// time (a switch, not a generic lambda: this runs inside target-attributed functions too).
template <int HB, class Op>
HWY_INLINE void values_tile_cols(float* acc, int D, int c0, int h0, const typename Op::E* W, int Hp,
                                 int Rv, const typename Op::E* recs, long rec, long off_bv, int n,
                                 const float* alpha, NextBlock nb, int max_nv) {
    const int left = (D - c0 + kN - 1) / kN, nv = left < max_nv ? left : max_nv;
    if (nv >= 4)
        values_tile<HB, 4, Op>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha, nb);
    else if (nv == 3)
        values_tile<HB, 3, Op>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha, nb);
    else if (nv == 2)
        values_tile<HB, 2, Op>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha, nb);
    else
        values_tile<HB, 1, Op>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha, nb);
}

// All of acc (H, D): the heads in balanced tiles of at most max_hb (<= kMaxTileHeads) heads,
// columns max_nv N at a time (max_nv <= 4). On AVX2, max_nv <= 2 allows tiles of up to 6 heads
// (12 accumulators, 2 row vectors and a weight in 15 of 16 ymm registers: 2 row loads and 6
// weight broadcasts per 12 FMAs, where 3 heads x 4 vectors need 17 registers). Row k = t*Rv + s
// of B is recs[t*rec + off_bv + s*D ..] and its weights W[k*Hp ..]. The next block (next.base:
// next.n records of next.rec_bytes; n == 0: none) is prefetched into L2 meanwhile, the lines of
// every record shared out across all the tile calls (head tiles x column tiles): the caller reads
// each record in several places, which the hardware prefetcher does not follow, and prefetches
// issued in bursts stall on the core's outstanding-miss limit (with the AVX2 tiles' four column
// tiles, prefetching only in the first took 20% longer from memory, two threads).
template <class Op>
HWY_INLINE void values_tiles(float* acc, int H, int D, int max_hb, const typename Op::E* W, int Hp,
                             int Rv, const typename Op::E* recs, long rec, long off_bv, int n,
                             const float* alpha, NextBlock next, int max_nv = 4) {
#if HWY_TARGET == HWY_AVX2
    const int cap = max_nv <= 2 ? 6 : kMaxTileHeads;
#else
    const int cap = kMaxTileHeads;
#endif
    max_hb = max_hb < cap ? max_hb : cap;
    const int tiles = (H + max_hb - 1) / max_hb;
    const int lines = int((next.rec_bytes + 63) / 64);
    const int cols = (D + max_nv * kN - 1) / (max_nv * kN), calls = tiles * cols;
    for (int ti = 0; ti < tiles; ti++) {
        const int h0 = int(long(H) * ti / tiles), hb = int(long(H) * (ti + 1) / tiles) - h0;
        for (int ci = 0, c0 = 0; c0 < D; ci++, c0 += max_nv * kN) {
            // Every tile call (head tile x column tile) prefetches its share of the lines.
            NextBlock nb = next;
            nb.l0 = lines * (ti * cols + ci) / calls;
            nb.l1 = lines * (ti * cols + ci + 1) / calls;
#define T6_VT_CALL(HB) \
    values_tile_cols<HB, Op>(acc, D, c0, h0, W, Hp, Rv, recs, rec, off_bv, n, alpha, nb, max_nv)
            switch (hb) {
                case 1:
                    T6_VT_CALL(1);
                    break;
                case 2:
                    T6_VT_CALL(2);
                    break;
                case 3:
                    T6_VT_CALL(3);
                    break;
                case 4:
                    T6_VT_CALL(4);
                    break;
                case 5:
                    T6_VT_CALL(5);
                    break;
                default:
                    T6_VT_CALL(6);
                    break;
            }
#undef T6_VT_CALL
        }
    }
}

#if HWY_TARGET == HWY_AVX3
// ---- bf16 pairs for vdpbf16ps (CPUs with AVX-512 BF16) ----
// The decoding kernels' native bf16 paths (FlashTPA, absorbed MLA) are compiled for the AVX3
// target with avx512bf16 added by this attribute and run only where simd_native_bf16().
#define T6_BF16_TARGET __attribute__((target(HWY_TARGET_STR ",avx512bf16")))

// Lane i: bf16(lo[i]) | bf16(hi[i]) << 16, rounded to nearest even: the weights of two rows that
// one vdpbf16ps multiplies by the rows' interleaved numbers (the first row's in the low half).
inline T6_BF16_TARGET __m512i Bf16PairLanes(__m512 lo, __m512 hi) {
    const __m512i a = _mm512_cvtepu16_epi32(__m256i(_mm512_cvtneps_pbh(lo)));
    const __m512i b = _mm512_cvtepu16_epi32(__m256i(_mm512_cvtneps_pbh(hi)));
    return _mm512_or_si512(a, _mm512_slli_epi32(b, 16));
}
#endif  // HWY_TARGET == HWY_AVX3

}  // namespace t6::HWY_NAMESPACE::flash
HWY_AFTER_NAMESPACE();

#endif  // T6_KERNELS_FLASH_DECODE_INL_H_
