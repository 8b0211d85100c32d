#include "train/adamw.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace t6 {

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
        // Four float lanes of double accumulators let the compiler vectorise the loop.
        double acc = 0.0;
#pragma omp simd reduction(+ : acc)
        for (size_t i = lo; i < hi; i++) acc += double(g[i]) * double(g[i]);
        partial[size_t(t) * 8] = acc;
    }
    double total = 0.0;
    for (int t = 0; t < nt; t++) total += partial[size_t(t) * 8];
    return std::sqrt(total);
}

float clip_coefficient(double total_norm, float max_norm) {
    if (!(max_norm > 0.0f)) return 1.0f;
    // torch: clip_coef = max_norm / (total_norm + 1e-6) with total_norm a float32 tensor;
    // clip_coef_clamped = torch.clamp(clip_coef, max=1.0); grads.mul_(clip_coef_clamped).
    const float total = float(total_norm);
    const float coef = max_norm / (total + 1e-6f);
    return coef < 1.0f ? coef : 1.0f;
}

AdamW::AdamW(size_t n, const AdamWConfig& cfg) : cfg_(cfg), m_(n), v_(n) {}

void AdamW::step(float* p, const float* g, double lr, float grad_scale) {
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
    const float decay = float(1.0 - lr * cfg_.weight_decay);
    const float beta1 = float(b1), beta2 = float(b2);
    const float one_m_b1 = float(1.0 - b1), one_m_b2 = float(1.0 - b2);
    const float neg_step_size = float(-lr / (1.0 - std::pow(b1, double(t_))));
    const float bc2_sqrt = float(std::sqrt(1.0 - std::pow(b2, double(t_))));
    const float eps = float(cfg_.eps);
    float* __restrict m = m_.data();
    float* __restrict v = v_.data();
    const long long n = (long long)m_.size();
#pragma omp parallel for simd schedule(static)
    for (long long i = 0; i < n; i++) {
        const float gi = g[i] * grad_scale;
        const float pi = p[i] * decay;
        const float mi = m[i] * beta1 + one_m_b1 * gi;
        const float vi = v[i] * beta2 + one_m_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        // addcdiv: self + value * t1 / t2, evaluated left to right as torch's CPU kernel.
        p[i] = pi + neg_step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
    }
}

}  // namespace t6
