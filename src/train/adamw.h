// AdamW and gradient-norm clipping with the official semantics (train_adam.py uses
// torch.optim.AdamW with one parameter group, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on
// every parameter, after torch.nn.utils.clip_grad_norm_). Both work on the model's flat
// parameter and gradient buffers in one vectorised OpenMP pass each.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/buffer.h"

namespace t6 {

// Python floats in the official code, hence double; rounded to float32 where torch rounds them.
struct AdamWConfig {
    double beta1 = 0.9;
    double beta2 = 0.95;
    double eps = 1e-8;
    double weight_decay = 0.1;
};

// L2 norm of the whole gradient (torch clip_grad_norm_'s total_norm: the norm of the
// per-parameter norms equals the norm over all elements), accumulated in double. The summation
// order is fixed for a given thread count, so the result is reproducible.
double grad_global_norm(const float* g, size_t n);

// torch clip_grad_norm_(max_norm): coef = max_norm / (total_norm + 1e-6), clamped to <= 1,
// computed in float32 as torch does. The gradient is multiplied by it ALWAYS (also when no
// clipping happens; then coef is 1 or just below it). max_norm <= 0 means no clipping (1).
float clip_coefficient(double total_norm, float max_norm);

class AdamW {
  public:
    AdamW(size_t n, const AdamWConfig& cfg);

    // One step on p[0..n) with gradient grad_scale * g (grad_scale carries the clip
    // coefficient, so clipping and the update are one pass and g is left unchanged).
    void step(float* p, const float* g, double lr, float grad_scale = 1.0f);
    // The same update as one plain single-threaded loop: the reference the SIMD targets are
    // tested against (they give the same bits).
    void step_reference(float* p, const float* g, double lr, float grad_scale = 1.0f);

    const AdamWConfig& config() const { return cfg_; }
    size_t size() const { return m_.size(); }
    long long steps_taken() const { return t_; }
    void set_steps_taken(long long t) { t_ = t; }
    float* exp_avg() { return m_.data(); }     // m
    float* exp_avg_sq() { return v_.data(); }  // v
    const float* exp_avg() const { return m_.data(); }
    const float* exp_avg_sq() const { return v_.data(); }

  private:
    void step_impl(float* p, const float* g, double lr, float grad_scale, bool reference);

    AdamWConfig cfg_;
    FloatBuffer m_, v_;
    long long t_ = 0;
};

}  // namespace t6
