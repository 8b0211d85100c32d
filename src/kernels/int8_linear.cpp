// q8 / q4 weights x int8 activations (kernels/int8_linear.h): activation quantization, the
// scalar reference, the Highway kernel, and hand-written x86 kernels (AVX-512 VNNI and AVX2,
// below, "Hand-written kernels"), which run instead of the Highway kernel on those targets unless
// set_int8_hand_kernels(false).
//
// The kernel is written once against Google Highway and compiled per target (foreach_target.h),
// dispatched at run time (HWY_DYNAMIC_DISPATCH). It tiles MR activation rows by OR weight rows
// like linear_tiling-inl.h, but walks whole blocks of 32: per block the activation codes of the MR
// rows are widened to int16 once; for each of the OR weight rows the 32 weight codes are widened
// to int16 (q8: sign-extended bytes; q4: the nibbles masked and shifted) and multiplied pairwise
// into int32 lanes (ReorderWidenMulAccumulate: vpmaddwd on AVX2 and AVX-512, 16 resp. 32 codes
// per instruction), then the block's int32 partial sums are converted to float32 and
// multiply-added with the block's scale product dw * dx into the float32 accumulators (one per
// row pair). q4's minimum adds m * dx * sum_j qx per block (the activation code sum is formed
// once per row and block, added in scalar code). Accumulators: MR*OR = 16 on AVX-512, 8 on AVX2,
// reduced four at a time by tiling::Sum4. The activation codes are zero past `cols`, so the last
// (partial) block needs no scalar tail. HWY_SCALAR runs the reference loop.
//
// Streaming (every kernel; see Ahead): a decoding step reads each weight once from memory, and the
// arithmetic per byte here (4-6 instructions per 64 bytes and weight row) leaves the hardware
// prefetchers too little lead, so each tile prefetches the next tile's codes and scales into L1 and
// the codes kFarRows rows further into L2 (single-core rate on cold 2048 x 768 q8 matrices, per
// CPU second: 8.7-11.8 GB/s with the L1 prefetch alone, 12.7-13.6 with both, a plain read of the
// same bytes 12.3-13.8). Work is split over OpenMP threads in one contiguous range of rows each
// (balanced, in multiples of 16 rows), so that each thread's prefetches run ahead through its
// whole range.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include <omp.h>

#include "core/simd.h"
#include "core/team.h"
#include "kernels/gemm.h"
#include "kernels/int8_linear.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/int8_linear.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/linear_tiling-inl.h"
#if HWY_ARCH_X86
#include <immintrin.h>
#endif

// Defined on the first of the per-target passes (foreach_target.h re-includes this file).
#ifndef T6_KERNELS_INT8_LINEAR_SCALAR_
#define T6_KERNELS_INT8_LINEAR_SCALAR_
namespace t6 {
namespace int8_detail {

// Whether the hand-written kernels may run (set_int8_hand_kernels).
inline std::atomic<bool>& HandKernels() {
    static std::atomic<bool> enabled{true};
    return enabled;
}

// Rows [0, X.rows) x outputs [o0, o1), block by block in scalar code: the reference.
// q8: y += dw dx sum_j qw qx;  q4 (w = q dw + m): y += dw dx sum_j qw qx + m dx sum_j qx.
inline void ScalarRows(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta, int o0,
                       int o1) {
    const int nb = W.blocks_per_row(), cb = W.code_bytes();
    const bool q4 = W.scheme == QuantScheme::q4;
    for (int o = o0; o < o1; o++) {
        const uint8_t* wq = W.codes.data() + size_t(o) * nb * cb;
        const float* wd = W.scale.data() + size_t(o) * nb;
        for (int n = 0; n < X.rows; n++) {
            const int8_t* xq =
                reinterpret_cast<const int8_t*>(X.codes.data()) + size_t(n) * nb * kQuantBlock;
            const float* xd = X.scale.data() + size_t(n) * nb;
            float s = 0.0f;
            for (int b = 0; b < nb; b++) {
                int32_t is = 0, sx = 0;
                for (int j = 0; j < kQuantBlock; j++) {
                    const int32_t x = xq[b * kQuantBlock + j];
                    int32_t w;
                    if (q4) {
                        const uint8_t byte = wq[size_t(b) * cb + (j & 15)];
                        w = j < 16 ? byte & 15 : byte >> 4;
                    } else {
                        w = int8_t(wq[size_t(b) * cb + j]);
                    }
                    is += w * x;
                    sx += x;
                }
                s += float(is) * (wd[b] * xd[b]);
                if (q4) s += W.min[size_t(o) * nb + b] * xd[b] * float(sx);
            }
            float& y = out[size_t(n) * W.rows + o];
            y = (beta != 0.0f ? beta * y : 0.0f) + s;
        }
    }
}

}  // namespace int8_detail
}  // namespace t6
#endif  // T6_KERNELS_INT8_LINEAR_SCALAR_

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
using D16 = hn::ScalableTag<int16_t>;
using D8 = hn::Rebind<int8_t, D16>;
using D32 = hn::Repartition<int32_t, D16>;
using DF = hn::Repartition<float, D16>;
using V16 = hn::Vec<D16>;
using V32 = hn::Vec<D32>;
using VF = hn::Vec<DF>;
static_assert(kQuantBlock % hn::MaxLanes(D16()) == 0, "int16 vectors must tile a block");

// One row of codes and scales (q8 / q4 weights or q8 activations).
struct Row {
    const uint8_t* q;
    const float* d;
    const float* m;  // q4 weights only
};
Row RowOf(const QuantMatrix& M, int r) {
    const size_t blk = size_t(r) * M.blocks_per_row();
    return {M.codes.data() + blk * M.code_bytes(), M.scale.data() + blk,
            M.min.size() ? M.min.data() + blk : nullptr};
}

// The weight rows a tile prefetches while it runs. Rows are contiguous in memory, so the rows ahead
// are bytes ahead: at each block (pair of blocks) the next tile's codes of that block into L1 (from
// next[k]) and the codes `far_q` bytes beyond them into L2; per vector of scales the next tile's
// scales (and q4 minima) into L1 and those `far_d` floats beyond them into L2. far_q = far_d = 0
// when the far rows lie past the range (nothing is prefetched there); next == nullptr on the
// range's last tile.
struct Ahead {
    const Row* next;
    ptrdiff_t far_q, far_d;
};
// Rows between the next tile and the rows prefetched into L2 (at 768 codes per row, 12 KiB; the
// VNNI kernel's 8-row tiles measured alike at 1 to 5 tiles, the AVX2 kernel's 4-row tiles better
// at 4 than at 2).
constexpr int kFarRows = 16;

// Prefetches into L1 the lines at p and into L2 those `far` bytes beyond (if far != 0).
HWY_INLINE void PrefetchAhead(const void* p, ptrdiff_t far) {
    __builtin_prefetch(p, 0, 3);
    if (far != 0) __builtin_prefetch(static_cast<const char*>(p) + far, 0, 2);
}
// The next tile's scales (and minima) of blocks [b, b + 16): into L1, and `far` floats on into L2.
template <int OR>
HWY_INLINE void PrefetchScales(const Ahead& a, int b) {
    if (a.next == nullptr) return;
    for (int k = 0; k < OR; k++) {
        PrefetchAhead(a.next[k].d + b, a.far_d * ptrdiff_t(sizeof(float)));
        if (a.next[k].m != nullptr)
            PrefetchAhead(a.next[k].m + b, a.far_d * ptrdiff_t(sizeof(float)));
    }
}

// Codes [h L16, (h+1) L16) of a weight block as int16: q8 sign-extended; q4 from the nibbles
// (byte j holds code j low and code j + 16 high).
template <QuantScheme S>
HWY_INLINE V16 LoadCodes(const uint8_t* blk, int h) {
    const D16 d16;
    if constexpr (S == QuantScheme::q8) {
        const D8 d8;
        return hn::PromoteTo(
            d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(blk) + h * hn::Lanes(d16)));
    } else if constexpr (hn::MaxLanes(D16()) == kQuantBlock) {
        // One vector is the whole block: the 16 bytes' low nibbles, then their high ones.
        const hn::Half<D16> dh;
        const hn::Rebind<uint8_t, hn::Half<D16>> du8;
        const auto v = hn::BitCast(
            dh, hn::PromoteTo(hn::RebindToUnsigned<decltype(dh)>(), hn::LoadU(du8, blk)));
        const auto lo = hn::And(v, hn::Set(dh, int16_t(15)));
        const auto hi = hn::ShiftRight<4>(v);
        return hn::Combine(d16, hi, lo);
    } else {
        const hn::Rebind<uint8_t, D16> du8;
        const int c = h * int(hn::Lanes(d16));
        auto v = hn::BitCast(
            d16, hn::PromoteTo(hn::RebindToUnsigned<D16>(), hn::LoadU(du8, blk + (c & 15))));
        if (c >= kQuantBlock / 2) v = hn::ShiftRight<4>(v);
        return hn::And(v, hn::Set(d16, int16_t(15)));
    }
}

// MR activation rows by OR weight rows over nb blocks: the MR*OR dot products into r[OR*m + k].
template <QuantScheme S, int MR, int OR>
HWY_INLINE void Tile(const Row* x, const Row* w, const Ahead& ahead, int nb,
                     float* HWY_RESTRICT r) {
    constexpr bool kQ4 = S == QuantScheme::q4;
    constexpr int kCodeBytes = kQ4 ? kQuantBlock / 2 : kQuantBlock;
    constexpr int kAcc = MR * OR;
    static_assert(kAcc % 4 == 0, "accumulators are reduced four at a time");
    const D16 d16;
    const D8 d8;
    const D32 d32;
    const DF df;
    constexpr int kH = kQuantBlock / hn::MaxLanes(D16());  // int16 vectors per block
    const int L16 = int(hn::Lanes(d16));
    VF a[kAcc];
    for (int i = 0; i < kAcc; i++) a[i] = hn::Zero(df);
    float mins[kAcc] = {};  // q4: the sum over blocks of m dx sum_j qx
    for (int b = 0; b < nb; b++) {
        const size_t c0 = size_t(b) * kQuantBlock, w0 = size_t(b) * kCodeBytes;
        if (ahead.next != nullptr) {
            // One line per row per 64 code bytes (q8: every other block; q4: every fourth).
            if (b % (64 / kCodeBytes) == 0)
                for (int k = 0; k < OR; k++) PrefetchAhead(ahead.next[k].q + w0, ahead.far_q);
            if (b % 16 == 0) PrefetchScales<OR>(ahead, b);
        }
        V16 xv[MR][kH];
        float dx[MR];
        for (int m = 0; m < MR; m++) {
            for (int h = 0; h < kH; h++)
                xv[m][h] = hn::PromoteTo(
                    d16, hn::LoadU(d8, reinterpret_cast<const int8_t*>(x[m].q) + c0 + h * L16));
            dx[m] = x[m].d[b];
        }
        float xsum[MR] = {};  // q4: dx sum_j qx per row
        if constexpr (kQ4) {
            for (int m = 0; m < MR; m++) {
                V32 t0 = hn::Zero(d32), t1 = hn::Zero(d32);
                for (int h = 0; h < kH; h++)
                    t0 = hn::ReorderWidenMulAccumulate(d32, xv[m][h], hn::Set(d16, int16_t(1)), t0,
                                                       t1);
                const V32 t = hn::SumOfLanes(d32, hn::RearrangeToOddPlusEven(t0, t1));
                xsum[m] = dx[m] * float(hn::GetLane(t));
            }
        }
        for (int k = 0; k < OR; k++) {
            V32 s0[MR], s1[MR];
            for (int m = 0; m < MR; m++) s0[m] = s1[m] = hn::Zero(d32);
            for (int h = 0; h < kH; h++) {
                const V16 wv = LoadCodes<S>(w[k].q + w0, h);
                for (int m = 0; m < MR; m++)
                    s0[m] = hn::ReorderWidenMulAccumulate(d32, wv, xv[m][h], s0[m], s1[m]);
            }
            const float dw = w[k].d[b];
            for (int m = 0; m < MR; m++) {
                const VF blk = hn::ConvertTo(df, hn::RearrangeToOddPlusEven(s0[m], s1[m]));
                a[OR * m + k] = hn::MulAdd(blk, hn::Set(df, dw * dx[m]), a[OR * m + k]);
                if constexpr (kQ4) mins[OR * m + k] += w[k].m[b] * xsum[m];
            }
        }
    }
    const hn::Full128<float> d4;
    for (int i = 0; i < kAcc; i += 4)
        hn::StoreU(tiling::Sum4(a[i], a[i + 1], a[i + 2], a[i + 3]), d4, r + i);
    if constexpr (kQ4)
        for (int i = 0; i < kAcc; i++) r[i] += mins[i];
}

// The tile walk every kernel shares: outputs [o0, o1) OR weight rows at a time, the activation
// rows MR at a time; rows past the end repeat the last one (computed, not stored).
// tile(n, x, w, ahead, r) fills r[OR * m + k] for activation rows n[m] (x[m]) and weight rows w[k]
// (ahead: what to prefetch meanwhile; only the first tile of activation rows prefetches).
template <int MR, int OR, class TileFn>
HWY_INLINE void WalkTiles(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta,
                          int o0, int o1, const TileFn& tile) {
    const int N = X.rows, OC = W.rows, nb = W.blocks_per_row();
    const ptrdiff_t far_rows = kFarRows;
    for (int o = o0; o < o1; o += OR) {
        Row w[OR], next[OR];
        for (int k = 0; k < OR; k++) w[k] = RowOf(W, std::min(o + k, OC - 1));
        for (int k = 0; k < OR; k++) next[k] = RowOf(W, std::min(o + OR + k, OC - 1));
        const bool far = o + OR + far_rows + OR <= o1;  // the whole far tile inside the range
        const Ahead none{nullptr, 0, 0};
        const Ahead ahead{o + OR < o1 ? next : nullptr, far ? far_rows * nb * W.code_bytes() : 0,
                          far ? far_rows * nb : 0};
        for (int n0 = 0; n0 < N; n0 += MR) {
            int n[MR];
            Row x[MR];
            for (int m = 0; m < MR; m++) x[m] = RowOf(X, n[m] = std::min(n0 + m, N - 1));
            float r[MR * OR];
            tile(n, x, w, n0 == 0 ? ahead : none, r);
            for (int m = 0; m < MR && n0 + m < N; m++)
                for (int k = 0; k < OR && o + k < o1; k++) {
                    float& y = out[size_t(n0 + m) * OC + o + k];
                    y = (beta != 0.0f ? beta * y : 0.0f) + r[OR * m + k];
                }
        }
    }
}

template <QuantScheme S, int MR, int OR>
void TiledRows(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta, int o0, int o1) {
    const int nb = W.blocks_per_row();
    WalkTiles<MR, OR>(out, X, W, beta, o0, o1,
                      [&](const int*, const Row* x, const Row* w, const Ahead& a, float* r) {
                          Tile<S, MR, OR>(x, w, a, nb, r);
                      });
}

#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2
// ---- Hand-written kernels (intrinsics) for x86: AVX-512 VNNI and AVX2 ----
// Both walk the same tiles as TiledRows (MR activation rows by OR weight rows; VNNI's one
// activation row over q8 weights reads four streams of rows instead, VnniStreamRowsQ8) but form the
// block sums with byte multiply-adds, 4 (vpdpbusd) resp. 2 (vpmaddubsw) codes per int32 resp.
// int16 lane, and scale whole vectors of block sums at once: the scale products dw * dx of 16
// (8) blocks are formed with one multiply per tile row pair, and each block's lanes pick theirs
// with a lane permute (vpermps; the index advances by the blocks per vector). The float
// accumulators hold per-lane partial sums of the whole row, summed at the end. q4's minimum
// term sum_b m dx sum_j qx is added per 16 (8) blocks into the same accumulators from xs = dx *
// sum_j qx, formed once per call and activation row (HandXs).
using HandTileFn = void (*)(const Row* x, const float* const* xs, const Row* w, const Ahead& ahead,
                            int nb, float* r);

// xs[n * nb + b] = dx[n, b] * sum_j qx[n, b, j] (q4's minimum term).
void HandXs(std::vector<float>& xs, const QuantMatrix& X) {
    const int nb = X.blocks_per_row();
    xs.resize(size_t(X.rows) * nb);
    const int8_t* q = reinterpret_cast<const int8_t*>(X.codes.data());
    for (size_t i = 0; i < xs.size(); i++) {
        int32_t sx = 0;
        for (int j = 0; j < kQuantBlock; j++) sx += q[i * kQuantBlock + j];
        xs[i] = X.scale[i] * float(sx);
    }
}

template <int MR, int OR>
void HandRows(HandTileFn tile, float* out, const QuantMatrix& X, const float* xs,
              const QuantMatrix& W, float beta, int o0, int o1) {
    const int nb = W.blocks_per_row();
    WalkTiles<MR, OR>(out, X, W, beta, o0, o1,
                      [&](const int* n, const Row* x, const Row* w, const Ahead& a, float* r) {
                          const float* xsm[MR];
                          for (int m = 0; m < MR; m++)
                              xsm[m] = xs != nullptr ? xs + size_t(n[m]) * nb : nullptr;
                          tile(x, xsm, w, a, nb, r);
                      });
}

#endif  // HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX2

#if HWY_TARGET == HWY_AVX3
// AVX-512 VNNI (compiled into the AVX3 target with avx512vnni added by attribute; run only where
// cpu_has_avx512_vnni()). vpdpbusd multiplies unsigned by signed bytes, four products per int32
// lane, with no intermediate saturation. q8: the weight codes are made unsigned as w ^ 0x80 = w +
// 128 and the int32 lanes start at -128 * (the sum of their four activation codes), so each lane
// ends at exactly sum w * x. q4: the codes 0..15 are unsigned already. One zmm holds a pair of
// blocks: q8's 64 codes in order (lanes 0-7: block 2p, 8-15: block 2p + 1); q4's 32 bytes
// unpacked as [low nibbles of block 2p, of 2p + 1, high nibbles of 2p, of 2p + 1] (the activation
// codes are permuted to match, once per activation row and pair). A last odd block loads half a
// vector (masked: zero activation codes and scales above it).
#define T6_VNNI_TARGET __attribute__((target(HWY_TARGET_STR ",avx512vnni")))

// One pair of blocks from block b (kHalf: block b alone, the row's last) into acc.
template <QuantScheme S, int MR, int OR, bool kHalf>
T6_VNNI_TARGET __attribute__((always_inline)) inline void VnniPair(const Row* x, const Row* w,
                                                                   const Ahead& ahead, int b,
                                                                   __m512i idx, const __m512* sc,
                                                                   __m512* acc) {
    constexpr bool kQ4 = S == QuantScheme::q4;
    constexpr int kBlockBytes = kQ4 ? kQuantBlock / 2 : kQuantBlock;
    const __m512i zero = _mm512_setzero_si512(), k80 = _mm512_set1_epi8(char(0x80));
    const size_t wo = size_t(b) * kBlockBytes, xo = size_t(b) * kQuantBlock;
    // q8: a pair is one line per row; q4: half a line, so every other pair.
    if (ahead.next != nullptr && (!kQ4 || b % 4 == 0))
        for (int k = 0; k < OR; k++) PrefetchAhead(ahead.next[k].q + wo, ahead.far_q);
    __m512i xv[MR], base[MR];
    for (int m = 0; m < MR; m++) {
        __m512i v = kHalf ? _mm512_maskz_loadu_epi8(0xffffffffu, x[m].q + xo)
                          : _mm512_loadu_si512(x[m].q + xo);
        if constexpr (kQ4) {
            v = _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
            base[m] = zero;
        } else {
            base[m] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k80, v));
        }
        xv[m] = v;
    }
    for (int k = 0; k < OR; k++) {
        __m512i wv;
        if constexpr (kQ4) {
            const __m256i v =
                kHalf ? _mm256_maskz_loadu_epi8(0xffff, w[k].q + wo)
                      : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[k].q + wo));
            wv = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1),
                _mm512_set1_epi8(15));
        } else {
            wv = _mm512_xor_si512(kHalf ? _mm512_maskz_loadu_epi8(0xffffffffu, w[k].q + wo)
                                        : _mm512_loadu_si512(w[k].q + wo),
                                  k80);
        }
        for (int m = 0; m < MR; m++) {
            const __m512i s = _mm512_dpbusd_epi32(base[m], wv, xv[m]);
            acc[OR * m + k] = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(s), _mm512_permutexvar_ps(idx, sc[OR * m + k]), acc[OR * m + k]);
        }
    }
}

template <QuantScheme S, int MR, int OR>
T6_VNNI_TARGET void VnniTile(const Row* x, const float* const* xs, const Row* w, const Ahead& ahead,
                             int nb, float* r) {
    constexpr bool kQ4 = S == QuantScheme::q4;
    const __m512i two = _mm512_set1_epi32(2);
    // The block (0: 2p, 1: 2p + 1) of each int32 lane.
    const __m512i idx0 = kQ4 ? _mm512_set_epi32(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0)
                             : _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc[MR * OR];
    for (int i = 0; i < MR * OR; i++) acc[i] = _mm512_setzero_ps();
    for (int b0 = 0; b0 < nb; b0 += 16) {
        const int nblk = std::min(16, nb - b0);
        const __mmask16 mk = __mmask16((1u << nblk) - 1);
        __m512 sc[MR * OR];  // dw * dx of blocks b0 .. b0 + 15 (zero past nb)
        PrefetchScales<OR>(ahead, b0);
        {
            __m512 dx[MR];
            for (int m = 0; m < MR; m++) dx[m] = _mm512_maskz_loadu_ps(mk, x[m].d + b0);
            for (int k = 0; k < OR; k++) {
                const __m512 dw = _mm512_maskz_loadu_ps(mk, w[k].d + b0);
                for (int m = 0; m < MR; m++) sc[OR * m + k] = _mm512_mul_ps(dw, dx[m]);
                if constexpr (kQ4) {
                    const __m512 mn = _mm512_maskz_loadu_ps(mk, w[k].m + b0);
                    for (int m = 0; m < MR; m++)
                        acc[OR * m + k] = _mm512_fmadd_ps(mn, _mm512_maskz_loadu_ps(mk, xs[m] + b0),
                                                          acc[OR * m + k]);
                }
            }
        }
        // Whole pairs in the loop, a last odd block after it (keeping the mask out of the loop
        // lets the accumulators stay in registers).
        __m512i idx = idx0;
        const int np = nblk / 2;
        for (int p = 0; p < np; p++, idx = _mm512_add_epi32(idx, two))
            VnniPair<S, MR, OR, false>(x, w, ahead, b0 + 2 * p, idx, sc, acc);
        if (nblk % 2 != 0) VnniPair<S, MR, OR, true>(x, w, ahead, b0 + 2 * np, idx, sc, acc);
    }
    for (int i = 0; i < MR * OR; i++) r[i] = _mm512_reduce_add_ps(acc[i]);
}

// One activation row over q8 weight rows as K streams (as quant_linear.cpp's Q8StreamRuns): the
// thread's rows [o0, o1) cut into K runs, a row of each run read side by side from its first code
// to its last (each run one stream of codes), each run's codes prefetched into L1 2 KiB ahead,
// the last (o1 - o0) % K rows as one run. Per pair of blocks VnniPair's products (one vpdpbusd
// from the base -128 * sum x, the scale products of 16 blocks permuted into place), one float
// accumulator per row. A row's sum does not depend on K or on the rows read beside it. On
// the Zen 5 machine (two threads, passes alternating with the 8-row tiles in one process,
// docs/decode-bench.md, session 53) the streams read 1.27-1.31x the tiles' rate over 60 matrices
// of 2048 x 768 (54.1-54.7 against 41.6-42.7 GB/s), 1.30-1.35x at 768 x 2048, 1.23-1.25x at 768 x
// 768 and 1.09-1.22x over the 50304 x 768 lm_head. q4 weights keep the tiles.
template <int K>
T6_VNNI_TARGET void VnniStreamRowsQ8(float* out, const Row& x, const QuantMatrix& W, float beta,
                                     int o0, int o1) {
    constexpr ptrdiff_t kAhead = 2048;
    const int nb = W.blocks_per_row(), per = (o1 - o0) / K;
    const __m512i two = _mm512_set1_epi32(2);
    // The block (0: 2p, 1: 2p + 1) of each int32 lane.
    const __m512i idx0 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const Ahead none{nullptr, 0, 0};  // the streams prefetch here, not in VnniPair
    // Prefetches stop at the end of the thread's rows (addresses compared as integers).
    const uintptr_t end =
        reinterpret_cast<uintptr_t>(W.codes.data() + size_t(o1) * nb * kQuantBlock);
    for (int i = 0; i < per; i++) {
        Row w[K];
        __m512 acc[K];
        for (int k = 0; k < K; k++) {
            w[k] = RowOf(W, o0 + k * per + i);
            acc[k] = _mm512_setzero_ps();
        }
        for (int b0 = 0; b0 < nb; b0 += 16) {
            const int nblk = std::min(16, nb - b0);
            const __mmask16 mk = __mmask16((1u << nblk) - 1);
            const __m512 dx = _mm512_maskz_loadu_ps(mk, x.d + b0);
            __m512 sc[K];  // dw * dx of blocks b0 .. b0 + 15 (zero past nb)
            for (int k = 0; k < K; k++)
                sc[k] = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, w[k].d + b0), dx);
            __m512i idx = idx0;
            // Whole pairs, then a last odd block (half a vector, masked).
            for (int b = b0; b < b0 + nblk; b += 2, idx = _mm512_add_epi32(idx, two)) {
                for (int k = 0; k < K; k++) {
                    const uintptr_t p =
                        reinterpret_cast<uintptr_t>(w[k].q + size_t(b) * kQuantBlock) + kAhead;
                    if (p < end) __builtin_prefetch(reinterpret_cast<const void*>(p));
                }
                if (b + 1 == b0 + nblk)
                    VnniPair<QuantScheme::q8, 1, K, true>(&x, w, none, b, idx, sc, acc);
                else
                    VnniPair<QuantScheme::q8, 1, K, false>(&x, w, none, b, idx, sc, acc);
            }
        }
        for (int k = 0; k < K; k++) {
            const int o = o0 + k * per + i;
            out[o] = (beta != 0.0f ? beta * out[o] : 0.0f) + _mm512_reduce_add_ps(acc[k]);
        }
    }
    if constexpr (K > 1)
        if (per * K < o1 - o0) VnniStreamRowsQ8<1>(out, x, W, beta, o0 + per * K, o1);
}

template <QuantScheme S>
void HandGroupRows(float* out, const QuantMatrix& X, const float* xs, const QuantMatrix& W,
                   float beta, int o0, int o1) {
    if constexpr (S == QuantScheme::q8)
        if (X.rows == 1) return VnniStreamRowsQ8<4>(out, RowOf(X, 0), W, beta, o0, o1);
    if (X.rows == 1)
        HandRows<1, 8>(VnniTile<S, 1, 8>, out, X, xs, W, beta, o0, o1);
    else if (X.rows == 2)
        HandRows<2, 4>(VnniTile<S, 2, 4>, out, X, xs, W, beta, o0, o1);
    else
        HandRows<4, 2>(VnniTile<S, 4, 2>, out, X, xs, W, beta, o0, o1);
}
bool HandAvailable() {
    return int8_detail::HandKernels().load() && cpu_has_avx512_vnni();
}
#undef T6_VNNI_TARGET
#define T6_INT8_HAND 1
#endif  // HWY_TARGET == HWY_AVX3

#if HWY_TARGET == HWY_AVX2
// AVX2 (llama.cpp's mul_sum_i8_pairs): vpmaddubsw multiplies unsigned by signed bytes and adds
// pairs into int16 lanes, with saturation. q8: |w| * (x with w's sign), |w|, |x| <= 127, so a pair
// sum is at most 2 * 127 * 127 < 32767; q4: the codes 0..15 are unsigned already. vpmaddwd with
// ones then sums int16 pairs into int32. One ymm per block (q4: the 16 bytes' low nibbles, then
// their high ones).
template <QuantScheme S, int MR, int OR>
void Avx2Tile(const Row* x, const float* const* xs, const Row* w, const Ahead& ahead, int nb,
              float* r) {
    constexpr bool kQ4 = S == QuantScheme::q4;
    constexpr int kBlockBytes = kQ4 ? kQuantBlock / 2 : kQuantBlock;
    const __m256i ones = _mm256_set1_epi16(1), nib = _mm256_set1_epi8(15);
    const __m256i one = _mm256_set1_epi32(1), lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 acc[MR * OR];
    for (int i = 0; i < MR * OR; i++) acc[i] = _mm256_setzero_ps();
    for (int b0 = 0; b0 < nb; b0 += 8) {
        const int nblk = std::min(8, nb - b0);
        const __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(nblk), lane);
        __m256 sc[MR * OR];  // dw * dx of blocks b0 .. b0 + 7 (zero past nb)
        if (b0 % 16 == 0) PrefetchScales<OR>(ahead, b0);
        {
            __m256 dx[MR];
            for (int m = 0; m < MR; m++) dx[m] = _mm256_maskload_ps(x[m].d + b0, mk);
            for (int k = 0; k < OR; k++) {
                const __m256 dw = _mm256_maskload_ps(w[k].d + b0, mk);
                for (int m = 0; m < MR; m++) sc[OR * m + k] = _mm256_mul_ps(dw, dx[m]);
                if constexpr (kQ4) {
                    const __m256 mn = _mm256_maskload_ps(w[k].m + b0, mk);
                    for (int m = 0; m < MR; m++)
                        acc[OR * m + k] = _mm256_fmadd_ps(mn, _mm256_maskload_ps(xs[m] + b0, mk),
                                                          acc[OR * m + k]);
                }
            }
        }
        __m256i idx = _mm256_setzero_si256();
        for (int j = 0; j < nblk; j++, idx = _mm256_add_epi32(idx, one)) {
            const size_t wo = size_t(b0 + j) * kBlockBytes, xo = size_t(b0 + j) * kQuantBlock;
            // One line per row per two blocks (q8) or four (q4).
            if (ahead.next != nullptr && (b0 + j) % (kQ4 ? 4 : 2) == 0)
                for (int k = 0; k < OR; k++) PrefetchAhead(ahead.next[k].q + wo, ahead.far_q);
            __m256i xv[MR];
            for (int m = 0; m < MR; m++)
                xv[m] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[m].q + xo));
            for (int k = 0; k < OR; k++) {
                __m256i wv, xw[MR];
                if constexpr (kQ4) {
                    const __m128i v =
                        _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[k].q + wo));
                    wv = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), nib);
                    for (int m = 0; m < MR; m++) xw[m] = xv[m];
                } else {
                    const __m256i v =
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[k].q + wo));
                    wv = _mm256_sign_epi8(v, v);
                    for (int m = 0; m < MR; m++) xw[m] = _mm256_sign_epi8(xv[m], v);
                }
                for (int m = 0; m < MR; m++) {
                    const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xw[m]), ones);
                    acc[OR * m + k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
                                                      _mm256_permutevar8x32_ps(sc[OR * m + k], idx),
                                                      acc[OR * m + k]);
                }
            }
        }
    }
    for (int i = 0; i < MR * OR; i++) {
        const __m128 h =
            _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1));
        const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
        r[i] = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
    }
}

template <QuantScheme S>
void HandGroupRows(float* out, const QuantMatrix& X, const float* xs, const QuantMatrix& W,
                   float beta, int o0, int o1) {
    if (X.rows == 1)
        HandRows<1, 4>(Avx2Tile<S, 1, 4>, out, X, xs, W, beta, o0, o1);
    else
        HandRows<2, 2>(Avx2Tile<S, 2, 2>, out, X, xs, W, beta, o0, o1);
}
bool HandAvailable() {
    return int8_detail::HandKernels().load();
}
#define T6_INT8_HAND 1
#endif  // HWY_TARGET == HWY_AVX2
#endif  // HWY_TARGET != HWY_SCALAR

template <QuantScheme S>
void GroupRows(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta, int o0, int o1) {
#if HWY_TARGET == HWY_SCALAR
    int8_detail::ScalarRows(out, X, W, beta, o0, o1);
#else
    // Float accumulators: 16 of AVX-512's 32 registers, 8 of AVX2's 16 (plus the int16
    // activations, the int32 block sums and a weight vector).
    constexpr int kAcc = hn::MaxLanes(DF()) >= 16 ? 16 : 8;
    if (X.rows == 1)
        TiledRows<S, 1, kAcc>(out, X, W, beta, o0, o1);
    else if (X.rows == 2 || kAcc == 8)
        TiledRows<S, 2, kAcc / 2>(out, X, W, beta, o0, o1);
    else
        TiledRows<S, 4, kAcc / 4>(out, X, W, beta, o0, o1);
#endif
}

}  // namespace

// Full blocks of 32 finite numbers: quantize_block_q8's codes and scale, vectorized (d = amax /
// 127, q = round(x / d) with ties away from zero, as trunc(v) + sign(v) where |v - trunc(v)| >=
// 0.5: v - trunc(v) is exact). Returns false (nothing written) when the block holds a non-finite
// number; the caller then takes the scalar path.
bool QuantizeBlockQ8(const float* HWY_RESTRICT v, uint8_t* HWY_RESTRICT q, float* d) {
#if HWY_TARGET == HWY_SCALAR
    (void)v, (void)q, (void)d;
    return false;
#else
    const hn::ScalableTag<float> df;
    const hn::RebindToSigned<decltype(df)> di;
    const hn::Rebind<int8_t, decltype(di)> d8;
    const int L = int(hn::Lanes(df));
    auto amax = hn::Zero(df), bad = hn::Zero(df);
    for (int i = 0; i < kQuantBlock; i += L) {
        const auto x = hn::LoadU(df, v + i);
        amax = hn::Max(amax, hn::Abs(x));
        bad = hn::Or(bad, hn::Mul(x, hn::Zero(df)));  // NaN lanes where x is not finite
    }
    if (!hn::AllTrue(df, hn::Eq(bad, hn::Zero(df)))) return false;
    const float scale = hn::GetLane(hn::MaxOfLanes(df, amax)) / 127.0f;
    *d = scale;
    if (!(scale > 0.0f)) {
        for (int i = 0; i < kQuantBlock; i++) q[i] = 0;
        return true;
    }
    const auto vd = hn::Set(df, scale), half = hn::Set(df, 0.5f), one = hn::Set(df, 1.0f);
    const auto lo = hn::Set(df, -127.0f), hi = hn::Set(df, 127.0f);
    for (int i = 0; i < kQuantBlock; i += L) {
        const auto x = hn::Div(hn::LoadU(df, v + i), vd);
        const auto t = hn::Trunc(x);
        const auto up = hn::Ge(hn::Abs(hn::Sub(x, t)), half);
        const auto r = hn::Add(t, hn::IfThenElseZero(up, hn::CopySign(one, x)));
        const auto c = hn::ConvertTo(di, hn::Min(hn::Max(r, lo), hi));
        hn::StoreU(hn::DemoteTo(d8, c), d8, reinterpret_cast<int8_t*>(q) + i);
    }
    return true;
#endif
}

// Rows [o0, o1) of out (the products with W's rows o0 .. o1 - 1).
void RangeRows(float* out, const QuantMatrix& X, const float* xs, const QuantMatrix& W, float beta,
               int o0, int o1) {
#if defined(T6_INT8_HAND)
    if (HandAvailable()) {
        if (W.scheme == QuantScheme::q8)
            HandGroupRows<QuantScheme::q8>(out, X, nullptr, W, beta, o0, o1);
        else
            HandGroupRows<QuantScheme::q4>(out, X, xs, W, beta, o0, o1);
        return;
    }
#endif
    (void)xs;
    if (W.scheme == QuantScheme::q8)
        GroupRows<QuantScheme::q8>(out, X, W, beta, o0, o1);
    else
        GroupRows<QuantScheme::q4>(out, X, W, beta, o0, o1);
}

void LinearA8Codes(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta) {
    const float* xsp = nullptr;
#if defined(T6_INT8_HAND)
    thread_local std::vector<float> xs;
    if (HandAvailable() && W.scheme == QuantScheme::q4) {
        HandXs(xs, X);
        xsp = xs.data();
    }
#endif
    // Small matrices (tests, tiny models) on one thread: a parallel region costs more.
    const bool parallel = size_t(W.rows) * W.cols >= (size_t(1) << 16);
    // One contiguous range of rows per thread, balanced in units of 16 rows (a multiple of every
    // tile's OR), so that each thread streams (and prefetches through) one range.
    parallel_row_ranges(
        W.rows, 16, [&](int o0, int o1) { RangeRows(out, X, xsp, W, beta, o0, o1); }, parallel);
}
#undef T6_INT8_HAND

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <string>

#include "core/error.h"

namespace t6 {

HWY_EXPORT(LinearA8Codes);
HWY_EXPORT(QuantizeBlockQ8);

void quantize_activations_q8(QuantMatrix& X, const float* x, int N, int C) {
    if (X.scheme != QuantScheme::q8 || X.rows != N || X.cols != C)
        X.allocate(QuantScheme::q8, N, C);
    const int nb = X.blocks_per_row();
    // Full blocks of finite numbers vectorized (the same codes and scales), others in scalar code.
    const auto quantize = HWY_DYNAMIC_DISPATCH(QuantizeBlockQ8);
    for (int n = 0; n < N; n++)
        for (int b = 0; b < nb; b++) {
            const size_t blk = size_t(n) * nb + b;
            const float* v = x + size_t(n) * C + size_t(b) * kQuantBlock;
            const int len = std::min(kQuantBlock, C - b * kQuantBlock);
            uint8_t* q = X.codes.data() + blk * kQuantBlock;
            if (len == kQuantBlock && quantize(v, q, X.scale.data() + blk)) continue;
            quantize_block_q8(v, len, q, X.scale.data() + blk);
            float s = 0.0f;
            for (int i = 0; i < len; i++) s += v[i] * 0.0f;  // NaN if any v[i] is not finite
            if (s != 0.0f) X.scale[blk] = std::numeric_limits<float>::quiet_NaN();
        }
}

static void check_shapes(const QuantMatrix& X, const QuantMatrix& W) {
    if (X.scheme != QuantScheme::q8 || X.cols != W.cols)
        fail("internal: int8 product of mismatched operands (", X.rows, " x ", X.cols, ", ",
             quant_scheme_name(W.scheme), " ", W.rows, " x ", W.cols, ")");
}

void linear_a8_codes(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta) {
    check_shapes(X, W);
    if (X.rows <= 0 || W.rows <= 0) return;
    HWY_DYNAMIC_DISPATCH(LinearA8Codes)(out, X, W, beta);
}

bool set_int8_hand_kernels(bool enabled) {
    return int8_detail::HandKernels().exchange(enabled);
}

const char* int8_kernel_name() {
    const std::string hwy = simd_highway_target_name();
    const bool hand = int8_detail::HandKernels().load();
    if (hwy == "AVX3") return hand && cpu_has_avx512_vnni() ? "avx512-vnni" : "highway";
    if (hwy == "AVX2") return hand ? "avx2-maddubs" : "highway";
    if (hwy == "SCALAR" || hwy == "EMU128") return "scalar";
    return "highway";
}

void linear_a8_reference(float* out, const QuantMatrix& X, const QuantMatrix& W, float beta) {
    check_shapes(X, W);
    int8_detail::ScalarRows(out, X, W, beta, 0, W.rows);
}

// Rows up to which the int8 kernel runs; above, the float32 GEMM over dequantized operands.
constexpr int kFewRows = 16;

void linear_a8(float* out, const float* inp, const QuantMatrix& W, int N, float beta) {
    if (N <= 0 || W.rows <= 0) return;
    thread_local QuantMatrix X;
    quantize_activations_q8(X, inp, N, W.cols);
    if (N <= kFewRows) {
        linear_a8_codes(out, X, W, beta);
        return;
    }
    std::vector<float> xd(size_t(N) * W.cols);
    dequantize_matrix(X, xd.data());
    linear_quant(out, xd.data(), W, N, beta);
}

}  // namespace t6
#endif  // HWY_ONCE
