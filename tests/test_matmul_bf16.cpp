// The bf16 matmul precision (kernels/gemm.h) against float32, the reference:
//   - the GEMM computes exactly the product of the bf16-rounded inputs (float32 accumulation),
//     for every transpose, stride, alpha and beta;
//   - bf16 rounding is round-to-nearest-even, NaN stays NaN;
//   - a whole model's loss, logits and gradients stay within stated bf16 tolerances of float32;
//   - training in bf16 follows the float32 loss curve.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/gemm.h"
#include "model/model.h"
#include "test_train_util.h"
#include "test_util.h"
#include "train/adamw.h"
#include "train/trainer.h"

using namespace t6;

namespace {

float from_bf16(uint16_t h) {
    const uint32_t u = uint32_t(h) << 16;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}

float round_bf16(float x) {
    uint16_t h;
    to_bf16(&h, &x, 1);
    return from_bf16(h);
}

// ref = alpha * op(A) op(B) + beta * C in double, from the given (already rounded or not) inputs.
std::vector<float> reference(bool ta, bool tb, int M, int N, int K, float alpha,
                             const std::vector<float>& A, int lda, const std::vector<float>& B,
                             int ldb, float beta, std::vector<float> C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += double(ta ? A[size_t(k) * lda + i] : A[size_t(i) * lda + k]) *
                     (tb ? B[size_t(j) * ldb + k] : B[size_t(k) * ldb + j]);
            C[size_t(i) * ldc + j] = float(alpha * s + beta * double(C[size_t(i) * ldc + j]));
        }
    return C;
}

}  // namespace

TEST(MatmulBf16, RoundingIsNearestEvenAndKeepsSpecialValues) {
    // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
    EXPECT_EQ(round_bf16(1.0f + std::ldexp(1.0f, -8)), 1.0f);
    // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
    EXPECT_EQ(round_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 1.0f + std::ldexp(1.0f, -6));
    EXPECT_EQ(round_bf16(1.0f + 3 * std::ldexp(1.0f, -9)), 1.0f + std::ldexp(1.0f, -7));
    EXPECT_EQ(round_bf16(-2.5f), -2.5f);
    EXPECT_TRUE(std::isnan(round_bf16(std::numeric_limits<float>::quiet_NaN())));
    EXPECT_EQ(round_bf16(std::numeric_limits<float>::infinity()),
              std::numeric_limits<float>::infinity());
    // The vectorised and the scalar tail paths agree on many values (lengths not multiples of 16).
    auto x = test::random_vector(1000, 7, 100.0f);
    std::vector<uint16_t> all(x.size());
    to_bf16(all.data(), x.data(), x.size());
    for (size_t i = 0; i < x.size(); i++) {
        uint16_t one;
        to_bf16(&one, &x[i], 1);
        ASSERT_EQ(all[i], one) << "element " << i;
        EXPECT_LE(std::fabs(from_bf16(one) - x[i]), std::fabs(x[i]) * std::ldexp(1.0f, -8));
    }
}

TEST(MatmulBf16, EqualsTheProductOfRoundedInputsForAllTransposesAndStrides) {
    const int M = 160, N = 144, K = 200;  // M*N*K above the size where bf16 takes over
    for (bool ta : {false, true})
        for (bool tb : {false, true}) {
            const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
            auto A = test::random_vector(size_t(ta ? K : M) * lda, 11);
            auto B = test::random_vector(size_t(tb ? N : K) * ldb, 12);
            auto C0 = test::random_vector(size_t(M) * ldc, 13);
            std::vector<float> Ar(A), Br(B);
            for (auto& v : Ar) v = round_bf16(v);
            for (auto& v : Br) v = round_bf16(v);
            const auto ref_rounded =
                reference(ta, tb, M, N, K, 0.5f, Ar, lda, Br, ldb, 0.75f, C0, ldc);
            const auto ref_f32 = reference(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.75f, C0, ldc);

            std::vector<float> C = C0;
            {
                const ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
                EXPECT_EQ(matmul_precision(), MatmulPrecision::bf16);
                gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.75f, C.data(), ldc);
            }
            EXPECT_EQ(matmul_precision(), MatmulPrecision::f32);
            // Exactly the rounded inputs' product, up to float32 accumulation order.
            EXPECT_LT(test::rel_error(C.data(), ref_rounded.data(), C.size()), 1e-6)
                << "ta=" << ta << " tb=" << tb;
            // ... and visibly not the float32 product: the bf16 path really ran.
            EXPECT_GT(test::rel_error(C.data(), ref_f32.data(), C.size()), 1e-5);
            EXPECT_LT(test::rel_error(C.data(), ref_f32.data(), C.size()), 1e-2);

            // The same product with A handed over already rounded.
            const int a_rows = ta ? K : M, a_cols = ta ? M : K;
            std::vector<uint16_t> Ab(size_t(a_rows) * lda);
            for (int r = 0; r < a_rows; r++)
                to_bf16(&Ab[size_t(r) * lda], &A[size_t(r) * lda], a_cols);
            std::vector<float> C2 = C0;
            gemm_bf16_a(ta, tb, M, N, K, 0.5f, Ab.data(), lda, B.data(), ldb, 0.75f, C2.data(),
                        ldc);
            EXPECT_LT(test::rel_error(C2.data(), ref_rounded.data(), C2.size()), 1e-6);
        }
}

TEST(MatmulBf16, SmallAndOneRowProductsStayFloat32) {
    const ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
    for (int M : {1, 8}) {
        const int N = 40, K = 50;
        auto A = test::random_vector(size_t(M) * K, 21), B = test::random_vector(size_t(N) * K, 22);
        std::vector<float> C(size_t(M) * N, 0.0f);
        gemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C.data(), N);
        const auto ref = reference(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        EXPECT_LT(test::rel_error(C.data(), ref.data(), C.size()), 1e-6) << "M=" << M;
    }
}

TEST(MatmulBf16, ParsesPrecisionNames) {
    EXPECT_EQ(parse_matmul_precision("bf16", "x"), MatmulPrecision::bf16);
    EXPECT_EQ(parse_matmul_precision("f32", "x"), MatmulPrecision::f32);
    try {
        parse_matmul_precision("fp8", "config.json: key 'matmul_precision'");
        FAIL() << "no error";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("config.json: key 'matmul_precision'"),
                  std::string::npos);
        EXPECT_NE(std::string(e.what()).find("fp8"), std::string::npos);
    }
}

namespace {

// A model big enough that its products take the bf16 path (d_model 128, 256 tokens a step).
ModelConfig bf16_test_model(const char* attention) {
    nlohmann::json j = {{"attention", attention}, {"vocab_size", 512}, {"n_layer", 2},
                        {"n_embd", 128},          {"n_head", 4},       {"head_dim", 32},
                        {"block_size", 64}};
    if (std::string(attention) == "tpa") {
        j["q_rank"] = 6;
        j["rank"] = 2;
    }
    return config_from_json(j, "bf16 test model");
}

}  // namespace

TEST(MatmulBf16, ModelLossLogitsAndGradientsStayCloseToFloat32) {
    for (const char* kind : {"tpa", "mha"}) {
        const ModelConfig cfg = bf16_test_model(kind);
        const int B = 4, T = 64;
        std::mt19937 rng(5);
        std::uniform_int_distribution<int> tok(0, cfg.vocab_size - 1);
        std::vector<int32_t> x(B * T), y(B * T);
        for (auto& t : x) t = tok(rng);
        for (auto& t : y) t = tok(rng);

        Model ref(cfg), fast(cfg);
        ref.init_weights(3);
        fast.init_weights(3);
        fast.set_matmul_precision(MatmulPrecision::bf16);
        const float l_ref = ref.forward(x.data(), y.data(), B, T);
        const float l_fast = fast.forward(x.data(), y.data(), B, T);
        const size_t NV = size_t(B) * T * cfg.vocab_size;
        const double logits_err = test::rel_error(fast.logits(), ref.logits(), NV);
        EXPECT_LT(logits_err, 2e-2) << kind;
        EXPECT_GT(logits_err, 1e-6) << kind << ": bf16 products did not run";
        EXPECT_NEAR(l_fast, l_ref, 2e-3 * l_ref) << kind;

        ref.zero_grad();
        fast.zero_grad();
        ref.forward_backward(x.data(), y.data(), B, T);
        fast.forward_backward(x.data(), y.data(), B, T);
        for (const auto& spec : ref.layout().specs) {
            const double e =
                test::rel_error(fast.grads() + spec.offset, ref.grads() + spec.offset, spec.numel);
            EXPECT_LT(e, 5e-2) << kind << " gradient of " << spec.name;
        }
        EXPECT_LT(test::rel_error(fast.grads(), ref.grads(), ref.num_params()), 2e-2) << kind;
    }
}

TEST(MatmulBf16, TrainingFollowsTheFloat32LossCurve) {
    const ModelConfig cfg = bf16_test_model("tpa");
    const int B = 4, T = 64;
    const auto stream = test::repetitive_tokens(size_t(B) * T + 1, cfg.vocab_size, 9);
    std::vector<int32_t> x(B * T), y(B * T);
    for (int i = 0; i < B * T; i++) {
        x[i] = stream[i];
        y[i] = stream[i + 1];
    }
    Model ref(cfg), fast(cfg);
    ref.init_weights(4);
    fast.init_weights(4);
    fast.set_matmul_precision(MatmulPrecision::bf16);
    AdamW oref(ref.num_params(), {}), ofast(fast.num_params(), {});
    float first = 0, last_ref = 0, last_fast = 0;
    for (int step = 0; step < 30; step++) {
        const StepResult a = train_step(ref, oref, x.data(), y.data(), B, T, 1, 3e-3, 1.0);
        const StepResult b = train_step(fast, ofast, x.data(), y.data(), B, T, 1, 3e-3, 1.0);
        if (step == 0) first = a.loss;
        EXPECT_NEAR(b.loss, a.loss, 0.03 * a.loss + 0.05) << "step " << step;
        last_ref = a.loss;
        last_fast = b.loss;
    }
    EXPECT_LT(last_ref, 0.5f * first);
    EXPECT_LT(last_fast, 0.5f * first);
}
