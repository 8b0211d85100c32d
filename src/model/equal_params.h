// Every attention kind at (nearly) the same parameter count as MHA, as the paper compares them
// (Table 10): keep n_layer, n_embd, d_h, ranks and latent sizes; choose each kind's head count so
// that its attention parameters per layer come closest to MHA's 4*n_embd^2 (MHA itself gets
// n_embd/d_h heads; GQA keeps 2 KV heads, MQA 1).
#pragma once
#include <string>
#include <vector>

#include "model/config.h"

namespace t6 {

// The head count of `kind` closest in attention parameters to MHA with the shape of `base`.
int equal_param_heads(const ModelConfig& base, AttentionKind kind);

// base re-shaped to each kind, in the order of the kinds table (mha, mqa, gqa, mla, tpa,
// tpa_kvonly).
std::vector<ModelConfig> equal_param_variants(const ModelConfig& base);

// Attention parameters of one layer.
long attention_params_per_layer(const ModelConfig& c);

}  // namespace t6
