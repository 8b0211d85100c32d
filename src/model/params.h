// Parameter layout: every parameter of a model lives in one contiguous float buffer; this table
// names each tensor with its official state_dict name, shape and offset. The projections of one
// attention block are adjacent (in the order listed by attention_projections()), so a single
// GEMM computes all of them; likewise c_fc1 and c_fc2.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace t6 {

struct ParamSpec {
    std::string name;  // official name, e.g. "transformer.h.0.attn.c_qkv.W_A_q.weight"
    std::vector<int64_t> shape;
    size_t offset = 0;  // in floats, into the parameter buffer
    size_t numel = 0;
    std::string component;  // "embedding", "attention", "mlp", "norm"
};

struct ParameterLayout {
    std::vector<ParamSpec> specs;
    size_t total = 0;
    const ParamSpec* find(const std::string& name) const;
    const ParamSpec& at(const std::string& name) const;  // internal: the name must exist
};

// The official names (without "transformer.h.{i}.attn." and ".weight") of one attention block's
// input projections, in buffer order, and their output widths.
struct ProjectionSpec {
    std::string name;
    int rows;
};
std::vector<ProjectionSpec> attention_projections(const ModelConfig& c);

ParameterLayout build_parameter_layout(const ModelConfig& c);

// Name under which the official state_dict stores the tied output matrix (an alias of wte).
inline const char* kTiedAlias = "lm_head.weight";
inline const char* kEmbeddingName = "transformer.wte.weight";
// Options of HF-layout models (ModelConfig::norm_weights / tied_embeddings): the final norm's gain
// and the separate output matrix (same name as the tied alias, but a parameter of its own).
// Per layer, "transformer.h.{i}.ln_1.weight" / "ln_2.weight" and "attn.c_q.bias" etc.
inline const char* kFinalNormName = "transformer.ln_f.weight";
inline const char* kLmHeadName = "lm_head.weight";

}  // namespace t6
