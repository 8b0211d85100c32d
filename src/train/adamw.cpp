// AdamW (torch.optim.AdamW semantics, see adamw.h) and the global gradient norm. The update is a
// Google Highway loop compiled for AVX-512, AVX2 and scalar and chosen at run time
// (core/simd.h); it writes torch's operations in torch's order (the compiler may still fuse a
// multiply and an add), AdamW::step_reference is the plain loop the tests compare it against:
//   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)   (docs/numerics.md §19).
#include "train/adamw.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)

#ifndef T6_TRAIN_ADAMW_COMMON_
#define T6_TRAIN_ADAMW_COMMON_
namespace t6 {
// The scalars of one step, rounded to float32 as torch rounds them.
struct AdamWScalars {
    float grad_scale, decay, beta1, beta2, one_m_b1, one_m_b2, neg_step_size, bc2_sqrt, eps;
};
}  // namespace t6
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "train/adamw.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Elements [i0, i1).
void AdamWRange(float* HWY_RESTRICT p, const float* HWY_RESTRICT g, float* HWY_RESTRICT m,
                float* HWY_RESTRICT v, size_t i0, size_t i1, const AdamWScalars& k) {
    const hn::ScalableTag<float> d;
    const size_t N = hn::Lanes(d);
    const auto gs = hn::Set(d, k.grad_scale), decay = hn::Set(d, k.decay);
    const auto b1 = hn::Set(d, k.beta1), b2 = hn::Set(d, k.beta2);
    const auto omb1 = hn::Set(d, k.one_m_b1), omb2 = hn::Set(d, k.one_m_b2);
    const auto nss = hn::Set(d, k.neg_step_size), bc2 = hn::Set(d, k.bc2_sqrt);
    const auto eps = hn::Set(d, k.eps);
    // One vector of elements. Every element goes through this same instruction sequence (the
    // tail too, through a padded copy), so a parameter's update does not depend on where its
    // range starts: ZeRO-1's sharded steps equal the whole step bit for bit.
    auto step = [&](float* HWY_RESTRICT pp, const float* HWY_RESTRICT gp, float* HWY_RESTRICT mp,
                    float* HWY_RESTRICT vp) HWY_ATTR {
        const auto gi = hn::Mul(hn::LoadU(d, gp), gs);
        const auto pi = hn::Mul(hn::LoadU(d, pp), decay);
        const auto mi = hn::Add(hn::Mul(hn::LoadU(d, mp), b1), hn::Mul(omb1, gi));
        const auto vi = hn::Add(hn::Mul(hn::LoadU(d, vp), b2), hn::Mul(hn::Mul(omb2, gi), gi));
        hn::StoreU(mi, d, mp);
        hn::StoreU(vi, d, vp);
        const auto denom = hn::Add(hn::Div(hn::Sqrt(vi), bc2), eps);
        hn::StoreU(hn::Add(pi, hn::Div(hn::Mul(nss, mi), denom)), d, pp);
    };
    size_t i = i0;
    for (; i + N <= i1; i += N) step(p + i, g + i, m + i, v + i);
    if (i < i1) {
        constexpr size_t kMax = HWY_MAX_BYTES / sizeof(float);
        alignas(64) float tp[kMax] = {}, tg[kMax] = {}, tm[kMax] = {}, tv[kMax] = {};
        const size_t r = i1 - i;
        std::copy(p + i, p + i1, tp);
        std::copy(g + i, g + i1, tg);
        std::copy(m + i, m + i1, tm);
        std::copy(v + i, v + i1, tv);
        step(tp, tg, tm, tv);
        std::copy(tp, tp + r, p + i);
        std::copy(tm, tm + r, m + i);
        std::copy(tv, tv + r, v + i);
    }
}

// The sum of g[i]^2 over [i0, i1) in double: the floats widened to double lanes and summed in
// four independent accumulators (one would wait on the add latency), then the remainder.
double SumSquaresRange(const float* HWY_RESTRICT g, size_t i0, size_t i1) {
    const hn::ScalableTag<double> dd;
    const hn::Rebind<float, decltype(dd)> df;  // half a vector of floats, one per double lane
    const size_t N = hn::Lanes(dd);
    auto a0 = hn::Zero(dd), a1 = hn::Zero(dd), a2 = hn::Zero(dd), a3 = hn::Zero(dd);
    size_t i = i0;
    for (; i + 4 * N <= i1; i += 4 * N) {
        const auto x0 = hn::PromoteTo(dd, hn::LoadU(df, g + i));
        const auto x1 = hn::PromoteTo(dd, hn::LoadU(df, g + i + N));
        const auto x2 = hn::PromoteTo(dd, hn::LoadU(df, g + i + 2 * N));
        const auto x3 = hn::PromoteTo(dd, hn::LoadU(df, g + i + 3 * N));
        a0 = hn::MulAdd(x0, x0, a0);
        a1 = hn::MulAdd(x1, x1, a1);
        a2 = hn::MulAdd(x2, x2, a2);
        a3 = hn::MulAdd(x3, x3, a3);
    }
    double acc = hn::GetLane(hn::SumOfLanes(dd, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
    for (; i < i1; i++) acc += double(g[i]) * double(g[i]);
    return acc;
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace t6 {

HWY_EXPORT(AdamWRange);
HWY_EXPORT(SumSquaresRange);

double grad_global_norm(const float* g, size_t n) {
    // Static schedule: each thread sums a fixed contiguous block, and the partial sums are added
    // in thread order, so the result depends only on n and the thread count.
    const int nt = omp_get_max_threads();
    std::vector<double> partial(size_t(nt) * 8, 0.0);  // 8 apart: no false sharing
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), k = omp_get_num_threads();
        const size_t chunk = (n + size_t(k) - 1) / size_t(k);
        const size_t lo = std::min(n, chunk * size_t(t)), hi = std::min(n, lo + chunk);
        partial[size_t(t) * 8] = HWY_DYNAMIC_DISPATCH(SumSquaresRange)(g, lo, hi);
    }
    double total = 0.0;
    for (int t = 0; t < nt; t++) total += partial[size_t(t) * 8];
    return std::sqrt(total);
}

float clip_coefficient(double total_norm, float max_norm) {
    if (!(max_norm > 0.0f)) return 1.0f;
    // torch: clip_coef = max_norm / (total_norm + 1e-6) with total_norm a float32 tensor;
    // clip_coef_clamped = torch.clamp(clip_coef, max=1.0); grads.mul_(clip_coef_clamped)
    // (docs/numerics.md §18).
    const float total = float(total_norm);
    const float coef = max_norm / (total + 1e-6f);
    return coef < 1.0f ? coef : 1.0f;
}

AdamW::AdamW(size_t n, const AdamWConfig& cfg) : cfg_(cfg) {
    m_.resize(n, true);
    v_.resize(n, true);
}

void AdamW::step(float* p, const float* g, double lr, float grad_scale) {
    step_impl(p, g, lr, grad_scale, false);
}

void AdamW::step_reference(float* p, const float* g, double lr, float grad_scale) {
    step_impl(p, g, lr, grad_scale, true);
}

void AdamW::step_impl(float* p, const float* g, double lr, float grad_scale, bool reference) {
    t_ += 1;
    // torch.optim.AdamW, single-tensor path (torch/optim/adamw.py, _single_tensor_adamw):
    //   param.mul_(1 - lr * weight_decay)
    //   exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    //   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    //   step_size = lr / (1 - beta1 ** step)
    //   denom = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** step)).add_(eps)
    //   param.addcdiv_(exp_avg, denom, value=-step_size)
    // The Python scalars are computed in double and rounded to float32 when they meet the
    // float32 tensors, as here.
    const double b1 = cfg_.beta1, b2 = cfg_.beta2;
    AdamWScalars k;
    k.grad_scale = grad_scale;
    k.decay = float(1.0 - lr * cfg_.weight_decay);
    k.beta1 = float(b1);
    k.beta2 = float(b2);
    k.one_m_b1 = float(1.0 - b1);
    k.one_m_b2 = float(1.0 - b2);
    k.neg_step_size = float(-lr / (1.0 - std::pow(b1, double(t_))));
    k.bc2_sqrt = float(std::sqrt(1.0 - std::pow(b2, double(t_))));
    k.eps = float(cfg_.eps);
    float* __restrict m = m_.data();
    float* __restrict v = v_.data();
    const size_t n = m_.size();
    if (reference) {
        for (size_t i = 0; i < n; i++) {
            const float gi = g[i] * k.grad_scale;
            const float pi = p[i] * k.decay;
            const float mi = m[i] * k.beta1 + k.one_m_b1 * gi;
            const float vi = v[i] * k.beta2 + k.one_m_b2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            // addcdiv: self + value * t1 / t2, evaluated left to right as torch's CPU kernel.
            p[i] = pi + k.neg_step_size * mi / (std::sqrt(vi) / k.bc2_sqrt + k.eps);
        }
        return;
    }
    constexpr size_t kChunk = 8192;  // elements per OpenMP work item
    const long nchunks = long((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < nchunks; c++) {
        const size_t i0 = size_t(c) * kChunk, i1 = std::min(n, i0 + kChunk);
        HWY_DYNAMIC_DISPATCH(AdamWRange)(p, g, m, v, i0, i1, k);
    }
}

}  // namespace t6
#endif  // HWY_ONCE
