// The model options of Hugging Face LLaMA-layout models (docs/hf-import.md): RMSNorm gains, an
// untied lm_head, q/k/v biases and HF's RoPE (with llama3 / linear scaling). Backward against
// central differences, the decoder against the forward pass, checkpoints (version 2 only when an
// option is on), and the RoPE tables against HF's formula. Import conformance against PyTorch is
// in test_cli_hf_import.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/safetensors.h"
#include "infer/decoder.h"
#include "kernels/embedding.h"
#include "model/checkpoint.h"
#include "model/model_rope.h"
#include "model_gradcheck.h"
#include "test_util.h"

using namespace t6;

namespace {

ModelConfig hf_config(AttentionKind kind, bool tied, bool bias) {
    ModelConfig c = test::tiny_gradcheck_config(kind);
    if (kind == AttentionKind::gqa) {
        c.n_head = 4;
        c.n_kv_head = 2;
    }
    c.n_layer = 2;
    c.mlp_hidden = 24;
    c.norm_weights = true;
    c.tied_embeddings = tied;
    c.qkv_bias = bias;
    c.rope_hf = true;
    c.rope_theta = 500000.0f;
    c.norm_eps = 1e-5f;
    return c;
}

void gradcheck(ModelConfig c) {
    c.n_layer = 1;  // the options are per layer: one is enough, and the check is slow
    auto r = test::whole_model_gradcheck(c);
    EXPECT_GT(r.checked, 50u);
    EXPECT_LT(r.rel_error, 1e-2);
    EXPECT_LT(r.worst_tensor_rel, 2e-2) << r.worst_tensor;
}

std::vector<int32_t> tokens_of(int T, int V, unsigned seed) {
    std::vector<int32_t> t(static_cast<size_t>(T));
    for (int i = 0; i < T; i++) t[size_t(i)] = int32_t((i * 7919u + seed * 104729u) % unsigned(V));
    return t;
}

}  // namespace

TEST(HfModel, GradcheckMhaUntied) {
    gradcheck(hf_config(AttentionKind::mha, false, false));
}
TEST(HfModel, GradcheckGqaTiedBias) {
    gradcheck(hf_config(AttentionKind::gqa, true, true));
}

TEST(HfModel, DecodeEqualsForward) {
    for (bool tied : {true, false}) {
        ModelConfig c = hf_config(AttentionKind::gqa, tied, true);
        c.block_size = 64;
        Model m(c);
        test::randomize_weights(m, 11);
        const int T = 30, V = c.vocab_size;
        auto tok = tokens_of(T, V, 1);
        m.forward(tok.data(), nullptr, 1, T);
        std::vector<float> ref(m.logits(), m.logits() + size_t(T) * V), got(size_t(T) * V);
        Decoder dec(m, 1, 64, CacheType::f32);
        dec.chunk_tokens = 7;
        dec.append(0, tok.data(), 12, got.data(), true);
        for (int t = 12; t < T; t++) {
            int slot = 0;
            dec.step(&slot, &tok[size_t(t)], 1, got.data() + size_t(t) * V);
        }
        for (int t = 0; t < T; t++)
            ASSERT_LT(test::rel_error(got.data() + size_t(t) * V, ref.data() + size_t(t) * V, V),
                      1e-4)
                << "tied " << tied << " position " << t;
        // q8 weights (the untied lm_head is quantized too) stay close.
        Decoder q8(m, 1, 64, CacheType::f32, WeightType::q8);
        std::vector<float> got8(size_t(T) * V);
        q8.append(0, tok.data(), T, got8.data(), true);
        EXPECT_LT(test::rel_error(got8.data(), ref.data(), size_t(T) * V), 0.05);
    }
}

TEST(HfModel, CheckpointRoundTripAndVersion) {
    test::TempDir dir;
    ModelConfig c = hf_config(AttentionKind::gqa, false, true);
    c.rope_scaling = "llama3";
    c.rope_factor = 32;
    Model m(c);
    test::randomize_weights(m, 5);
    save_weights(dir.file("hf.safetensors"), m);
    EXPECT_EQ(checkpoint_metadata(dir.file("hf.safetensors")).at("format_version"), "2");
    EXPECT_EQ(checkpoint_metadata(dir.file("hf.safetensors")).count("tied"), 0u);
    auto back = load_model(dir.file("hf.safetensors"));
    const ModelConfig& b = back->config();
    EXPECT_TRUE(b.norm_weights && !b.tied_embeddings && b.qkv_bias && b.rope_hf);
    EXPECT_EQ(b.rope_scaling, "llama3");
    EXPECT_EQ(b.rope_factor, 32.0f);
    EXPECT_EQ(b.mlp_hidden, 24);
    ASSERT_EQ(back->num_params(), m.num_params());
    EXPECT_EQ(std::memcmp(back->params(), m.params(), m.num_params() * 4), 0);
    // The official kinds keep version 1 and their config JSON (no new keys).
    Model o(test::tiny_gradcheck_config(AttentionKind::tpa));
    save_weights(dir.file("t6.safetensors"), o);
    EXPECT_EQ(checkpoint_metadata(dir.file("t6.safetensors")).at("format_version"), "1");
    EXPECT_FALSE(o.config().to_json().contains("norm_weights"));
    EXPECT_EQ(o.layout().specs.size(),
              build_parameter_layout(test::tiny_gradcheck_config(AttentionKind::tpa)).specs.size());
}

TEST(HfModel, RopeTablesAreHfRotateHalf) {
    ModelConfig c = hf_config(AttentionKind::mha, true, false);
    c.rope_theta = 10000.0f;
    const RopeTables hf = model_rope_tables(c, 8);
    // Rotating x = e_0 (first half) at position t: HF gives y[0] = cos, y[d/2] = +sin.
    const int d = c.head_dim, t = 5;
    std::vector<float> x(size_t(8) * d, 0.0f);
    x[size_t(t) * d] = 1.0f;
    rope_forward_inplace(x.data(), 1, 8, 1, d, d, d, hf);
    const double ang = double(t) * double(hf.inv_freq[0]);
    EXPECT_NEAR(x[size_t(t) * d], std::cos(ang), 1e-6);
    EXPECT_NEAR(x[size_t(t) * d + d / 2], std::sin(ang), 1e-6);
    // The official tables are untouched by the option's code path.
    c.rope_hf = false;
    const RopeTables off = model_rope_tables(c, 8), ref = make_rope_tables(8, d, 10000.0f);
    EXPECT_EQ(off.cos, ref.cos);
    EXPECT_EQ(off.sin, ref.sin);
    // llama3: low frequencies divided by the factor, high ones kept.
    c.rope_hf = true;
    c.rope_scaling = "llama3";
    c.rope_factor = 8;
    c.rope_original_max_positions = 64;  // wavelengths 2pi/inv_freq: 6.3, 63, 628, 6283
    const RopeTables l3 = model_rope_tables(c, 8);
    EXPECT_EQ(l3.inv_freq[0], hf.inv_freq[0]);  // below 64/4: kept
    EXPECT_LT(l3.inv_freq[1], hf.inv_freq[1]);  // between 64/4 and 64: smoothed
    EXPECT_GT(l3.inv_freq[1], hf.inv_freq[1] / 8);
    EXPECT_FLOAT_EQ(l3.inv_freq.back(), hf.inv_freq.back() / 8);  // above 64: divided
}

TEST(HfModel, BadOptionsAreErrors) {
    ModelConfig c = hf_config(AttentionKind::tpa, true, true);
    EXPECT_THROW(c.validate("cfg"), Error);  // qkv_bias on TPA
    ModelConfig d = hf_config(AttentionKind::mha, true, false);
    d.rope_scaling = "yarn";
    EXPECT_THROW(d.validate("cfg"), Error);
    ModelConfig e = hf_config(AttentionKind::mha, true, false);
    EXPECT_THROW(apply_override(e, "norm_weights=1"), Error);  // must be a boolean
    apply_override(e, "tied_embeddings=false");
    EXPECT_FALSE(e.tied_embeddings);
}

TEST(HfModel, DeferredEmbeddingBackwardAndBuckets) {
    // Data-parallel training defers the embedding lookup's gradient; with norm gains and an
    // untied lm_head after the layers, the buckets still cover every parameter once and the
    // deferred gradient plus embedding_backward equals the plain one.
    ModelConfig c = hf_config(AttentionKind::gqa, false, true);
    Model a(c), b(c);
    test::randomize_weights(a, 3);
    std::copy(a.params(), a.params() + a.num_params(), b.params());
    const int B = 2, T = 6, N = B * T;
    auto tok = tokens_of(N, c.vocab_size, 2), tgt = tokens_of(N, c.vocab_size, 3);
    a.zero_grad();
    a.forward_backward(tok.data(), tgt.data(), B, T);
    b.set_defer_embedding_backward(true);
    size_t covered = 0;
    b.set_grad_ready_hook([&](size_t, size_t n) { covered += n; });
    b.zero_grad();
    b.forward_backward(tok.data(), tgt.data(), B, T);
    EXPECT_EQ(covered, b.num_params());
    embedding_backward(b.grads() + b.layout().specs[0].offset, b.embedding_output_grad(),
                       tok.data(), N, c.n_embd, c.vocab_size);
    EXPECT_LT(test::rel_error(a.grads(), b.grads(), a.num_params()), 1e-6);
}
