// Quantized weights (kernels/quant.h, model/quantize.h):
//   - q8 / q4 quantization is within half a step of the weights, all-zero and constant blocks are
//     exact, partial blocks (rows not a multiple of 32) work;
//   - the quantized linear layer equals the scalar reference over the same codes (<= 1e-5
//     relative) on every SIMD target, for the register tilings (N = 1, 2, 3, 5, 16), the
//     dequantize-then-GEMM path (N > 16), partial blocks, odd row counts, beta 0 and 1;
//   - decoding from q8 / q4 weights equals the full forward of the dequantized model (<= 1e-4)
//     for every attention kind, prefill chunks and steps, on every SIMD target.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/simd.h"
#include "infer/decoder.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "model/quantize.h"
#include "test_models.h"
#include "test_util.h"

using namespace t6;

namespace {

std::vector<float> quant_input(int rows, int cols, unsigned seed) {
    auto w = test::random_vector(size_t(rows) * cols, seed);
    // An all-zero block and a constant one (row 0), both must come back exactly.
    for (int c = 0; c < std::min(cols, 32); c++) w[c] = 0.0f;
    if (cols >= 64)
        for (int c = 32; c < 64; c++) w[c] = 0.375f;
    return w;
}

TEST(QuantFormat, DequantizedWithinHalfAStep) {
    for (QuantScheme s : {QuantScheme::q8, QuantScheme::q4})
        for (int cols : {32, 85, 256}) {
            const int rows = 7;
            auto w = quant_input(rows, cols, 5);
            QuantMatrix m;
            quantize_matrix(m, w.data(), rows, cols, s);
            EXPECT_EQ(m.blocks_per_row(), (cols + 31) / 32);
            std::vector<float> back(w.size());
            dequantize_matrix(m, back.data());
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) {
                    const size_t blk = size_t(r) * m.blocks_per_row() + c / 32;
                    const float step = m.scale[blk];
                    const float e = std::fabs(back[size_t(r) * cols + c] - w[size_t(r) * cols + c]);
                    ASSERT_LE(e, 0.5f * step * 1.0001f + 1e-7f)
                        << quant_scheme_name(s) << " row " << r << " col " << c;
                }
            for (int c = 0; c < std::min(cols, 32); c++) EXPECT_EQ(back[c], 0.0f);
            if (cols >= 64) {
                for (int c = 32; c < 64; c++) EXPECT_EQ(back[c], 0.375f) << quant_scheme_name(s);
            }
            EXPECT_EQ(m.bytes(), m.blocks() * (s == QuantScheme::q8 ? 36u : 24u));
        }
}

TEST(QuantFormat, NonFiniteWeightIsAnError) {
    std::vector<float> w(64, 0.5f);
    w[40] = NAN;
    QuantMatrix m;
    EXPECT_THROW(quantize_matrix(m, w.data(), 2, 32, QuantScheme::q8), Error);
}

class QuantKernel : public ::testing::TestWithParam<SimdTarget> {};

TEST_P(QuantKernel, EqualsScalarReference) {
    ScopedSimdTarget target(GetParam());
    for (QuantScheme s : {QuantScheme::q8, QuantScheme::q4})
        for (int cols : {32, 85, 264})
            for (int N : {1, 2, 3, 5, 16, 40})
                for (float beta : {0.0f, 1.0f}) {
                    const int rows = 131;
                    auto w = quant_input(rows, cols, 9);
                    QuantMatrix m;
                    quantize_matrix(m, w.data(), rows, cols, s);
                    auto x = test::random_vector(size_t(N) * cols, 11);
                    auto init = test::random_vector(size_t(N) * rows, 13);
                    std::vector<float> got = init, ref = init;
                    linear_quant(got.data(), x.data(), m, N, beta);
                    linear_quant_reference(ref.data(), x.data(), m, N, beta);
                    EXPECT_LT(test::rel_error(got.data(), ref.data(), ref.size()), 1e-5)
                        << quant_scheme_name(s) << " cols " << cols << " N " << N << " beta "
                        << beta;
                    if (N <= 16) continue;
                    // The few-row kernel alone at this N too.
                    got = init;
                    linear_quant_few_rows(got.data(), x.data(), m, N, beta);
                    EXPECT_LT(test::rel_error(got.data(), ref.data(), ref.size()), 1e-5);
                }
}

INSTANTIATE_TEST_SUITE_P(Targets, QuantKernel, ::testing::ValuesIn(simd_available_targets()),
                         [](const auto& info) {
                             return std::string(simd_target_name(info.param));
                         });

const AttentionKind kKinds[] = {AttentionKind::mha, AttentionKind::mqa,        AttentionKind::gqa,
                                AttentionKind::tpa, AttentionKind::tpa_kvonly, AttentionKind::mla};

class QuantDecode : public ::testing::TestWithParam<std::tuple<SimdTarget, QuantScheme>> {};

TEST_P(QuantDecode, EqualsForwardOfDequantizedModel) {
    ScopedSimdTarget target(std::get<0>(GetParam()));
    const QuantScheme scheme = std::get<1>(GetParam());
    for (AttentionKind kind : kKinds) {
        // n_embd 64: rows of 2 blocks; the MLP's hidden width 170 ends in a partial block.
        const ModelConfig cfg = test::tiny_test_config(kind, 64);
        Model model(cfg);
        test::randomize_weights(model, 7);
        const int T = 30, V = cfg.vocab_size;
        std::vector<int32_t> tokens(T);
        for (int t = 0; t < T; t++) tokens[t] = int32_t((t * 37 + 5) % V);
        Decoder dec(model, 1, 64, CacheType::f32,
                    scheme == QuantScheme::q8 ? WeightType::q8 : WeightType::q4);
        // The reference: the float32 model with the dequantized weights.
        Model deq(cfg);
        std::copy(model.params(), model.params() + model.num_params(), deq.params());
        apply_dequantized(deq, quantize_model(model, scheme));
        deq.forward(tokens.data(), nullptr, 1, T);
        dec.chunk_tokens = 20;  // the second chunk (N = 20 rows) takes the GEMM path
        const int prompt = 25;
        std::vector<float> got(size_t(T) * V);
        dec.append(0, tokens.data(), prompt, got.data(), true);
        for (int t = prompt; t < T; t++) {
            int slot = 0;
            dec.step(&slot, &tokens[t], 1, got.data() + size_t(t) * V);
        }
        for (int t = 0; t < T; t++) {
            const double e =
                test::rel_error(got.data() + size_t(t) * V, deq.logits() + size_t(t) * V, V);
            ASSERT_LT(e, 1e-4) << attention_kind_name(kind) << " position " << t;
        }
        // Quantization changed the logits (the test compares against the right model).
        model.forward(tokens.data(), nullptr, 1, T);
        EXPECT_GT(test::rel_error(got.data(), model.logits(), size_t(T) * V), 1e-4);
        EXPECT_LT(dec.weight_bytes_per_step(), 4.0 * double(model.num_params()) / 3.0);
    }
}

INSTANTIATE_TEST_SUITE_P(Targets, QuantDecode,
                         ::testing::Combine(::testing::ValuesIn(simd_available_targets()),
                                            ::testing::Values(QuantScheme::q8, QuantScheme::q4)),
                         [](const auto& info) {
                             return std::string(simd_target_name(std::get<0>(info.param))) + "_" +
                                    quant_scheme_name(std::get<1>(info.param));
                         });

}  // namespace
