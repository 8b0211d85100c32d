// SwiGLU gate: out = silu(a) * b with silu(z) = z * sigmoid(z), sigmoid(z) = 1 / (1 + e^-z);
// backward: db = dout * silu(a), da = dout * b * silu'(a), silu'(z) = sig * (1 + z (1 - sig)).
// The element loops are Google Highway code (exp: Highway's contrib Exp) compiled for AVX-512,
// AVX2 and scalar and chosen at run time (core/simd.h), one dispatch per OpenMP chunk;
// swiglu_*_reference are the plain std::exp loops the tests compare them against.
#include "kernels/swiglu.h"

#include <cmath>

#include "core/parallel_items.h"
#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/swiglu.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// After highway.h (per-target re-inclusion):
#include "hwy/contrib/math/math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// sigmoid(z); e^-z is clamped at e^88 (Highway's Exp is valid up to 88), which leaves sigmoid
// of z < -88 at ~6e-39 instead of 0: silu(z) = z * sig is then below 1e-36 either way.
HWY_INLINE hn::Vec<DF> Sigmoid(DF d, hn::Vec<DF> z) {
    const auto one = hn::Set(d, 1.0f);
    const auto e = hn::Exp(d, hn::Min(hn::Neg(z), hn::Set(d, 88.0f)));
    return hn::Div(one, hn::Add(one, e));
}

void ForwardRange(float* HWY_RESTRICT out, const float* HWY_RESTRICT a, const float* HWY_RESTRICT b,
                  size_t i0, size_t i1) {
    const DF d;
    const size_t N = hn::Lanes(d);
    size_t i = i0;
    for (; i + N <= i1; i += N) {
        const auto z = hn::LoadU(d, a + i);
        hn::StoreU(hn::Mul(hn::Mul(z, Sigmoid(d, z)), hn::LoadU(d, b + i)), d, out + i);
    }
    if (i < i1) {
        const auto m = hn::FirstN(d, i1 - i);
        const auto z = hn::MaskedLoad(m, d, a + i);
        hn::BlendedStore(hn::Mul(hn::Mul(z, Sigmoid(d, z)), hn::MaskedLoad(m, d, b + i)), m, d,
                         out + i);
    }
}

void BackwardRange(float* HWY_RESTRICT da, float* HWY_RESTRICT db, const float* HWY_RESTRICT dout,
                   const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, size_t i0, size_t i1) {
    const DF d;
    const size_t N = hn::Lanes(d);
    const auto one = hn::Set(d, 1.0f);
    auto step = [&](hn::Vec<DF> z, hn::Vec<DF> g, hn::Vec<DF> bv, hn::Vec<DF>& va,
                    hn::Vec<DF>& vb) {
        const auto sig = Sigmoid(d, z);
        const auto dsilu = hn::Mul(sig, hn::MulAdd(z, hn::Sub(one, sig), one));
        vb = hn::Mul(g, hn::Mul(z, sig));
        va = hn::Mul(hn::Mul(g, bv), dsilu);
    };
    size_t i = i0;
    for (; i + N <= i1; i += N) {
        hn::Vec<DF> va, vb;
        step(hn::LoadU(d, a + i), hn::LoadU(d, dout + i), hn::LoadU(d, b + i), va, vb);
        hn::StoreU(va, d, da + i);
        hn::StoreU(vb, d, db + i);
    }
    if (i < i1) {
        const auto m = hn::FirstN(d, i1 - i);
        hn::Vec<DF> va, vb;
        step(hn::MaskedLoad(m, d, a + i), hn::MaskedLoad(m, d, dout + i),
             hn::MaskedLoad(m, d, b + i), va, vb);
        hn::BlendedStore(va, m, d, da + i);
        hn::BlendedStore(vb, m, d, db + i);
    }
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(ForwardRange);
HWY_EXPORT(BackwardRange);

namespace {

constexpr size_t kChunk = 4096;  // elements per OpenMP work item

inline float sigmoid(float z) {
    return 1.0f / (1.0f + std::exp(-z));
}

}  // namespace

void swiglu_forward(float* out, const float* a, const float* b, size_t n) {
    const long nchunks = long((n + kChunk - 1) / kChunk);
    parallel_items(nchunks, [&](long c) {
        const size_t i0 = size_t(c) * kChunk;
        HWY_DYNAMIC_DISPATCH(ForwardRange)(out, a, b, i0, i0 + kChunk < n ? i0 + kChunk : n);
    });
}

void swiglu_backward(float* da, float* db, const float* dout, const float* a, const float* b,
                     size_t n) {
    const long nchunks = long((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < nchunks; c++) {
        const size_t i0 = size_t(c) * kChunk;
        HWY_DYNAMIC_DISPATCH(BackwardRange)
        (da, db, dout, a, b, i0, i0 + kChunk < n ? i0 + kChunk : n);
    }
}

void swiglu_forward_reference(float* out, const float* a, const float* b, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = a[i] * sigmoid(a[i]) * b[i];
}

void swiglu_backward_reference(float* da, float* db, const float* dout, const float* a,
                               const float* b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float z = a[i], sig = sigmoid(z), g = dout[i];
        db[i] = g * z * sig;
        da[i] = g * b[i] * (sig * (1.0f + z * (1.0f - sig)));
    }
}

}  // namespace t6
#endif  // HWY_ONCE
