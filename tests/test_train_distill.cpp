// Distillation loss (train/distill.h): its gradient matches central finite differences, it is
// plain cross-entropy when the teacher agrees with the student or the weight is 0, ignored
// positions contribute nothing, and the weight schedule and config checks behave.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/cross_entropy.h"
#include "test_util.h"
#include "train/distill.h"
#include "train/train_config.h"

namespace t6 {
namespace {

TEST(Distill, GradientMatchesFiniteDifferences) {
    const int N = 4, V = 7;
    auto z = test::random_vector(size_t(N) * V, 1, 2.0f);
    const auto zt = test::random_vector(size_t(N) * V, 2, 2.0f);
    const std::vector<int32_t> y = {3, -1, 0, 6};
    for (const float temp : {1.0f, 2.5f}) {
        const float w = 0.7f, scale = 0.5f;
        std::vector<float> grad(z.size());
        distill_loss_forward_backward(grad.data(), z.data(), zt.data(), y.data(), N, V, w, temp,
                                      scale);
        for (size_t i = 0; i < z.size(); i++) {
            const float h = 1e-2f, z0 = z[i];
            z[i] = z0 + h;
            const double lp = distill_loss_forward_backward(nullptr, z.data(), zt.data(), y.data(),
                                                            N, V, w, temp, 1);
            z[i] = z0 - h;
            const double lm = distill_loss_forward_backward(nullptr, z.data(), zt.data(), y.data(),
                                                            N, V, w, temp, 1);
            z[i] = z0;
            const double fd = scale * (lp - lm) / (2 * h);
            EXPECT_NEAR(grad[i], fd, 2e-4 + 2e-3 * std::fabs(fd)) << "i=" << i << " T=" << temp;
        }
        for (int v = 0; v < V; v++) EXPECT_EQ(grad[size_t(1) * V + v], 0.0f);  // ignored row
    }
}

TEST(Distill, IsCrossEntropyWhenTeacherAgreesOrWeightIsZero) {
    const int N = 3, V = 5;
    const auto z = test::random_vector(size_t(N) * V, 3, 1.5f);
    const auto zt = test::random_vector(size_t(N) * V, 4, 1.5f);
    const std::vector<int32_t> y = {1, 4, 2};
    std::vector<float> g_ce(z.size()), g(z.size());
    const float ce =
        cross_entropy_forward_backward(g_ce.data(), nullptr, z.data(), y.data(), N, V, 1.0f);
    double kl = -1;
    const float same = distill_loss_forward_backward(g.data(), z.data(), z.data(), y.data(), N, V,
                                                     0.9f, 2.0f, 1.0f, &kl);
    EXPECT_NEAR(same, ce, 1e-5);
    EXPECT_NEAR(kl, 0.0, 1e-9);
    for (size_t i = 0; i < g.size(); i++) EXPECT_NEAR(g[i], g_ce[i], 1e-6);
    const float w0 = distill_loss_forward_backward(g.data(), z.data(), zt.data(), y.data(), N, V,
                                                   0.0f, 1.0f, 1.0f, &kl);
    EXPECT_NEAR(w0, ce, 1e-5);
    EXPECT_GT(kl, 0.0);  // a different teacher: positive KL
    const float w1 = distill_loss_forward_backward(nullptr, z.data(), zt.data(), y.data(), N, V,
                                                   1.0f, 1.0f, 1.0f);
    EXPECT_NEAR(w1, ce + kl, 1e-5);
}

TEST(Distill, WeightSchedule) {
    EXPECT_DOUBLE_EQ(distill_weight_at("constant", 0.5, 70, 100), 0.5);
    EXPECT_DOUBLE_EQ(distill_weight_at("linear", 0.5, 0, 100), 0.5);
    EXPECT_DOUBLE_EQ(distill_weight_at("linear", 0.5, 50, 100), 0.25);
    EXPECT_DOUBLE_EQ(distill_weight_at("linear", 0.5, 100, 100), 0.0);
}

TEST(Distill, ConfigKeysAreChecked) {
    TrainSetup s;
    s.model.block_size = 256;
    apply_train_override(s, "distill_temperature=0", false);
    EXPECT_THROW(validate_train_setup(s, "cfg"), Error);
    apply_train_override(s, "distill_temperature=2", false);
    apply_train_override(s, "distill_schedule=cosine", false);
    EXPECT_THROW(validate_train_setup(s, "cfg"), Error);
    apply_train_override(s, "distill_schedule=linear", false);
    apply_train_override(s, "distill_weight=-1", false);
    EXPECT_THROW(validate_train_setup(s, "cfg"), Error);
    apply_train_override(s, "distill_weight=0.5", false);
    EXPECT_NO_THROW(validate_train_setup(s, "cfg"));
}

}  // namespace
}  // namespace t6
