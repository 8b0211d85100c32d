// Conformance with the official PyTorch code: for every model folder in
// $T6_SHARED/conformance (the official model files run on random weights), t6's logits, loss and
// every parameter gradient must match within relative error 1e-4 (norm of the difference over
// the norm of the reference, per tensor).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

constexpr double kTol = 1e-4;

class Conformance : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        dir_ = test::shared_dir() + "/conformance/" + GetParam();
        if (!fs::exists(dir_ + "/config.json"))
            T6_SKIP_UNLESS_CI("no conformance vectors in "
                              << dir_ << ": set T6_SHARED to the shared folder");
        cfg_ = load_config_file(dir_ + "/config.json");
    }
    std::string dir_;
    ModelConfig cfg_;
};

TEST_P(Conformance, LogitsLossAndGradients) {
    Model model(cfg_);
    load_weights(model, dir_ + "/weights.safetensors");
    SafeTensorsReader io(dir_ + "/io.safetensors");
    auto tok_info = io.info("tokens");
    const int B = int(tok_info.shape[0]), T = int(tok_info.shape[1]);
    std::vector<int32_t> tokens = io.read_i32("tokens"), targets = io.read_i32("targets"),
                         masked = io.read_i32("targets_masked");

    // Logits and loss.
    float loss = model.forward(tokens.data(), targets.data(), B, T);
    std::vector<float> ref_logits = io.read_f32("logits");
    const size_t n = ref_logits.size();
    double err = test::rel_error(model.logits(), ref_logits.data(), n);
    std::printf("%s: logits rel error %.3g, max abs diff %.3g\n", GetParam().c_str(), err,
                test::max_abs_diff(model.logits(), ref_logits.data(), n));
    EXPECT_LT(err, kTol) << "logits relative error " << err << " (max abs diff "
                         << test::max_abs_diff(model.logits(), ref_logits.data(), n) << ")";
    float ref_loss = io.read_f32("loss")[0];
    EXPECT_LT(std::fabs(loss - ref_loss) / ref_loss, kTol) << loss << " vs " << ref_loss;
    float loss_m = model.forward(tokens.data(), masked.data(), B, T);
    float ref_loss_m = io.read_f32("loss_masked")[0];
    EXPECT_LT(std::fabs(loss_m - ref_loss_m) / ref_loss_m, kTol) << loss_m << " vs " << ref_loss_m;

    // Gradients of the mean cross-entropy (unclipped), every parameter.
    model.zero_grad();
    float loss_fb = model.forward_backward(tokens.data(), targets.data(), B, T);
    EXPECT_LT(std::fabs(loss_fb - ref_loss) / ref_loss, kTol);
    SafeTensorsReader grads(dir_ + "/grads.safetensors");
    double sumsq = 0, worst = 0;
    std::string worst_name;
    for (const auto& s : model.layout().specs) {
        std::vector<float> ref(s.numel);
        grads.read_f32(s.name, ref.data(), s.shape);
        const float* g = model.grads() + s.offset;
        double e = test::rel_error(g, ref.data(), s.numel);
        EXPECT_LT(e, kTol) << s.name << ": gradient relative error " << e;
        if (e > worst) worst = e, worst_name = s.name;
        for (size_t i = 0; i < s.numel; i++) sumsq += double(g[i]) * g[i];
    }
    std::printf("%s: loss %.7f (official %.7f), worst gradient rel error %.3g (%s)\n",
                GetParam().c_str(), loss, ref_loss, worst, worst_name.c_str());
    float ref_norm = io.read_f32("grad_norm_preclip")[0];
    EXPECT_LT(std::fabs(std::sqrt(sumsq) - ref_norm) / ref_norm, kTol);
}

TEST_P(Conformance, WeightsRoundTripThroughT6Checkpoint) {
    Model model(cfg_);
    load_weights(model, dir_ + "/weights.safetensors");
    test::TempDir tmp;
    save_weights(tmp.file("model.safetensors"), model);
    auto loaded = load_model(tmp.file("model.safetensors"));
    ASSERT_EQ(loaded->num_params(), model.num_params());
    EXPECT_EQ(0, std::memcmp(loaded->params(), model.params(), model.num_params() * 4));
    EXPECT_EQ(loaded->config().to_json(), model.config().to_json());
}

INSTANTIATE_TEST_SUITE_P(Official, Conformance,
                         ::testing::ValuesIn(test::conformance_models("config.json")),
                         [](const auto& info) { return info.param; });

}  // namespace
