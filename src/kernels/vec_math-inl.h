// Per-target vector helpers shared by the Highway kernels (include from inside a file compiled
// with hwy/foreach_target.h, after hwy/highway.h; the guard below re-includes it once per target,
// Highway's "-inl.h" convention). Everything is in t6::HWY_NAMESPACE.
//
//   RowMax(p, n)            max of p[0..n), n >= 1
//   ExpShiftSum(p, n, m)    p[j] = exp(p[j] - m), returns the sum (-inf inputs give exactly 0)
//   ExpSoftmax(d, x)        exp(x) for x <= 88 (softmax scores minus a running maximum), fewer
//                           operations than hn::Exp; inputs below -87 (and -inf) give exactly 0,
//                           NaN gives 0 (ExpSoftmax<true>: NaN; ExpSoftmax<false, false>: e^-87
//                           below -87, no mask)
//   Dot(a, b, n)            sum a[i] b[i]
//   Axpy(y, a, x, n)        y[i] += a x[i]
//   DotF64(a, b, n)         sum a[i] b[i] with products and sum in double (b may equal a)
//   Dot3F64(a, b, c, n)     sum a[i] b[i] c[i] in double
//   TransposeReduce<kMax>(d, v)  lane k = the sum (kMax: the max) of the lanes of v[k], for the
//                           Lanes(d) vectors v[0..): N reductions at once by a transpose tree
//   TransposeBlock(src, stride, dst, dst_stride, rows)  an L x L block of floats transposed in
//                           registers (L = float lanes), rows past `rows` repeating the last
// exp is Highway's contrib Exp (max error 1 ulp on float32; inputs below -104 flush to 0).
#if defined(T6_KERNELS_VEC_MATH_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef T6_KERNELS_VEC_MATH_INL_H_
#undef T6_KERNELS_VEC_MATH_INL_H_
#else
#define T6_KERNELS_VEC_MATH_INL_H_
#endif

#include <algorithm>
#include <cmath>

#include "hwy/contrib/math/math-inl.h"
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

HWY_INLINE float RowMax(const float* HWY_RESTRICT p, int n) {
    const hn::ScalableTag<float> d;
    const int N = int(hn::Lanes(d));
    auto acc = hn::Set(d, -INFINITY);
    int j = 0;
    for (; j + N <= n; j += N) acc = hn::Max(acc, hn::LoadU(d, p + j));
    float m = hn::GetLane(hn::MaxOfLanes(d, acc));
    for (; j < n; j++) m = p[j] > m ? p[j] : m;
    return m;
}

// exp(x) as the decoding softmax needs it: x a score minus the running maximum, so x <= 0, or
// x <= kLazyMax = 8 where the maximum moves lazily (flash_kv_decode.cpp). Highway's reduction and
// polynomial (1 ulp), with the scale 2^q applied by one multiply (-126 <= q <= 127 for
// -87 <= x <= 88: a normal power of two) instead of Exp's two half-scales for the full range, and q
// rounded directly; x < -87, -inf and NaN give 0 (hn::Exp: 0 below -104, denormals in between);
// x > 88 is outside the domain (2^q overflows the exponent field).
// kNaN: a NaN input gives NaN (as torch's softmax propagates it) instead of 0, two operations
// more; the training attention uses it, so that a NaN score is not silently weighted 0.
// kFlush = false: inputs below -87, -inf and NaN give e^-87 (about 1.6e-38) instead of 0, two
// operations fewer (FlashTPA's token weights: a token 87 or more below the running maximum then
// weighs 1.6e-38 where it weighed 0, beside the maximum's 1).
template <bool kNaN = false, bool kFlush = true, class D, class V>
HWY_INLINE V ExpSoftmax(D d, V x) {
    const hn::Rebind<int32_t, D> di;
    const V lo = hn::Set(d, -87.0f);
    const V xc = hn::Max(x, lo);  // -inf -> -87, so the reduction stays finite
    // q = round(x log2 e) to nearest even, as hn::Round, by adding 1.5 * 2^23 (|x log2 e| < 2^22):
    // the sum's low mantissa bits are q, so 2^q is built from them below without a float -> int
    // conversion (Highway's ConvertTo adds an out-of-range fixup of 4 more operations on AVX-512).
    const V magic = hn::Set(d, 12582912.0f);
    // (One rounding, of x log2 e + 1.5 * 2^23: q is x log2 e rounded to nearest even.)
    const V t = hn::MulAdd(xc, hn::Set(d, 1.442695040888963407359924681f), magic);
    const V qf = hn::Sub(t, magic);
    // r = x - q ln2 in two parts (Highway's constants), |r| <= ln2 / 2.
    V r = hn::MulAdd(qf, hn::Set(d, -0.693145751953125f), xc);
    r = hn::MulAdd(qf, hn::Set(d, -1.428606765330187045e-6f), r);
    // e^r - 1 (Highway's ExpPoly), then 2^q (1 + that).
    const V r2 = hn::Mul(r, r);
    const V p01 = hn::MulAdd(r, hn::Set(d, +0.166666671633720397949219f), hn::Set(d, +0.5f));
    const V p23 = hn::MulAdd(r, hn::Set(d, +0.00833336077630519866943359f),
                             hn::Set(d, +0.0416664853692054748535156f));
    const V p45 = hn::MulAdd(r, hn::Set(d, +0.000198527617612853646278381f),
                             hn::Set(d, +0.00139304355252534151077271f));
    const V poly = hn::MulAdd(hn::MulAdd(p45, r2, p23), r2, p01);
    const V em1 = hn::MulAdd(poly, r2, r);
    // The bits of t are those of 1.5 * 2^23 (0x4B400000) plus q: the exponent field of 2^q is
    // q + 127.
    const auto pow2 =
        hn::ShiftLeft<23>(hn::Add(hn::BitCast(di, t), hn::Set(di, int32_t(0x7F - 0x4B400000))));
    const V y = hn::MulAdd(em1, hn::BitCast(d, pow2), hn::BitCast(d, pow2));
    if constexpr (!kFlush) return y;
    const V out = hn::IfThenElseZero(hn::Ge(x, lo), y);
    if constexpr (kNaN) return hn::IfThenElse(hn::IsNaN(x), x, out);
    return out;
}

HWY_INLINE float ExpShiftSum(float* HWY_RESTRICT p, int n, float m) {
    const hn::ScalableTag<float> d;
    const int N = int(hn::Lanes(d));
    const auto vm = hn::Set(d, m);
    auto acc = hn::Zero(d);
    int j = 0;
    for (; j + N <= n; j += N) {
        const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, p + j), vm));
        hn::StoreU(e, d, p + j);
        acc = hn::Add(acc, e);
    }
    if (j < n) {
        const auto mask = hn::FirstN(d, size_t(n - j));
        // Lanes past n read as -inf and give exp = 0, so the sum needs no second mask.
        const auto x = hn::IfThenElse(mask, hn::MaskedLoad(mask, d, p + j), hn::Set(d, -INFINITY));
        const auto e = hn::Exp(d, hn::Sub(x, vm));
        hn::BlendedStore(e, mask, d, p + j);
        acc = hn::Add(acc, e);
    }
    return hn::GetLane(hn::SumOfLanes(d, acc));
}

// Lane k of the result is the sum (kMax: the max) of the lanes of v[k], for the Lanes(d) vectors
// v[0..): N reductions done at once by a transpose tree (log2 N rounds of shuffles and adds)
// instead of N horizontal reductions.
template <bool kMax, class D>
HWY_INLINE hn::Vec<D> TransposeReduce(D d, const hn::Vec<D>* v) {
#if HWY_TARGET == HWY_AVX3
    (void)d;
    const auto op = [](__m512 a, __m512 b) {
        return kMax ? _mm512_max_ps(a, b) : _mm512_add_ps(a, b);
    };
    __m512 x[8], y[4];
    // x[k], per 128-bit block: [a0.a2, b0.b2, a1.a3, b1.b3] of a = v[2k], b = v[2k+1].
    for (int k = 0; k < 8; k++)
        x[k] = op(_mm512_unpacklo_ps(v[2 * k].raw, v[2 * k + 1].raw),
                  _mm512_unpackhi_ps(v[2 * k].raw, v[2 * k + 1].raw));
    // y[k], per 128-bit block L: the reductions over block L of v[4k], ..., v[4k+3].
    for (int k = 0; k < 4; k++) {
        const __m512d a = _mm512_castps_pd(x[2 * k]), b = _mm512_castps_pd(x[2 * k + 1]);
        y[k] = op(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                  _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    const __m512 z0 =
        op(_mm512_shuffle_f32x4(y[0], y[1], 0x88), _mm512_shuffle_f32x4(y[0], y[1], 0xdd));
    const __m512 z1 =
        op(_mm512_shuffle_f32x4(y[2], y[3], 0x88), _mm512_shuffle_f32x4(y[2], y[3], 0xdd));
    return hn::Vec<D>{op(_mm512_shuffle_f32x4(z0, z1, 0x88), _mm512_shuffle_f32x4(z0, z1, 0xdd))};
#elif HWY_TARGET == HWY_AVX2
    (void)d;
    if constexpr (!kMax) {
        // hadd(hadd(v0, v1), hadd(v2, v3)) per 128-bit half holds the half-sums of v0..v3 (about
        // 1% faster in FlashTPA than the unpack rounds below, which max needs).
        const __m256 a =
            _mm256_hadd_ps(_mm256_hadd_ps(v[0].raw, v[1].raw), _mm256_hadd_ps(v[2].raw, v[3].raw));
        const __m256 b =
            _mm256_hadd_ps(_mm256_hadd_ps(v[4].raw, v[5].raw), _mm256_hadd_ps(v[6].raw, v[7].raw));
        return hn::Vec<D>{
            _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31))};
    }
    const auto op = [](__m256 a, __m256 b) { return _mm256_max_ps(a, b); };
    __m256 x[4], y[2];
    // As above: x[k] per 128-bit half [a0.a2, b0.b2, a1.a3, b1.b3], y[k] the half-reductions of
    // v[4k..4k+3].
    for (int k = 0; k < 4; k++)
        x[k] = op(_mm256_unpacklo_ps(v[2 * k].raw, v[2 * k + 1].raw),
                  _mm256_unpackhi_ps(v[2 * k].raw, v[2 * k + 1].raw));
    for (int k = 0; k < 2; k++) {
        const __m256d a = _mm256_castps_pd(x[2 * k]), b = _mm256_castps_pd(x[2 * k + 1]);
        y[k] = op(_mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
                  _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)));
    }
    return hn::Vec<D>{
        op(_mm256_permute2f128_ps(y[0], y[1], 0x20), _mm256_permute2f128_ps(y[0], y[1], 0x31))};
#elif HWY_TARGET == HWY_NEON
    (void)d;
    // Pairwise operations (A64 FADDP / FMAXP): the lane reductions of v0..v3 in two rounds.
    if constexpr (kMax)
        return hn::Vec<D>{
            vpmaxq_f32(vpmaxq_f32(v[0].raw, v[1].raw), vpmaxq_f32(v[2].raw, v[3].raw))};
    else
        return hn::Vec<D>{
            vpaddq_f32(vpaddq_f32(v[0].raw, v[1].raw), vpaddq_f32(v[2].raw, v[3].raw))};
#else
    // Any other target (the scalar one: a single lane): lane by lane.
    constexpr size_t kMaxN = HWY_MAX_BYTES / sizeof(float);
    const size_t N = hn::Lanes(d);
    float out[kMaxN];
    for (size_t k = 0; k < N; k++)
        out[k] = kMax ? hn::GetLane(hn::MaxOfLanes(d, v[k])) : hn::GetLane(hn::SumOfLanes(d, v[k]));
    return hn::LoadU(d, out);
#endif
}

HWY_INLINE float Dot(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, int n) {
    const hn::ScalableTag<float> d;
    const int N = int(hn::Lanes(d));
    auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
    int i = 0;
    for (; i + 2 * N <= n; i += 2 * N) {
        acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
        acc1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), acc1);
    }
    for (; i + N <= n; i += N) acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
    float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

HWY_INLINE void Axpy(float* HWY_RESTRICT y, float a, const float* HWY_RESTRICT x, int n) {
    const hn::ScalableTag<float> d;
    const int N = int(hn::Lanes(d));
    const auto va = hn::Set(d, a);
    int i = 0;
    for (; i + N <= n; i += N)
        hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
    for (; i < n; i++) y[i] += a * x[i];
}

#if HWY_TARGET == HWY_SCALAR
HWY_INLINE double DotF64(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += double(a[i]) * double(b[i]);
    return s;
}

HWY_INLINE double Dot3F64(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b,
                          const float* HWY_RESTRICT c, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += double(a[i]) * double(b[i]) * double(c[i]);
    return s;
}
#else
HWY_INLINE double DotF64(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, int n) {
    const hn::ScalableTag<float> d;
    const hn::Half<decltype(d)> dh;
    const hn::Rebind<double, decltype(dh)> dd;
    const int N = int(hn::Lanes(d));
    auto acc0 = hn::Zero(dd), acc1 = hn::Zero(dd);
    int i = 0;
    for (; i + N <= n; i += N) {
        const auto va = hn::LoadU(d, a + i), vb = hn::LoadU(d, b + i);
        acc0 = hn::MulAdd(hn::PromoteTo(dd, hn::LowerHalf(dh, va)),
                          hn::PromoteTo(dd, hn::LowerHalf(dh, vb)), acc0);
        acc1 = hn::MulAdd(hn::PromoteTo(dd, hn::UpperHalf(dh, va)),
                          hn::PromoteTo(dd, hn::UpperHalf(dh, vb)), acc1);
    }
    double s = hn::GetLane(hn::SumOfLanes(dd, hn::Add(acc0, acc1)));
    for (; i < n; i++) s += double(a[i]) * double(b[i]);
    return s;
}

HWY_INLINE double Dot3F64(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b,
                          const float* HWY_RESTRICT c, int n) {
    const hn::ScalableTag<float> d;
    const hn::Half<decltype(d)> dh;
    const hn::Rebind<double, decltype(dh)> dd;
    const int N = int(hn::Lanes(d));
    auto acc0 = hn::Zero(dd), acc1 = hn::Zero(dd);
    int i = 0;
    for (; i + N <= n; i += N) {
        const auto va = hn::LoadU(d, a + i), vb = hn::LoadU(d, b + i), vc = hn::LoadU(d, c + i);
        acc0 = hn::MulAdd(hn::Mul(hn::PromoteTo(dd, hn::LowerHalf(dh, va)),
                                  hn::PromoteTo(dd, hn::LowerHalf(dh, vb))),
                          hn::PromoteTo(dd, hn::LowerHalf(dh, vc)), acc0);
        acc1 = hn::MulAdd(hn::Mul(hn::PromoteTo(dd, hn::UpperHalf(dh, va)),
                                  hn::PromoteTo(dd, hn::UpperHalf(dh, vb))),
                          hn::PromoteTo(dd, hn::UpperHalf(dh, vc)), acc1);
    }
    double s = hn::GetLane(hn::SumOfLanes(dd, hn::Add(acc0, acc1)));
    for (; i < n; i++) s += double(a[i]) * double(b[i]) * double(c[i]);
    return s;
}
#endif

// dst[c * dst_stride + r] = src[r * stride + c] for r, c < L (L float lanes): one square block
// transposed in registers (AVX-512: 16 x 16, AVX2: 8 x 8, by the classic unpack / shuffle rounds),
// element by element on other targets. Rows at or past `rows` repeat row rows - 1 (a block's
// tail; rows >= 1). Used by the training attention (K and V tiles) and FlashTPA (B_K rows).
HWY_INLINE void TransposeBlock(const float* HWY_RESTRICT src, long stride, float* HWY_RESTRICT dst,
                               long dst_stride, int rows = 1 << 30) {
    constexpr int kLanes = int(hn::MaxLanes(hn::ScalableTag<float>()));
    const auto row = [&](int i) { return src + long(std::min(i, rows - 1)) * stride; };
#if HWY_TARGET == HWY_AVX3
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(row(i));
    // Per 128-bit block L: t[2i] = [r2i[4L], r2i+1[4L], r2i[4L+1], r2i+1[4L+1]], t[2i+1] the same
    // for columns 4L+2, 4L+3.
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // r[4g + j], block L: column 4L + j of rows 4g .. 4g+3.
    for (int g = 0; g < 4; g++) {
        const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
        const __m512d c = _mm512_castps_pd(t[4 * g + 1]), e = _mm512_castps_pd(t[4 * g + 3]);
        r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, e));
        r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, e));
    }
    // Column 4L + j = block L of r[j], r[4 + j], r[8 + j], r[12 + j]: a 4 x 4 transpose of blocks.
    for (int j = 0; j < 4; j++) {
        const __m512 v0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44);
        const __m512 v1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
        const __m512 v3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
        _mm512_storeu_ps(dst + (0 + j) * dst_stride, _mm512_shuffle_f32x4(v0, v2, 0x88));
        _mm512_storeu_ps(dst + (4 + j) * dst_stride, _mm512_shuffle_f32x4(v0, v2, 0xDD));
        _mm512_storeu_ps(dst + (8 + j) * dst_stride, _mm512_shuffle_f32x4(v1, v3, 0x88));
        _mm512_storeu_ps(dst + (12 + j) * dst_stride, _mm512_shuffle_f32x4(v1, v3, 0xDD));
    }
#elif HWY_TARGET == HWY_AVX2
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(row(i));
    for (int i = 0; i < 4; i++) {  // as above, per 128-bit half
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 2; g++) {
        const __m256d a = _mm256_castps_pd(t[4 * g]), b = _mm256_castps_pd(t[4 * g + 2]);
        const __m256d c = _mm256_castps_pd(t[4 * g + 1]), e = _mm256_castps_pd(t[4 * g + 3]);
        r[4 * g] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, b));
        r[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, b));
        r[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(c, e));
        r[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(c, e));
    }
    for (int j = 0; j < 4; j++) {
        _mm256_storeu_ps(dst + j * dst_stride, _mm256_permute2f128_ps(r[j], r[4 + j], 0x20));
        _mm256_storeu_ps(dst + (4 + j) * dst_stride, _mm256_permute2f128_ps(r[j], r[4 + j], 0x31));
    }
#else
    for (int i = 0; i < kLanes; i++)
        for (int c = 0; c < kLanes; c++) dst[c * dst_stride + i] = row(i)[c];
#endif
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // T6_KERNELS_VEC_MATH_INL_H_
