// Flash-decoding over a standard K/V cache (MHA, MQA, GQA): see flash_decode.h. One query token
// per sequence, o_h = sum_j softmax_j(scale q_h . K[j, kv(h)]) V[j, kv(h)], kv(h) = h / (Hq/Hkv),
// with the online softmax over blocks of the cache and the cache split into tasks across threads
// (flash_decode_common.h).
//
// The vector kernel is written once with Google Highway and compiled per SIMD target (AVX3,
// AVX2, SCALAR: foreach_target.h); run-time dispatch picks the target in force (core/simd.h).
// Each record is streamed once, token-major, in blocks of 16 tokens (32 for groups of 16 or more
// heads on AVX-512: kKvBlockWide below):
//  1. scores: GQA/MQA groups of 4 or more heads (AVX3, AVX2) transpose the block's K rows of a
//     KV head once, tokens into vector lanes, and every head of the group takes D broadcast FMAs
//     per N tokens on them (GroupScores); otherwise per query head, the query in registers, N
//     tokens' N-lane partial dot products with the K rows reduced by one transpose-add to N
//     scores in vector lanes;
//  2. online softmax with lazy rescaling: the running max of a head moves only when a score
//     passes it by more than 8 (so most blocks need no horizontal max, no rescale and no scalar
//     exp), the running sums kept in N lanes; the exponentials of all heads in one pass;
//  3. values in register tiles of up to 6 heads x up to 4 vectors of columns (2 on AVX2): the
//     heads of one tile share a KV head (GQA/MQA), so each V row is loaded, and for bf16/q8
//     widened, once per tile rather than once per query head (MHA: a tile per head).
// The cache's bytes bound MHA; GQA/MQA (11 and 23 query heads per KV head in the small presets)
// do 2 x group FLOPs per cached number and are bound by the arithmetic, hence the tiles.
// A bf16 cache is read in place and widened in registers. Head sizes other than 16, 32, 64 or
// 128 (or not a multiple of N) take a portable plain-loop version.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/simd.h"
#include "kernels/flash_decode_common.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/flash_kv_decode.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/flash_decode-inl.h"
#include "kernels/vec_math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
using namespace flash;
using flash_detail::Partial;

// Tokens per online-softmax block: kKvBlock, or on AVX-512 kKvBlockWide for groups of at least
// kWideGroup query heads (chosen per call in KvRangeNC). There every broadcast query number feeds
// two token vectors, and the block's fixed costs (the lazy maximum, the rescaled accumulators, the
// score stores) are shared by twice the tokens. Two threads, Zen 5, ns per record, 16 / 32 in
// turn: small-mqa's shape (23 heads on 1 KV head, 64K tokens x 12 layers) 23.3-24.6 -> 20.1-21.4
// (float32), 24.1-24.7 -> 20.8-21.3 (bf16), 24.4-25.1 -> 21.3-21.9 (q8); xl-mqa's (49 on 1, 32K
// tokens, float32) 63.7-65.8 -> 50.6-54.5; large-gqa's and xl-gqa's (19 and 24 per KV head,
// float32) the same either way. small-gqa's (11) went 27.1-30.3 -> 29.6-35.5, and AVX2's MQA (8
// lanes: 4 token vectors, its 16 registers spill) 39 -> 85, so they keep 16 (docs/decode-bench.md,
// session 46).
constexpr int kKvBlock = 16;
constexpr int kKvBlockWide = 32;
constexpr int kWideGroup = 16;
constexpr int kTileHeads = 6;     // heads per value tile (their accumulators stay in registers)
constexpr float kLazyMax = 8.0f;  // the running max moves only past m + kLazyMax (e^8 ~ 3000)

// Cached numbers as float32. bf16 in one shuffle rather than flash::LoadF32's two operations
// (zero-extend, then a 16-bit shift): the float32 bits are the bf16 bits in the upper half. AVX3:
// one zero-masked vpermw (bf16 i to word 2i+1, even words zero); AVX2: one vpshufb of a 128-bit
// broadcast load. (The vector units bound GQA/MQA: 2 x group FLOPs per cached number.)
template <typename T>
HWY_INLINE VF WidenF32(const T* p) {
    return LoadF32(p);
}
HWY_INLINE VF WidenF32(const uint16_t* p) {
#if HWY_TARGET == HWY_AVX3
    const __m512i idx = _mm512_set_epi16(15, 0, 14, 0, 13, 0, 12, 0, 11, 0, 10, 0, 9, 0, 8, 0, 7, 0,
                                         6, 0, 5, 0, 4, 0, 3, 0, 2, 0, 1, 0, 0, 0);
    const __m512i x =
        _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return VF{_mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(0xAAAAAAAAu, idx, x))};
#elif HWY_TARGET == HWY_AVX2
    const __m256i x =
        _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256i sh = _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7, -1,
                                        -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15);
    return VF{_mm256_castsi256_ps(_mm256_shuffle_epi8(x, sh))};
#else
    return LoadF32(p);
#endif
}

// Value-tile columns: NV vectors of the row at a time (HB*NV accumulators, NV row vectors and a
// broadcast probability in registers: 6*4 + 4 + 1 of 32 on AVX3 and NEON, 6*2 + 2 + 1 of 16 on
// AVX2).
template <int NC>
constexpr int ValueVecs() {
#if HWY_TARGET == HWY_AVX2
    return NC < 2 ? NC : 2;
#else
    return NC < 4 ? NC : 4;
#endif
}

// Value aggregation of one tile: heads [h0, h0+HB), columns [c0, c0 + NV*N), over the block's n
// records: acc[h] = alpha[h] acc[h] + sum_t P[h][t] V[t, kv]. The tile's heads share one KV head
// (a GQA/MQA group; V rows at v_off), so each V row is loaded (bf16/q8: widened) once per tile and
// multiplies every head of it. The accumulators stay in registers across the block (HB*NV
// independent FMA chains).
template <int KB, int HB, int NV, bool kPf, typename T>
HWY_INLINE void ValuesTileKv(float* acc, int D, int c0, int h0, long v_off, const float* P,
                             const float* alpha, const T* recs, long rec, int n, LineShare pf) {
    const DF d;
    VF a[HB][NV];
#pragma GCC unroll 8
    for (int i = 0; i < HB; i++) {
        const VF al = hn::Set(d, alpha[h0 + i]);
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++)
            a[i][c] = hn::Mul(al, hn::LoadU(d, acc + size_t(h0 + i) * D + c0 + kN * c));
    }
    const T* vr = recs + v_off + c0;
    LineSpread spread(pf, n);  // the share's lines over the tokens
    for (int t = 0; t < n; t++) {
        if constexpr (kPf) spread.step();
        VF v[NV];
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) v[c] = WidenF32(vr + t * rec + kN * c);
#pragma GCC unroll 8
        for (int i = 0; i < HB; i++) {
            const VF p = hn::Set(d, P[(h0 + i) * KB + t]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++) a[i][c] = hn::MulAdd(p, v[c], a[i][c]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < HB; i++)
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) hn::StoreU(a[i][c], d, acc + size_t(h0 + i) * D + c0 + kN * c);
}

// Heads [h0, h0+hb) (hb <= kTileHeads) in one tile, all columns, NV vectors at a time.
template <int KB, int NC, bool kPf = false, typename T>
HWY_INLINE void ValuesTilesKv(float* acc, int h0, int hb, long v_off, const float* P,
                              const float* alpha, const T* recs, long rec, int n,
                              LineShare pf = {}) {
    constexpr int D = NC * kN, NV = ValueVecs<NC>();
    static_assert(NC % NV == 0);
    for (int c0 = 0; c0 < D; c0 += NV * kN) {
        const LineShare pc = pf.piece(c0 / (NV * kN), D / (NV * kN));
        switch (hb) {
#define T6_KV_TILE(HB)                                                                    \
    case HB:                                                                              \
        ValuesTileKv<KB, HB, NV, kPf>(acc, D, c0, h0, v_off, P, alpha, recs, rec, n, pc); \
        break;
            T6_KV_TILE(1)
            T6_KV_TILE(2)
            T6_KV_TILE(3)
            T6_KV_TILE(4)
            T6_KV_TILE(5)
            T6_KV_TILE(6)
#undef T6_KV_TILE
            default:
                break;
        }
    }
}

// The block's scores of one head (query qv in NC vectors, KB K rows kstride elements apart
// from k0) into sh, times ks (q8: the K row scales times scale, per token) or scale; tokens past n
// are -inf. Returns their lane-wise maximum. Each N tokens' N-lane partial dot products are
// reduced by one transpose-add to N scores in lanes.
template <int KB, int NC, bool kQ8, typename T>
HWY_INLINE VF HeadScores(const VF* qv, const T* k0, long kstride, int n, const float* ks,
                         float scale, float* sh) {
    const DF d;
    VF mb = hn::Set(d, -INFINITY);
    for (int t0 = 0; t0 < KB; t0 += kN) {
        VF v[kN];
        for (int k = 0; k < kN; k++) {
            const T* kr = k0 + (t0 + k) * kstride;
            VF a = hn::Mul(qv[0], WidenF32(kr));
            for (int c = 1; c < NC; c++) a = hn::MulAdd(qv[c], WidenF32(kr + kN * c), a);
            v[k] = a;
        }
        VF st;
        if constexpr (kQ8)
            st = hn::Mul(TransposeSum(v), hn::LoadU(d, ks + t0));
        else
            st = hn::Mul(hn::Set(d, scale), TransposeSum(v));
        st = hn::IfThenElse(LaneMask(n - t0), st, hn::Set(d, -INFINITY));
        hn::StoreU(st, d, sh + t0);
        mb = hn::Max(mb, st);
    }
    return mb;
}

// ---- Scores with the tokens in lanes (GQA/MQA; AVX3 and AVX2) ----
// The block's K rows of a KV head are transposed once, kN tokens x kN 32-bit words (a float32, 4
// codes or 2 bf16 each) at a time in registers, and split into numbers by shifts (code:
// sign-extended byte, converted; bf16: the word's halves moved to the top) into Kt[i] = the
// block's tokens' number i (kN tokens per vector). Each head's scores are then
// sum_i q[h][i] Kt[i], q[h][i] broadcast: D FMAs per kN tokens and no reduction, where the row
// layout (HeadScores) adds a transpose-add per head and kN tokens (45 shuffles and adds on AVX3);
// the transposition is shared by the group. 12 accumulators at a time (the FMA latency is
// covered): 12 heads x 1 token vector, or in blocks of 2 token vectors 6 heads x 2.
#undef T6_KV_TRANSPOSED  // this file is compiled once per target
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
#define T6_KV_TRANSPOSED 1
using DU = hn::RebindToUnsigned<DF>;
using VU = hn::Vec<DU>;
template <int KB>  // 12 or 6 heads x KB / kN token vectors
constexpr int kMaxGroupHeads = 12 / (KB / kN);

// Lane c of r[k] becomes lane k of r[c] (a kN x kN transpose of 32-bit words).
HWY_INLINE void TransposeWords(VU* r) {
#if HWY_TARGET == HWY_AVX3
    __m512i t[16], u[16];
    // Per 128-bit block L: t[2m] = [a_4L, b_4L, a_4L+1, b_4L+1], t[2m+1] the same of 4L+2, 4L+3
    // (a = r[2m], b = r[2m+1]); u[4p+k] = rows 4p..4p+3 of word 4L+k.
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i].raw, r[i + 1].raw);
        t[i + 1] = _mm512_unpackhi_epi32(r[i].raw, r[i + 1].raw);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    // Word 4L+k of rows 4p.. is block L of u[4p+k]; it goes to block p of r[4L+k]: a 4 x 4
    // transpose of 128-bit blocks among u[k], u[4+k], u[8+k], u[12+k].
    for (int k = 0; k < 4; k++) {
        const __m512i v0 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x88);
        const __m512i v1 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xdd);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x88);
        const __m512i v3 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xdd);
        r[k] = VU{_mm512_shuffle_i32x4(v0, v2, 0x88)};
        r[4 + k] = VU{_mm512_shuffle_i32x4(v1, v3, 0x88)};
        r[8 + k] = VU{_mm512_shuffle_i32x4(v0, v2, 0xdd)};
        r[12 + k] = VU{_mm512_shuffle_i32x4(v1, v3, 0xdd)};
    }
#else
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(r[i].raw, r[i + 1].raw);
        t[i + 1] = _mm256_unpackhi_epi32(r[i].raw, r[i + 1].raw);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int k = 0; k < 4; k++) {
        r[k] = VU{_mm256_permute2x128_si256(u[k], u[4 + k], 0x20)};
        r[4 + k] = VU{_mm256_permute2x128_si256(u[k], u[4 + k], 0x31)};
    }
#endif
}

// Kt[(t0/kN * D + i) * kN + lane] = number i of K row t0 + lane, for the block's KB rows
// (kstride elements apart from k0; rows at or past n read as zeros).
template <int KB, int D, typename T>
HWY_INLINE void TransposeK(const T* k0, long kstride, int n, float* Kt) {
    const DF d;
    const DU du;
    const hn::RebindToSigned<DF> di;
    constexpr int kPer = int(4 / sizeof(T));  // numbers per 32-bit word
    constexpr int kWords = D / kPer;          // words per row, a multiple of kN
    static_assert(kWords % kN == 0);
    for (int t0 = 0; t0 < KB; t0 += kN) {
        for (int w0 = 0; w0 < kWords; w0 += kN) {
            VU r[kN];
            for (int k = 0; k < kN; k++)
                r[k] =
                    t0 + k < n
                        ? hn::LoadU(du,
                                    reinterpret_cast<const uint32_t*>(k0 + (t0 + k) * kstride) + w0)
                        : hn::Zero(du);
            TransposeWords(r);
            float* dst = Kt + (size_t(t0 / kN) * D + size_t(w0) * kPer) * kN;
            for (int c = 0; c < kN; c++) {
                float* o = dst + size_t(c) * kPer * kN;
                if constexpr (kPer == 1) {  // float32: the word itself
                    hn::StoreU(hn::BitCast(d, r[c]), d, o);
                } else if constexpr (kPer == 4) {  // code 4w + j: byte j, sign-extended
                    const auto x = hn::BitCast(di, r[c]);
                    hn::StoreU(hn::ConvertTo(d, hn::ShiftRight<24>(hn::ShiftLeft<24>(x))), d, o);
                    hn::StoreU(hn::ConvertTo(d, hn::ShiftRight<24>(hn::ShiftLeft<16>(x))), d,
                               o + kN);
                    hn::StoreU(hn::ConvertTo(d, hn::ShiftRight<24>(hn::ShiftLeft<8>(x))), d,
                               o + 2 * kN);
                    hn::StoreU(hn::ConvertTo(d, hn::ShiftRight<24>(x)), d, o + 3 * kN);
                } else {  // bf16 2w + j: half j of the word, moved to the top
                    hn::StoreU(hn::BitCast(d, hn::ShiftLeft<16>(r[c])), d, o);
                    hn::StoreU(hn::BitCast(d, hn::And(r[c], hn::Set(du, 0xFFFF0000u))), d, o + kN);
                }
            }
        }
    }
}

// Scores of the HC heads whose query rows follow qh (D apart; heads past hc are padding: computed,
// not stored) over Kt into P rows h0.., times ks (q8: per token) or scale, tokens past n -inf; the
// lane-wise maxima of each head into MB rows h0.. .
template <int KB, int HC, int D, bool kQ8>
HWY_INLINE void GroupScores(const float* qh, int h0, int hc, const float* Kt, int n,
                            const float* ks, float scale, float* P, float* MB, LineShare pf) {
    const DF d;
    constexpr int TB = KB / kN;  // token vectors: each broadcast q[h][i] feeds TB FMAs
    VF acc[HC][TB];
#pragma GCC unroll 12
    for (int h = 0; h < HC; h++)
#pragma GCC unroll 2
        for (int b = 0; b < TB; b++) acc[h][b] = hn::Zero(d);
    LineSpread spread(pf, D);  // the caller's share of the next block's lines, over the loop
    for (int i = 0; i < D; i++) {
        spread.step();
        VF k[TB];
#pragma GCC unroll 2
        for (int b = 0; b < TB; b++) k[b] = hn::LoadU(d, Kt + (size_t(b) * D + i) * kN);
#pragma GCC unroll 12
        for (int h = 0; h < HC; h++) {
            const VF qb = hn::Set(d, qh[h * D + i]);
#pragma GCC unroll 2
            for (int b = 0; b < TB; b++) acc[h][b] = hn::MulAdd(qb, k[b], acc[h][b]);
        }
    }
#pragma GCC unroll 2
    for (int b = 0; b < TB; b++) {
        const int t0 = b * kN;
        const VF sc = kQ8 ? hn::LoadU(d, ks + t0) : hn::Set(d, scale);
        const auto in = LaneMask(n - t0);
#pragma GCC unroll 12
        for (int h = 0; h < HC; h++) {
            if (h >= hc) break;
            const VF st = hn::IfThenElse(in, hn::Mul(acc[h][b], sc), hn::Set(d, -INFINITY));
            hn::StoreU(st, d, P + size_t(h0 + h) * KB + t0);
            float* mb = MB + size_t(h0 + h) * kN;
            hn::StoreU(b == 0 ? st : hn::Max(hn::LoadU(d, mb), st), d, mb);
        }
    }
}
#endif  // AVX3 || AVX2

// q8: the row scales of the block's records t < n (2 Hkv floats at byte `codes` of each record:
// the K rows', then the V rows') transposed into ST, row i = scale of row i of the KB tokens (the
// K rows' times `scale`), tokens past n 0. Each record's scales are copied into a tile of whole
// vectors (W = 2 Hkv rounded up to the lanes; masked loads stay inside the record), which is
// transposed L x L at a time (TransposeBlock); ST holds W rows. It replaces one scalar load,
// multiply and store per scale, which took 9 of 64 ns per record of small-mha's kernel (AVX-512,
// one thread, records in L2; the loop left out). Passes alternating with that loop in one
// process: 0.95-1.00 of its time (small-mha's shape, both targets; docs/decode-bench.md, session
// 56).
template <int KB>
HWY_INLINE void BlockRowScales(const int8_t* recs, long rec, long codes, int Hkv, int n,
                               float scale, float* HWY_RESTRICT tile, float* HWY_RESTRICT ST) {
    const DF d;
    const int rows = 2 * Hkv, W = (rows + kN - 1) / kN * kN;
    for (int t = 0; t < KB; t++) {
        float* row = tile + size_t(t) * W;
        if (t < n) {
            const float* src = reinterpret_cast<const float*>(recs + t * rec + codes);
            for (int c0 = 0; c0 < W; c0 += kN)
                hn::StoreU(MaskedLoadF32(src + c0, rows - c0), d, row + c0);
        } else {
            for (int c0 = 0; c0 < W; c0 += kN) hn::StoreU(hn::Zero(d), d, row + c0);
        }
    }
    for (int t0 = 0; t0 < KB; t0 += kN)
        for (int c0 = 0; c0 < W; c0 += kN)
            TransposeBlock(tile + size_t(t0) * W + c0, W, ST + size_t(c0) * KB + t0, KB);
    const VF vs = hn::Set(d, scale);
    for (int i = 0; i < Hkv; i++)
        for (int t0 = 0; t0 < KB; t0 += kN)
            hn::StoreU(hn::Mul(vs, hn::LoadU(d, ST + size_t(i) * KB + t0)), d,
                       ST + size_t(i) * KB + t0);
}

// The same for fewer than a vector of row scales per record (MQA, GQA with 1-2 KV heads on
// AVX-512 and 1-3 on AVX2): one scalar load, multiply and store per scale, which measured 0.94-0.99
// of BlockRowScales' time there (small-mqa's and small-gqa's shapes, passes alternating in one
// process; docs/decode-bench.md, session 56).
template <int KB>
HWY_INLINE void FewRowScales(const int8_t* recs, long rec, long codes, int Hkv, int n, float scale,
                             float* HWY_RESTRICT ST) {
    for (int i = 0; i < 2 * Hkv; i++) {
        const float f = i < Hkv ? scale : 1.0f;
        for (int t = 0; t < KB; t++) {
            float s = 0.0f;
            if (t < n) std::memcpy(&s, recs + t * rec + codes + 4L * i, 4);
            ST[size_t(i) * KB + t] = f * s;
        }
    }
}

// A q8 cache (T = int8_t, kernels/q8_cache.h) is read in place too: the codes are widened to
// float32 in registers and the row scales folded in, the K row's into the scores (scale_k times
// the block's transposed dot products q . codes), the V row's into the probabilities
// ((p * scale_v) * codes).
//
// The three steps per block are described at the top of this file.
template <int KB, int NC, typename T>
HWY_INLINE void KvRangeD(const float* q, const CacheBlocks<T>& cache, int j0, int j1,
                         const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    constexpr int D = NC * kN;
    constexpr bool kQ8 = std::is_same_v<T, int8_t>;
    const DF d;
    const int Hq = dm.Hq, Hkv = dm.Hkv, group = Hq / Hkv;
    // q8: the codes (2 Hkv D bytes, a multiple of 4) then 2 Hkv scales (K heads, V heads).
    const long codes = 2L * Hkv * D;
    const long rec = kQ8 ? codes + 8L * Hkv : dm.rec();
    // Written before read: no memset.
#ifdef T6_KV_TRANSPOSED
    // Tokens in lanes (TransposeK, GroupScores) for groups of 4 or more heads. Float32 caches
    // too since session 29: small-mqa's shape alone (64K tokens x 12 layers, two threads, Xeon)
    // 54 -> 43 ns per record on AVX2 and 43-46 -> 35 on AVX-512 (docs/decode-bench.md).
    constexpr bool kCanTranspose = (D * sizeof(T)) % (4 * kN) == 0;
    const bool transposed = kCanTranspose && group >= 4;
#else
    const bool transposed = false;
#endif
    // q8: the scale rows [K | V] padded to whole vectors (BlockRowScales), and its tile.
    const size_t scale_rows = kQ8 ? size_t(2 * Hkv + kN - 1) / kN * kN : size_t(2 * Hkv);
    sc.resize(size_t(Hkv) * KB * D + scale_rows * KB + (kQ8 ? size_t(KB) * scale_rows : 0) +
              size_t(Hq) * (KB + 1 + kN) +
              (transposed ? size_t(Hq + 12) * D + size_t(Hq) * kN : 0));
    float* Kf = sc.data();                 // (Hkv, KB, D) widened K rows
    float* P = Kf + size_t(Hkv) * KB * D;  // (Hq, KB) scores, then probabilities
    float* alpha = P + size_t(Hq) * KB;    // (Hq) rescale factors of the block
    float* Lv = alpha + Hq;                // (Hq, N) running sums in N lanes
    float* KS = Lv + size_t(Hq) * kN;      // q8: (Hkv, KB) scale * K row scales
    float* VS = KS + size_t(Hkv) * KB;     // q8: (Hkv, KB) V row scales, then padding rows
    float* tile = KS + scale_rows * KB;    // q8: (KB, scale_rows) BlockRowScales' tile
    // Transposed: (Hq + 12, D) q, zero rows after.
    float* Qp = tile + (kQ8 ? size_t(KB) * scale_rows : 0);
    float* MB = Qp + size_t(Hq + 12) * D;  // transposed: (Hq, N) lane-wise block maxima
    if (transposed) {
        std::memcpy(Qp, q, sizeof(float) * size_t(Hq) * D);
        std::fill(Qp + size_t(Hq) * D, Qp + size_t(Hq + 12) * D, 0.0f);
    }
    // Value tiles per KV head; q8 with several: the block's V rows widened once (below).
    const int tiles = (group + kTileHeads - 1) / kTileHeads;
    const bool vwiden = kQ8 && tiles > 1;
    // Value tiles that read V in place prefetch a share of the next block (below), except for a
    // head per KV head over a q8 cache on AVX2, where widening the codes 8 at a time bounds the
    // kernel and the tiles' prefetches measured 5-10% slower at 4K-16K (small-mha).
    // A head per KV head over a float32 cache (MHA, bound by the cache's bytes) where
    // flash_prefetch_l1() (flash_decode.h: AMD): no software prefetch at all, the hardware's
    // prefetchers alone. Zen 5, small-mha's shape, two threads, 4 x 64K records alternating with
    // the next block prefetched into L1 by the value tiles, medians of 7-15 passes: 64K 63.2
    // against 55.3 GB/s (AVX-512) and 56.6 against 48.5 (AVX2; in a slower hour 49.5 against 48.1),
    // 16K 63.0 against 56.7, 4K 56.4 against 53.7. Groups of 2 and 3 heads per KV head (12 query
    // heads) measured slower without (35.6 against 36.6 and 30.7 against 35.1 GB/s) and keep the L1
    // prefetches, as bf16 and q8 caches, which the tiles widen, keep theirs (without: 34 against 40
    // and 18 against 36 GB/s) (docs/decode-bench.md, session 52).
    const bool amd_l1 = flash_detail::prefetch_to_l1.load(std::memory_order_relaxed);
    const bool hardware_stream = std::is_same_v<T, float> && group == 1 && amd_l1;
    const bool values_prefetch =
        !hardware_stream && !vwiden && (transposed || !(kQ8 && HWY_TARGET == HWY_AVX2));
    for (int h = 0; h < Hq; h++)  // the sum so far (a range may continue another: q8_chunks)
        hn::StoreU(hn::IfThenElseZero(LaneMask(1), hn::Set(d, part.l[h])), d, Lv + size_t(h) * kN);
    // Blocks of KB records, never across a cache block (CacheBlocks).
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = cache.block(b0, j1, KB);
        const T* recs = cache.at(b0, rec);  // read in place, bf16 widened on load
        const int nb0 = b0 + n;             // the next block
        const int nn = nb0 < j1 ? cache.block(nb0, j1, KB) : 0;
        const T* next = nn > 0 ? cache.at(nb0, rec) : nullptr;
        // The next block's records, into L2, a share of their lines per head (a burst of
        // prefetches would stall on the core's outstanding-miss limit).
        const long next_lines =
            nn > 0 && !hardware_stream ? (long(nn) * rec * long(sizeof(T)) + 63) / 64 : 0;
        const char* nx = reinterpret_cast<const char*>(next);
        // The scores prefetch lines [0, split), the value tiles that read V in place the rest, so
        // that the prefetches spread over the whole block. Tokens in lanes: half each (all in the
        // scores, GQA's 64K point from memory was 10% slower on a Xeon). A head per KV head (MHA,
        // bound by the cache's bytes), float32: all by the value tiles; bf16 and q8, which the
        // tiles widen: half each. All in the per-head scores, as before, a Zen 5 streamed
        // small-mha's cache at 26-32 GB/s against 40-47 probed (step 1's 16 tokens x 4
        // multiply-adds per head are short, and the prefetches came in bursts); small-mha's
        // attention at 64K on AVX-512, medians of 4 rounds: f32 162 -> 125 ms, bf16 96 -> 79, q8 53
        // -> 41 (docs/decode-bench.md, session 36).
        const long split = !values_prefetch                          ? next_lines
                           : transposed || !std::is_same_v<T, float> ? next_lines / 2
                                                                     : 0;
        // Into L1 without the tokens in lanes (groups of 2-3 heads over a float32 cache; MHA and
        // groups of 2-3 over bf16 and q8 caches) where flash_prefetch_l1() (flash_decode.h); the
        // tokens-in-lanes groups (GQA, MQA) measured the same either way. bf16 and q8, Zen 5, 12
        // layers, two threads, passes alternating with L2 in one process, median ratios of 9-21
        // pairs, time into L1 / into L2: q8 MHA (12 heads) at 4K-64K 0.87-0.99 (AVX-512) and
        // 0.90-0.96 (AVX2), 0.79-0.93 in a loaded hour, 12 heads on 4 KV heads 0.91-0.98; bf16
        // MHA 0.76-0.82 (AVX-512) and 0.74-0.84 (AVX2), 12 on 4 at 16K 0.80 and 0.91
        // (docs/decode-bench.md, session 56).
        const bool to_l1 = !transposed && amd_l1;
        const LineShare value_lines =
            values_prefetch ? LineShare{nx, split, next_lines, to_l1} : LineShare{};
        // (1) Scores. bf16/q8 with groups of several heads: the block's K rows widened once into
        // Kf (KB, D) per KV head, then read by every head of the group; a partial block
        // (n < KB) is copied there too, zero rows after n, so the score code always reads
        // KB rows.
        const bool widened = !transposed && (n < KB || (!std::is_same_v<T, float> && group > 1));
        if (widened)
            for (int kv = 0; kv < Hkv; kv++)
                for (int t = 0; t < KB; t++)
                    for (int c = 0; c < NC; c++)
                        hn::StoreU(
                            t < n ? WidenF32(recs + t * rec + long(kv) * D + kN * c) : hn::Zero(d),
                            d, Kf + (size_t(kv) * KB + t) * D + kN * c);
        if constexpr (kQ8) {
            if (2 * Hkv >= kN)
                BlockRowScales<KB>(recs, rec, codes, Hkv, n, scale, tile, KS);
            else
                FewRowScales<KB>(recs, rec, codes, Hkv, n, scale, KS);
        }
#ifdef T6_KV_TRANSPOSED
        if constexpr (kCanTranspose) {
            // Tokens in lanes: the group's K rows transposed into Kf (one KV head at a time),
            // then the scores of its heads in balanced chunks of up to kMaxGroupHeads<KB>.
            if (transposed)
                for (int kv = 0; kv < Hkv; kv++) {
                    TransposeK<KB, D>(recs + long(kv) * D, rec, n, Kf);
                    const int chunks = (group + kMaxGroupHeads<KB> - 1) / kMaxGroupHeads<KB>;
                    for (int ci = 0; ci < chunks; ci++) {
                        const int h0 = kv * group + group * ci / chunks;
                        const int hc = kv * group + group * (ci + 1) / chunks - h0;
                        const float* qh = Qp + size_t(h0) * D;
                        const float* ks = KS + kv * KB;
                        // This call's share of the next block's lines (prefetched in the loop).
                        const int calls = Hkv * chunks, call = kv * chunks + ci;
                        const LineShare pf = LineShare{nx, 0, split}.piece(call, calls);
                        constexpr int C1 = kMaxGroupHeads<KB> / 3, C2 = 2 * C1,
                                      C3 = kMaxGroupHeads<KB>;
                        if (hc <= C1)
                            GroupScores<KB, C1, D, kQ8>(qh, h0, hc, Kf, n, ks, scale, P, MB, pf);
                        else if (hc <= C2)
                            GroupScores<KB, C2, D, kQ8>(qh, h0, hc, Kf, n, ks, scale, P, MB, pf);
                        else
                            GroupScores<KB, C3, D, kQ8>(qh, h0, hc, Kf, n, ks, scale, P, MB, pf);
                    }
                }
        }
#endif
        // Per head: the query in registers, N tokens' N-lane partial dot products reduced by one
        // transpose-add to N scores in lanes (tokens past n are -inf: probability 0).
        long pf = transposed ? next_lines : 0;  // next-block lines prefetched so far
        for (int h = 0, kv = 0, g = 0; h < Hq; h++) {
            for (const long pf_end = split * (h + 1) / Hq; pf < pf_end; pf++)
                PrefetchLine(nx + 64 * pf, to_l1);
            VF mb;
            if (transposed) {
                mb = hn::LoadU(d, MB + size_t(h) * kN);
            } else {
                VF qv[NC];
                for (int c = 0; c < NC; c++) qv[c] = hn::LoadU(d, q + size_t(h) * D + kN * c);
                const float* ks = KS + kv * KB;
                float* sh = P + h * KB;
                mb =
                    widened
                        ? HeadScores<KB, NC, kQ8>(qv, Kf + size_t(kv) * KB * D, D, n, ks, scale, sh)
                        : HeadScores<KB, NC, kQ8>(qv, recs + long(kv) * D, rec, n, ks, scale, sh);
            }
            // Lazy rescaling: the running max m only moves when a score exceeds it by more than
            // kLazyMax (and on the first block, m = -inf), so most blocks need no horizontal
            // maximum and no rescale (alpha = 1); probabilities stay below e^kLazyMax. The result
            // is the same softmax (numerator and denominator share m).
            float al = 1.0f;
            if (!hn::AllFalse(d, hn::Gt(mb, hn::Set(d, part.m[h] + kLazyMax)))) {
                const float mnew = hn::GetLane(hn::MaxOfLanes(d, mb));
                al = std::exp(part.m[h] - mnew);  // m = -inf on the first block: 0
                part.m[h] = mnew;
            }
            alpha[h] = al;
            if (++g == group) g = 0, kv++;
        }
        // Probabilities e^{s - m} (q8: times the V row scales) and the running sums, for all
        // heads in one pass (independent exponentials back to back).
        for (int h = 0, kv = 0, g = 0; h < Hq; h++) {
            const VF vm = hn::Set(d, part.m[h]);
            VF sum = hn::Zero(d);
            for (int t0 = 0; t0 < KB; t0 += kN) {
                float* ph = P + h * KB + t0;
                // s - m <= kLazyMax (ExpSoftmax's domain); -inf: 0.
                const VF e = ExpSoftmax(d, hn::Sub(hn::LoadU(d, ph), vm));
                sum = hn::Add(sum, e);
                if constexpr (kQ8)
                    hn::StoreU(hn::Mul(e, hn::LoadU(d, VS + kv * KB + t0)), d, ph);
                else
                    hn::StoreU(e, d, ph);
            }
            // The running sum in N lanes (reduced at the end of the range).
            float* lh = Lv + size_t(h) * kN;
            hn::StoreU(hn::MulAdd(hn::LoadU(d, lh), hn::Set(d, alpha[h]), sum), d, lh);
            if (++g == group) g = 0, kv++;
        }
        // (3) Values: register tiles of the heads of each group, which share each V row (MHA:
        // groups of one, a tile per head).
        // q8 with several tiles per group: the block's V rows widened once into Kf (the
        // scores are done with it), which the tiles then read as float32.
        for (int kv = 0; kv < Hkv; kv++) {
            if (vwiden)
                for (int t = 0; t < n; t++)
                    for (int c = 0; c < NC; c++)
                        hn::StoreU(WidenF32(recs + t * rec + long(Hkv + kv) * D + kN * c), d,
                                   Kf + size_t(t) * D + kN * c);
            for (int ti = 0; ti < tiles; ti++) {
                const int h0 = kv * group + group * ti / tiles;
                const int hb = kv * group + group * (ti + 1) / tiles - h0;
                if (vwiden)
                    ValuesTilesKv<KB, NC>(part.acc, h0, hb, 0, P, alpha,
                                          static_cast<const float*>(Kf), long(D), n);
                else if (values_prefetch)
                    ValuesTilesKv<KB, NC, true>(part.acc, h0, hb, long(Hkv + kv) * D, P, alpha,
                                                recs, rec, n,
                                                value_lines.piece(kv * tiles + ti, Hkv * tiles));
                else
                    ValuesTilesKv<KB, NC>(part.acc, h0, hb, long(Hkv + kv) * D, P, alpha, recs, rec,
                                          n);
            }
        }
    }
    for (int h = 0; h < Hq; h++)
        part.l[h] = hn::GetLane(hn::SumOfLanes(d, hn::LoadU(d, Lv + size_t(h) * kN)));
}

// Head size NC vectors: blocks of kKvBlockWide tokens for groups of kWideGroup or more heads on
// AVX-512, over a cache whose blocks hold that many tokens (a contiguous cache, or paged
// blocks of 32 or more: blocks of 16 would leave half of every wide block empty), of kKvBlock
// otherwise.
template <int NC, typename T>
HWY_INLINE void KvRangeNC(const float* q, const CacheBlocks<T>& cache, int j0, int j1,
                          const KvCacheDims& dm, float scale, Partial part,
                          std::vector<float>& sc) {
#if HWY_TARGET == HWY_AVX3
    if (dm.Hq / dm.Hkv >= kWideGroup && cache.tokens >= kKvBlockWide)
        return KvRangeD<kKvBlockWide, NC>(q, cache, j0, j1, dm, scale, part, sc);
#endif
    KvRangeD<kKvBlock, NC>(q, cache, j0, j1, dm, scale, part, sc);
}

// The vector kernel for D in {16, 32, 64, 128} with N | D; false when D is not one of them.
template <typename T>
HWY_INLINE bool KvRangeT(const float* q, const CacheBlocks<T>& cache, int j0, int j1,
                         const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    if (dm.D % kN != 0) return false;
    switch (dm.D / kN) {
#define T6_KV_CASE(NC)                                        \
    case NC:                                                  \
        KvRangeNC<NC>(q, cache, j0, j1, dm, scale, part, sc); \
        return true;
#if HWY_TARGET == HWY_SCALAR
        T6_KV_CASE(16)
        T6_KV_CASE(32)
        T6_KV_CASE(64)
        T6_KV_CASE(128)
#elif HWY_TARGET == HWY_AVX2
        T6_KV_CASE(2)
        T6_KV_CASE(4)
        T6_KV_CASE(8)
        T6_KV_CASE(16)
#elif HWY_TARGET == HWY_NEON
        T6_KV_CASE(4)
        T6_KV_CASE(8)
        T6_KV_CASE(16)
        T6_KV_CASE(32)
#else
        T6_KV_CASE(1)
        T6_KV_CASE(2)
        T6_KV_CASE(4)
        T6_KV_CASE(8)
#endif
#undef T6_KV_CASE
        default:
            return false;
    }
}

}  // namespace

bool KvRangeF32(const float* q, const CacheBlocks<float>& cache, int j0, int j1,
                const KvCacheDims& dm, float scale, flash_detail::Partial part,
                std::vector<float>& sc) {
    return KvRangeT(q, cache, j0, j1, dm, scale, part, sc);
}
bool KvRangeBf16(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
                 const KvCacheDims& dm, float scale, flash_detail::Partial part,
                 std::vector<float>& sc) {
    return KvRangeT(q, cache, j0, j1, dm, scale, part, sc);
}
bool KvRangeQ8(const float* q, const CacheBlocks<int8_t>& cache, int j0, int j1,
               const KvCacheDims& dm, float scale, flash_detail::Partial part,
               std::vector<float>& sc) {
    return KvRangeT(q, cache, j0, j1, dm, scale, part, sc);
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(KvRangeF32);
HWY_EXPORT(KvRangeBf16);
HWY_EXPORT(KvRangeQ8);

using namespace flash_detail;

namespace {

// One task of standard K/V decoding: query q (Hq*D) over records [j0, j1). Portable version.
template <typename T>
void kv_range_generic(const float* q, const CacheBlocks<T>& cache, int j0, int j1,
                      const KvCacheDims& dm, float scale, Partial part, std::vector<float>& buf,
                      std::vector<float>& sc) {
    const int Hq = dm.Hq, Hkv = dm.Hkv, D = dm.D, group = Hq / Hkv;
    const long rec = dm.rec();
    sc.resize(size_t(Hq) * kBlock);
    float* S = sc.data();
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = cache.block(b0, j1, kBlock);
        const float* recs = records_f32(cache.at(b0, rec), rec, 0, n, buf);
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

bool kv_range_simd(const float* q, const CacheBlocks<float>& cache, int j0, int j1,
                   const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    return HWY_DYNAMIC_DISPATCH(KvRangeF32)(q, cache, j0, j1, dm, scale, part, sc);
}
bool kv_range_simd(const float* q, const CacheBlocks<uint16_t>& cache, int j0, int j1,
                   const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    return HWY_DYNAMIC_DISPATCH(KvRangeBf16)(q, cache, j0, j1, dm, scale, part, sc);
}
bool kv_range_simd(const float* q, const CacheBlocks<int8_t>& cache, int j0, int j1,
                   const KvCacheDims& dm, float scale, Partial part, std::vector<float>& sc) {
    return HWY_DYNAMIC_DISPATCH(KvRangeQ8)(q, cache, j0, j1, dm, scale, part, sc);
}

}  // namespace

template <typename T>
void flash_kv_decode(float* const* out, const float* const* q, const CacheBlocks<T>* cache,
                     const int* lens, int nseq, const KvCacheDims& dims, float scale) {
    if constexpr (std::is_same_v<T, int8_t>) {
        const Q8Layout L = q8_layout(dims);
        run_split(out, lens, nseq, dims.Hq, dims.D,
                  [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                      // In place (codes widened in registers); head sizes the vector kernel
                      // does not take dequantize chunk by chunk for the portable version.
                      if (kv_range_simd(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, sc))
                          return;
                      q8_chunks(
                          cache[t.seq], t.j0, t.j1, L, [&](const CacheBlocks<float>& v, int n) {
                              if (!kv_range_simd(q[t.seq], v, 0, n, dims, scale, p, sc))
                                  kv_range_generic(q[t.seq], v, 0, n, dims, scale, p, buf, sc);
                          });
                  });
    } else {
        run_split(out, lens, nseq, dims.Hq, dims.D,
                  [&](const Task& t, Partial p, std::vector<float>& buf, std::vector<float>& sc) {
                      if (!kv_range_simd(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, sc))
                          kv_range_generic(q[t.seq], cache[t.seq], t.j0, t.j1, dims, scale, p, buf,
                                           sc);
                  });
    }
}

template <typename T>
void flash_kv_decode(float* const* out, const float* const* q, const T* const* cache,
                     const int* lens, int nseq, const KvCacheDims& dims, float scale) {
    const std::vector<CacheBlocks<T>> views = contiguous_views(cache, nseq);
    flash_kv_decode(out, q, views.data(), lens, nseq, dims, scale);
}

template void flash_kv_decode<float>(float* const*, const float* const*, const float* const*,
                                     const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<uint16_t>(float* const*, const float* const*, const uint16_t* const*,
                                        const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<float>(float* const*, const float* const*, const CacheBlocks<float>*,
                                     const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<uint16_t>(float* const*, const float* const*,
                                        const CacheBlocks<uint16_t>*, const int*, int,
                                        const KvCacheDims&, float);

template void flash_kv_decode<int8_t>(float* const*, const float* const*, const int8_t* const*,
                                      const int*, int, const KvCacheDims&, float);
template void flash_kv_decode<int8_t>(float* const*, const float* const*,
                                      const CacheBlocks<int8_t>*, const int*, int,
                                      const KvCacheDims&, float);

}  // namespace t6
#endif  // HWY_ONCE
