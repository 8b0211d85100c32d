#include "train/distill.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "model/checkpoint.h"

namespace t6 {

float distill_loss_forward_backward(float* dlogits, const float* logits,
                                    const float* teacher_logits, const int32_t* targets, int N,
                                    int V, float weight, float temperature, float grad_scale,
                                    double* kl_out) {
    int n_valid = 0;
    for (int i = 0; i < N; i++) n_valid += targets[i] >= 0;
    const double inv_t = 1.0 / temperature;
    const double inv_n = n_valid > 0 ? 1.0 / n_valid : 0.0;
    std::vector<double> ps(static_cast<size_t>(V)), qs(static_cast<size_t>(V)),
        pt(static_cast<size_t>(V));
    double ce_sum = 0, kl_sum = 0;
    for (int i = 0; i < N; i++) {
        const float* z = logits + size_t(i) * V;
        const float* zt = teacher_logits + size_t(i) * V;
        float* dz = dlogits ? dlogits + size_t(i) * V : nullptr;
        const int y = targets[i];
        if (y < 0) {
            if (dz) std::fill(dz, dz + V, 0.0f);
            continue;
        }
        // Softmax of z (for CE), of z/T and of z_teacher/T, each with its max subtracted.
        auto softmax = [&](const float* a, double scale, std::vector<double>& out) {
            double mx = a[0];
            for (int v = 1; v < V; v++) mx = std::max(mx, double(a[v]));
            double s = 0;
            for (int v = 0; v < V; v++) s += out[v] = std::exp((a[v] - mx) * scale);
            for (int v = 0; v < V; v++) out[v] /= s;
            return mx * scale + std::log(s);  // log-sum-exp of a * scale
        };
        const double lse = softmax(z, 1.0, ps);
        const double lse_s = softmax(z, inv_t, qs);
        const double lse_t = softmax(zt, inv_t, pt);
        ce_sum += lse - z[y];
        double kl = 0;
        for (int v = 0; v < V; v++)
            if (pt[v] > 0) kl += pt[v] * ((zt[v] * inv_t - lse_t) - (z[v] * inv_t - lse_s));
        kl_sum += kl;
        if (dz) {
            const double a = grad_scale * inv_n, b = grad_scale * inv_n * weight * temperature;
            for (int v = 0; v < V; v++)
                dz[v] = float(a * (ps[v] - (v == y ? 1.0 : 0.0)) + b * (qs[v] - pt[v]));
        }
    }
    if (kl_out) *kl_out = kl_sum * inv_n;
    return float((ce_sum + double(weight) * temperature * temperature * kl_sum) * inv_n);
}

double distill_weight_at(const std::string& schedule, double weight, long long step,
                         long long max_iters) {
    if (schedule == "linear")
        return max_iters > 0 ? weight * std::max(0.0, 1.0 - double(step) / double(max_iters)) : 0;
    return weight;
}

DistillTeacher::DistillTeacher(const std::string& checkpoint, const Model& student, double weight,
                               double temperature, std::string schedule)
    : weight_(weight), temperature_(temperature), schedule_(std::move(schedule)) {
    teacher_ = load_model(checkpoint);
    if (teacher_->config().vocab_size != student.config().vocab_size)
        fail("distill_from ", checkpoint, ": the teacher's vocabulary (",
             teacher_->config().vocab_size, ") differs from the student's (",
             student.config().vocab_size, ")");
    teacher_->set_matmul_precision(student.matmul_precision());
}

void DistillTeacher::attach(Model& student, long long step, long long max_iters) {
    const float w = float(distill_weight_at(schedule_, weight_, step, max_iters));
    const float temp = float(temperature_);
    const int V = student.config().vocab_size;
    student.set_loss_fn([this, w, temp, V](const int32_t* tokens, const int32_t* targets,
                                           float* logits, int B, int T, float grad_scale) {
        teacher_->forward(tokens, nullptr, B, T);
        return distill_loss_forward_backward(logits, logits, teacher_->logits(), targets, B * T, V,
                                             w, temp, grad_scale, &last_kl_);
    });
}

}  // namespace t6
