// Knowledge distillation for recovery training (t6 train distill_from=CKPT; used after
// t6 convert, docs/convert-to-tpa.md). The student's loss is
//   CE(student) + w * T^2 * KL( softmax(z_teacher / T) || softmax(z_student / T) )
// averaged over the positions with a target (Hinton et al.: the T^2 keeps the soft term's
// gradient scale independent of T). Its gradient with respect to the student logits z is
//   (softmax(z) - onehot(y)) / n  +  w * T * (softmax(z / T) - softmax(z_teacher / T)) / n.
// The weight w follows its own schedule over the run: constant, or linear decay to 0 at max_iters.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/model.h"

namespace t6 {

// One batch: logits and teacher_logits (N, V), targets (N) with -1 = ignored. Returns the mean
// loss above; when dlogits is non-null writes (=) grad_scale * d(loss)/d(logits) into it (it may
// alias logits). kl_out (if non-null) receives the mean KL term (before w * T^2).
float distill_loss_forward_backward(float* dlogits, const float* logits,
                                    const float* teacher_logits, const int32_t* targets, int N,
                                    int V, float weight, float temperature, float grad_scale,
                                    double* kl_out = nullptr);

// The distillation weight at `step` of `max_iters`: schedule "constant" or "linear".
double distill_weight_at(const std::string& schedule, double weight, long long step,
                         long long max_iters);

// The teacher of a run: loads the checkpoint (same vocabulary as the student, fails naming the
// file otherwise) and installs the distillation loss on the student for each step.
class DistillTeacher {
  public:
    DistillTeacher(const std::string& checkpoint, const Model& student, double weight,
                   double temperature, std::string schedule);
    // Sets the student's loss function for the step `step` of `max_iters`.
    void attach(Model& student, long long step, long long max_iters);
    double last_kl() const { return last_kl_; }

  private:
    std::unique_ptr<Model> teacher_;
    double weight_, temperature_;
    std::string schedule_;
    double last_kl_ = 0;
};

}  // namespace t6
