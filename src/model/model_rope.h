// The RoPE tables of a model config: the official T6 convention (kernels/rope.h: bf16 tables,
// the official sign), or, with rope_hf, Hugging Face LLaMA's (docs/hf-import.md):
//   q' = q * cos + rotate_half(q) * sin,  rotate_half(x) = cat(-x[d/2:], x[:d/2])
// i.e. y1 = x1 cos - x2 sin, y2 = x2 cos + x1 sin, with float32 cos/sin and inv_freq optionally
// rescaled (rope_scaling linear or llama3). The kernels compute y1 = x1 c + x2 s,
// y2 = x2 c - x1 s, so HF's rotation is theirs with s = -sin: the tables store -sin.
#pragma once
#include "kernels/rope.h"
#include "model/config.h"

namespace t6 {

RopeTables model_rope_tables(const ModelConfig& c, int max_positions);

// HF's inv_freq after rope_scaling (none / linear / llama3), from the unscaled float32 values.
void scale_inv_freq(const ModelConfig& c, std::vector<float>& inv_freq);

}  // namespace t6
