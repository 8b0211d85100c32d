// The optimizer side of training against the official code: the learning-rate schedule, AdamW
// and clip_grad_norm_ semantics, and -- with $T6_SHARED -- one clipped AdamW step on the stored
// gradients and four real training steps of every conformance model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/safetensors.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/lr_schedule.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

// The official get_lr, written out again here in double.
double official_get_lr(int it, double learning_rate, double min_lr, int warmup_iters,
                       int lr_decay_iters) {
    if (it < warmup_iters) return learning_rate * it / warmup_iters;
    if (it > lr_decay_iters) return min_lr;
    double decay_ratio = double(it - warmup_iters) / (lr_decay_iters - warmup_iters);
    double coeff = 0.5 * (1.0 + std::cos(3.14159265358979323846 * decay_ratio));
    return min_lr + coeff * (learning_rate - min_lr);
}

TEST(LrSchedule, MatchesOfficialGetLrAtEveryStep) {
    LrSchedule s;
    s.learning_rate = 6e-4;
    s.min_lr = 6e-5;
    s.warmup_iters = 20;
    s.lr_decay_iters = 200;
    for (int it = 0; it <= 260; it++) {
        const double want = official_get_lr(it, 6e-4, 6e-5, 20, 200);
        EXPECT_NEAR(s.at(it), want, 1e-15 * 6e-4) << "iteration " << it;
    }
    EXPECT_EQ(s.at(0), 0.0);  // official: iteration 0 trains with lr 0
    EXPECT_DOUBLE_EQ(s.at(20), 6e-4);
    EXPECT_DOUBLE_EQ(s.at(200), 6e-5);
    EXPECT_DOUBLE_EQ(s.at(1000), 6e-5);
    s.decay_lr = false;
    EXPECT_DOUBLE_EQ(s.at(0), 6e-4);
    EXPECT_DOUBLE_EQ(s.at(150), 6e-4);
}

TEST(AdamW, MatchesTorchFormulaInDouble) {
    const size_t n = 1000;
    auto p0 = test::random_vector(n, 1, 0.5f);
    std::vector<float> p = p0;
    AdamWConfig cfg;
    AdamW opt(n, cfg);
    std::vector<double> pd(p0.begin(), p0.end()), m(n, 0), v(n, 0);
    const double lr = 1e-2;
    for (int t = 1; t <= 5; t++) {
        auto g = test::random_vector(n, 100 + t, 2.0f);
        opt.step(p.data(), g.data(), lr, 0.5f);
        for (size_t i = 0; i < n; i++) {
            const double gi = double(g[i]) * 0.5;
            pd[i] *= 1 - lr * cfg.weight_decay;
            m[i] = cfg.beta1 * m[i] + (1 - cfg.beta1) * gi;
            v[i] = cfg.beta2 * v[i] + (1 - cfg.beta2) * gi * gi;
            const double denom = std::sqrt(v[i]) / std::sqrt(1 - std::pow(cfg.beta2, t)) + cfg.eps;
            pd[i] -= lr / (1 - std::pow(cfg.beta1, t)) * m[i] / denom;
        }
    }
    EXPECT_EQ(opt.steps_taken(), 5);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = std::max(worst, std::fabs(p[i] - pd[i]));
    EXPECT_LT(worst, 1e-6);
}

TEST(ClipGradNorm, TorchSemantics) {
    std::vector<float> g = {3.0f, 4.0f};  // norm 5
    EXPECT_DOUBLE_EQ(grad_global_norm(g.data(), g.size()), 5.0);
    EXPECT_FLOAT_EQ(clip_coefficient(5.0, 1.0f), 1.0f / (5.0f + 1e-6f));
    EXPECT_EQ(clip_coefficient(0.5, 1.0f), 1.0f);  // clamped to 1, still applied
    EXPECT_EQ(clip_coefficient(5.0, 0.0f), 1.0f);  // grad_clip 0: off
    // Large buffers: the parallel sum equals a sequential double sum closely.
    auto big = test::random_vector(1 << 20, 3);
    double ref = 0;
    for (float x : big) ref += double(x) * x;
    EXPECT_NEAR(grad_global_norm(big.data(), big.size()), std::sqrt(ref), 1e-9 * std::sqrt(ref));
}

class TrainConformance : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        dir_ = test::shared_dir() + "/conformance/" + GetParam();
        if (!fs::exists(dir_ + "/adamw_step.safetensors"))
            T6_SKIP_UNLESS_CI("no conformance vectors in "
                              << dir_ << ": set T6_SHARED to the shared folder");
        cfg_ = load_config_file(dir_ + "/config.json");
    }
    std::string dir_;
    ModelConfig cfg_;
};

// One clipped AdamW step (lr 6e-4, clip 1.0, fresh state) applied to the stored gradients.
TEST_P(TrainConformance, ClippedAdamWStepOnStoredGradients) {
    Model model(cfg_);
    load_weights(model, dir_ + "/weights.safetensors");
    SafeTensorsReader grads(dir_ + "/grads.safetensors");
    for (const auto& s : model.layout().specs)
        grads.read_f32(s.name, model.grads() + s.offset, s.shape);
    SafeTensorsReader io(dir_ + "/io.safetensors");
    const double norm = grad_global_norm(model.grads(), model.num_params());
    const float ref_norm = io.read_f32("grad_norm_preclip")[0];
    EXPECT_LT(std::fabs(norm - ref_norm) / ref_norm, 1e-6);
    const float coef = clip_coefficient(norm, 1.0f);
    EXPECT_LT(std::fabs(coef - io.read_f32("clip_coef")[0]) / coef, 1e-6);
    AdamW opt(model.num_params(), AdamWConfig{});
    opt.step(model.params(), model.grads(), 6e-4, coef);
    SafeTensorsReader after(dir_ + "/adamw_step.safetensors");
    for (const auto& s : model.layout().specs) {
        std::vector<float> ref(s.numel);
        after.read_f32(s.name, ref.data(), s.shape);
        const double e = test::rel_error(model.params() + s.offset, ref.data(), s.numel);
        EXPECT_LE(e, 1e-5) << s.name << ": relative error " << e;
    }
    // The tied alias in the file is the same matrix.
    std::vector<float> head = after.read_f32("lm_head.weight");
    const auto& wte = model.layout().at("transformer.wte.weight");
    EXPECT_LE(test::rel_error(model.params() + wte.offset, head.data(), wte.numel), 1e-5);
}

// Four real steps (constant lr 6e-4, clip 1.0) on the stored batch: losses after 0..4 steps and
// the pre-clip norms of each step.
TEST_P(TrainConformance, FourTrainingSteps) {
    Model model(cfg_);
    load_weights(model, dir_ + "/weights.safetensors");
    SafeTensorsReader io(dir_ + "/io.safetensors");
    const auto& ti = io.info("tokens");
    const int B = int(ti.shape[0]), T = int(ti.shape[1]);
    const auto tokens = io.read_i32("tokens"), targets = io.read_i32("targets");
    const auto ref_losses = io.read_f32("train_losses");
    const auto ref_norms = io.read_f32("train_grad_norms");
    ASSERT_EQ(ref_losses.size(), 5u);
    ASSERT_EQ(ref_norms.size(), 4u);
    AdamW opt(model.num_params(), AdamWConfig{});
    for (int step = 0; step < 4; step++) {
        const StepResult r =
            train_step(model, opt, tokens.data(), targets.data(), B, T, 1, 6e-4, 1.0);
        EXPECT_LT(std::fabs(r.loss - ref_losses[step]) / ref_losses[step], 1e-4)
            << "loss after " << step << " steps: " << r.loss << " vs " << ref_losses[step];
        EXPECT_LT(std::fabs(r.grad_norm - ref_norms[step]) / ref_norms[step], 1e-4)
            << "grad norm at step " << step << ": " << r.grad_norm << " vs " << ref_norms[step];
    }
    const float final_loss = model.forward(tokens.data(), targets.data(), B, T);
    EXPECT_LT(std::fabs(final_loss - ref_losses[4]) / ref_losses[4], 1e-4)
        << "loss after 4 steps: " << final_loss << " vs " << ref_losses[4];
}

INSTANTIATE_TEST_SUITE_P(Official, TrainConformance,
                         ::testing::ValuesIn(test::conformance_models("adamw_step.safetensors")),
                         [](const auto& info) { return info.param; });

}  // namespace
