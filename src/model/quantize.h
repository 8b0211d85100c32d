// Which weights quantized decoding quantizes, and the quantized copy of a model's weights.
// Quantized (kernels/quant.h, blocks of 32 along each row): every matrix the decoder reads
// through a linear layer -- per layer the fused attention input projection (its adjacent
// projection tensors, rows concatenated), attn.c_proj, mlp.c_fc1, mlp.c_fc2, mlp.c_proj -- and
// the tied embedding / lm_head (transformer.wte.weight; the embedding lookup then reads its
// dequantized rows, so lookup and lm_head stay one tied matrix) -- and the matrices an attention
// core owns (MLA's up-projections q_b_proj and kv_b_proj; quantized since format version 2,
// model/quantize_io.h), which the core reads through LayerParamRef::quant. Kept float32: the
// norms (under 1% of a model's bytes).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "kernels/quant.h"
#include "model/attn/attention.h"
#include "model/model.h"

namespace t6 {

// One matrix of the decoder: parameter offset, shape, and the parameter tensors it covers (one,
// or the adjacent attention projections).
struct QuantTarget {
    std::string name;  // the first covered tensor's name
    size_t offset = 0;
    int rows = 0, cols = 0;
    std::vector<std::string> parts;
    // A matrix of an attention core (MLA's q_b_proj, kv_b_proj): quantized since version 2 of
    // the checkpoint format (a version 1 file stores it as float32; loading quantizes it).
    bool core = false;
};
std::vector<QuantTarget> quant_targets(const ModelConfig& c, const ParameterLayout& L);

struct QuantizedWeights {
    QuantScheme scheme = QuantScheme::q8;
    std::vector<QuantTarget> targets;
    std::vector<QuantMatrix> mats;  // one per target
    // Bytes of the quantized matrices (codes and scales).
    size_t bytes() const;
    // Index of the target at parameter offset `off`, or -1.
    int find(size_t off) const;
};

// Quantizes every target of the model.
QuantizedWeights quantize_model(const Model& model, QuantScheme s);
// Overwrites every target's weights in `model` with the dequantized values w' of `q`: the
// float32 model that quantized decoding computes exactly (eval, tests).
void apply_dequantized(Model& model, const QuantizedWeights& q);

// Per layer, the quantized copies of the attention core's matrices (attn/attention.h CoreQuant),
// pointing into `q` (which must outlive them); int8_activations for the q8a8 / q4a8 types.
std::vector<CoreQuant> core_quant(const ModelWeights& mw, const QuantizedWeights& q,
                                  bool int8_activations);

// Bytes one decoding step streams for the weights: quantized targets at their quantized size,
// everything else float32 (the norms).
double quantized_weight_bytes(const ModelConfig& c, QuantScheme s);

}  // namespace t6
