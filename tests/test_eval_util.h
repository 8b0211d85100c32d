// Tiny models for the evaluation tests, with random weights everywhere (the official init zeroes
// c_proj, which would make every context look the same to the scorers).
#pragma once
#include <cmath>
#include <memory>
#include <random>

#include "model/model.h"

namespace t6::test {

inline std::unique_ptr<Model> eval_model(AttentionKind kind = AttentionKind::tpa, int block = 32,
                                         int vocab = 64, unsigned seed = 5) {
    ModelConfig c;
    c.attention = kind;
    c.vocab_size = vocab;
    c.n_layer = 2;
    c.n_embd = 32;
    c.n_head = 2;
    c.head_dim = 16;
    c.n_kv_head = kind == AttentionKind::gqa ? 1 : 0;
    c.block_size = block;
    c.q_lora_rank = 8;  // MLA
    c.kv_lora_rank = 6;
    c.qk_rope_head_dim = 4;
    c.v_head_dim = 16;
    auto m = std::make_unique<Model>(c);
    m->init_weights(seed);
    std::mt19937 rng(seed);
    for (const auto& s : m->layout().specs) {
        std::normal_distribution<float> d(0.0f, 1.0f / std::sqrt(float(s.shape.back())));
        float* p = m->params() + s.offset;
        for (size_t i = 0; i < s.numel; i++) p[i] = d(rng);
    }
    return m;
}

}  // namespace t6::test
