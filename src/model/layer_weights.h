// One description of where a model's weights lie in its parameter buffer, per layer and for the
// embedding, final norm and lm_head: offsets resolved once from the layout. Model (training
// forward/backward) and Decoder (cached inference) both walk the block over this.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/attn/attention.h"
#include "model/config.h"
#include "model/params.h"

namespace t6 {

struct LayerWeights {
    static constexpr size_t kNone = kNoWeight;  // an absent optional tensor
    size_t qkv = 0;                             // fused input projections (attn.<first>.weight)
    size_t c_proj = 0, fc1 = 0, fc2 = 0, mlp_proj = 0;
    size_t ln1 = kNone, ln2 = kNone, bias = kNone;  // HF-layout options (norm gains, q/k/v bias)
    CoreWeights core{};                             // the attention kind's own tensors
};

struct ModelWeights {
    std::vector<LayerWeights> layers;
    size_t wte = 0;                    // token embedding
    size_t head = 0;                   // lm_head matrix: wte when tied
    size_t lnf = LayerWeights::kNone;  // final norm gain (HF layout)
};

ModelWeights model_weights(const ModelConfig& c, const ParameterLayout& layout);

}  // namespace t6
