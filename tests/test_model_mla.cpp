// MLA (official llama-mla.py): whole-model gradient check of Model::forward_backward against
// central differences of Model::forward (method and tolerance: model_gradcheck.h). Numerical
// agreement with the official code itself is test_conformance (llama_mla).
#include <gtest/gtest.h>

#include "model/attn/attention.h"
#include "model_gradcheck.h"

using namespace t6;

TEST(ModelMla, WholeModelGradientMatchesFiniteDifferences) {
    // vocab 32, 1 layer, n_embd 16, 2 heads: head_dim 8 + rope 4, q_lora 8, kv_lora 6, v 8.
    ModelConfig c = test::tiny_gradcheck_config(AttentionKind::mla);
    auto r = test::whole_model_gradcheck(c);
    EXPECT_GT(r.checked, 100u);
    EXPECT_LT(r.rel_error, 1e-2);
    EXPECT_LT(r.worst_tensor_rel, 2e-2) << r.worst_tensor;
}

TEST(ModelMla, GradientWithUnevenWidthsAndTwoLayers) {
    // D != Dv, rope wider than v, odd latent ranks, three heads, two layers.
    ModelConfig c = test::tiny_gradcheck_config(AttentionKind::mla);
    c.n_layer = 2;
    c.n_head = 3;
    c.head_dim = 4;
    c.qk_rope_head_dim = 6;
    c.v_head_dim = 5;
    c.q_lora_rank = 7;
    c.kv_lora_rank = 5;
    auto r = test::whole_model_gradcheck(c);
    EXPECT_LT(r.rel_error, 1e-2);
    EXPECT_LT(r.worst_tensor_rel, 2e-2) << r.worst_tensor;
}

TEST(ModelMla, LayoutAndBufferSizes) {
    ModelConfig c = test::tiny_gradcheck_config(AttentionKind::mla);
    EXPECT_EQ(projection_width(c), 8 + 6 + 4);
    // cq + rstd, ckv + rstd, q and k (H*(D+R)) and v (H*Dv).
    EXPECT_EQ(attention_saved_per_token(c), size_t(8 + 1 + 6 + 1 + 2 * 2 * 12 + 2 * 8));
    Model m(c);
    EXPECT_EQ(m.layout().at("transformer.h.0.attn.q_b_proj.weight").shape,
              (std::vector<int64_t>{24, 8}));
    EXPECT_EQ(m.layout().at("transformer.h.0.attn.kv_b_proj.weight").shape,
              (std::vector<int64_t>{32, 6}));
}

TEST(ModelMla, ForwardIsDeterministicAndFinite) {
    ModelConfig c = test::tiny_gradcheck_config(AttentionKind::mla);
    Model m(c);
    m.init_weights(3);
    test::randomize_weights(m, 5);
    std::vector<int32_t> tok = {1, 5, 9, 3, 0, 31, 2, 2, 7, 4},
                         tgt = {5, 9, 3, 0, 31, 2, 2, 7, 4, 1};
    const float l1 = m.forward(tok.data(), tgt.data(), 2, 5);
    const float l2 = m.forward(tok.data(), tgt.data(), 2, 5);
    EXPECT_TRUE(std::isfinite(l1));
    EXPECT_EQ(l1, l2);
    m.zero_grad();
    EXPECT_EQ(m.forward_backward(tok.data(), tgt.data(), 2, 5), l1);
}
