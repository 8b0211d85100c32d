// Rotary position embedding (RoPE) with the official conventions (see rope.h): half-split
// pairing, for pair i (element i with element i + d/2) and angle theta_ti = t * inv_freq[i],
//   forward:  y1 = x1 cos + x2 sin,  y2 = -x1 sin + x2 cos,
//   backward (the transpose):  dx1 = dy1 cos - dy2 sin,  dx2 = dy1 sin + dy2 cos,
// cos/sin read from bf16-rounded tables. The per-token rotation is Google Highway code compiled
// for AVX-512, AVX2 and scalar and chosen at run time (core/simd.h);
// rope_*_inplace_reference are the plain loops the tests compare it against.
#include "kernels/rope.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "core/parallel_items.h"
#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/rope.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Rotates the `nvec` vectors of tokens [t0, t1) of batch row b (see RopeApply for addressing);
// sign = +1 forward, -1 backward.
void RotateTokens(float* x, int T, int b, int t0, int t1, int nvec, long token_stride,
                  long vec_stride, const float* cos, const float* sin, int h, int pos0,
                  float sign) {
    const hn::ScalableTag<float> d;
    const int L = int(hn::Lanes(d));
    const auto vsign = hn::Set(d, sign);
    for (int t = t0; t < t1; t++) {
        const float* HWY_RESTRICT c = cos + (long)(pos0 + t) * h;
        const float* HWY_RESTRICT s = sin + (long)(pos0 + t) * h;
        float* tok = x + ((long)b * T + t) * token_stride;
        for (int v = 0; v < nvec; v++) {
            float* HWY_RESTRICT p = tok + v * vec_stride;
            int i = 0;
            for (; i + L <= h; i += L) {
                const auto x1 = hn::LoadU(d, p + i), x2 = hn::LoadU(d, p + i + h);
                const auto ci = hn::LoadU(d, c + i);
                const auto si = hn::Mul(vsign, hn::LoadU(d, s + i));
                hn::StoreU(hn::Add(hn::Mul(x1, ci), hn::Mul(x2, si)), d, p + i);
                hn::StoreU(hn::Sub(hn::Mul(x2, ci), hn::Mul(x1, si)), d, p + i + h);
            }
            for (; i < h; i++) {
                const float x1 = p[i], x2 = p[i + h];
                const float si = sign * s[i];
                p[i] = x1 * c[i] + x2 * si;
                p[i + h] = x2 * c[i] - x1 * si;
            }
        }
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(RotateTokens);

namespace {

// float32 -> bfloat16 (round to nearest, ties to even) -> float32, as torch's .bfloat16().
float round_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return f;  // inf / nan: not produced here
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    std::memcpy(&f, &u, 4);
    return f;
}

// Rotates (x1, x2) = (x[i], x[i+h]) by the table row; sign = +1 forward, -1 backward (transpose).
//   forward:  y1 = x1*c + x2*s,  y2 = -x1*s + x2*c   (official apply_rotary_emb sign)
//   backward: dx1 = dy1*c - dy2*s,  dx2 = dy1*s + dy2*c
void rotate(float* __restrict x, const float* __restrict c, const float* __restrict s, int h,
            float sign) {
    for (int i = 0; i < h; i++) {
        const float x1 = x[i], x2 = x[i + h];
        const float si = sign * s[i];
        x[i] = x1 * c[i] + x2 * si;
        x[i + h] = x2 * c[i] - x1 * si;
    }
}

void rope_apply(float* x, int B, int T, int nvec, int dim, long token_stride, long vec_stride,
                const RopeTables& tab, int pos0, float sign, bool reference) {
    T6_CHECK(dim == tab.dim && dim % 2 == 0, "rope dim ", dim, " vs table dim ", tab.dim);
    T6_CHECK(pos0 >= 0 && pos0 + T <= tab.max_positions, "rope positions ", pos0 + T,
             " exceed table size ", tab.max_positions);
    const int h = dim / 2;
    if (reference) {
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float* c = tab.cos.data() + (long)(pos0 + t) * h;
                const float* s = tab.sin.data() + (long)(pos0 + t) * h;
                float* tok = x + ((long)b * T + t) * token_stride;
                for (int v = 0; v < nvec; v++) rotate(tok + v * vec_stride, c, s, h, sign);
            }
        }
        return;
    }
    constexpr int kTokens = 8;  // tokens per OpenMP work item
    const int tblocks = (T + kTokens - 1) / kTokens;
    const long items = long(B) * tblocks;
    const auto rotate_item = [&](long i) {
        const int b = int(i / tblocks), tb = int(i % tblocks);
        const int t0 = tb * kTokens, t1 = t0 + kTokens < T ? t0 + kTokens : T;
        HWY_DYNAMIC_DISPATCH(RotateTokens)
        (x, T, b, t0, t1, nvec, token_stride, vec_stride, tab.cos.data(), tab.sin.data(), h, pos0,
         sign);
    };
    // A decoding step's B sequences of one token each, at most an item's worth of tokens in all,
    // stay on the calling thread (core/parallel_items.h: a region costs more).
    parallel_items(items, rotate_item, long(B) * T > kTokens);
}

}  // namespace

RopeTables make_rope_tables(int max_positions, int dim, float theta) {
    T6_CHECK(dim > 0 && dim % 2 == 0 && max_positions >= 0, "bad rope dims ", dim);
    RopeTables tab;
    tab.max_positions = max_positions;
    tab.dim = dim;
    const int h = dim / 2;
    tab.inv_freq.resize(h);
    // Official: inv_freq = 1 / (theta ** (arange(0, d, 2).float() / d)) in float32.
    for (int i = 0; i < h; i++) {
        const float e = float(2 * i) / float(dim);
        tab.inv_freq[i] = 1.0f / float(std::pow(double(theta), double(e)));
    }
    tab.cos.resize((size_t)max_positions * h);
    tab.sin.resize((size_t)max_positions * h);
    for (int t = 0; t < max_positions; t++) {
        for (int i = 0; i < h; i++) {
            const float angle = float(t) * tab.inv_freq[i];  // one float32 multiply (outer)
            tab.cos[(size_t)t * h + i] = round_bf16(float(std::cos(double(angle))));
            tab.sin[(size_t)t * h + i] = round_bf16(float(std::sin(double(angle))));
        }
    }
    return tab;
}

void rope_forward_inplace(float* x, int B, int T, int nvec, int dim, long token_stride,
                          long vec_stride, const RopeTables& tab, int pos0) {
    rope_apply(x, B, T, nvec, dim, token_stride, vec_stride, tab, pos0, 1.0f, false);
}

void rope_backward_inplace(float* dx, int B, int T, int nvec, int dim, long token_stride,
                           long vec_stride, const RopeTables& tab, int pos0) {
    rope_apply(dx, B, T, nvec, dim, token_stride, vec_stride, tab, pos0, -1.0f, false);
}

void rope_forward_inplace_reference(float* x, int B, int T, int nvec, int dim, long token_stride,
                                    long vec_stride, const RopeTables& tab, int pos0) {
    rope_apply(x, B, T, nvec, dim, token_stride, vec_stride, tab, pos0, 1.0f, true);
}

void rope_backward_inplace_reference(float* dx, int B, int T, int nvec, int dim, long token_stride,
                                     long vec_stride, const RopeTables& tab, int pos0) {
    rope_apply(dx, B, T, nvec, dim, token_stride, vec_stride, tab, pos0, -1.0f, true);
}

}  // namespace t6
#endif  // HWY_ONCE
