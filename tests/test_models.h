// Small models for the decoding and quantization tests: a configuration of every attention kind
// small enough to run in milliseconds yet with every dimension distinct, and random weights
// everywhere (the official initialisation zeroes the output projections, which would hide
// attention bugs).
#pragma once
#include <cmath>
#include <random>

#include "model/config.h"
#include "model/model.h"

namespace t6::test {

// 2 layers, 4 heads of 16, TPA ranks 3/2/3, GQA 2 KV heads, MLA (DeepSeek-V2 names) d'_c 8,
// d_c 6, d_h^R 4, v_head_dim 8 (head_dim is MLA's no-RoPE part); vocabulary 97, block 64.
inline ModelConfig tiny_test_config(AttentionKind kind, int n_embd = 32) {
    ModelConfig c;
    c.attention = kind;
    c.vocab_size = 97;
    c.n_layer = 2;
    c.n_embd = n_embd;
    c.n_head = 4;
    c.head_dim = 16;
    c.n_kv_head = kind == AttentionKind::gqa ? 2 : 0;
    c.q_rank = 3;
    c.k_rank = 2;
    c.v_rank = 3;
    c.block_size = 64;
    c.q_lora_rank = 8;
    c.kv_lora_rank = 6;
    c.qk_rope_head_dim = 4;
    c.v_head_dim = 8;
    return c;
}

// Every parameter N(0, 1/fan_in) (fan_in = the last dimension), seeded.
inline void randomize_weights(Model& m, unsigned seed) {
    std::mt19937 rng(seed);
    for (const auto& s : m.layout().specs) {
        std::normal_distribution<float> d(0.0f, 1.0f / std::sqrt(float(s.shape.back())));
        float* p = m.params() + s.offset;
        for (size_t i = 0; i < s.numel; i++) p[i] = d(rng);
    }
}

}  // namespace t6::test
