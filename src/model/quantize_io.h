// Quantized t6 checkpoints (`t6 quantize`): one safetensors file holding
//   for every quantized tensor NAME (model/quantize.h: the decoder's linear-layer matrices and
//   the tied embedding), in place of NAME:
//     NAME.qcodes  U8  [rows, blocks_per_row * code bytes]  (q8: int8 codes; q4: 2 per byte)
//     NAME.qscale  F32 [rows, blocks_per_row]
//     NAME.qmin    F32 [rows, blocks_per_row]               (q4 only)
//   every other parameter as F32 under its own name;
// and the metadata of a t6 checkpoint ("format": "t6", "format_version", "config") plus
//   "quantization": {"version": 2, "scheme": "q8"|"q4", "block_size": 32}
// Loading rebuilds the exact codes and scales (bit for bit) and a float32 model whose quantized
// tensors hold the dequantized weights.
// Versions: 2 quantizes MLA's up-projections (q_b_proj, kv_b_proj) too. Version 1 (before
// 2026-12-02) stored them as float32; such a file still loads: they are quantized at load, which
// gives the codes `t6 quantize` writes into a version 2 file of the same checkpoint (quantization
// is deterministic and version 1 kept the original weights). Other kinds' files differ only in
// the version number.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "model/model.h"
#include "model/quantize.h"

namespace t6 {

inline constexpr int kQuantFormatVersion = 2;

// Writes `model` with its targets replaced by `q` (atomically).
void save_quantized(const std::string& path, const Model& model, const QuantizedWeights& q,
                    const std::map<std::string, std::string>& extra_metadata = {});

// True when a checkpoint's weights file carries "quantization" metadata.
bool is_quantized_checkpoint(const std::string& path);

struct QuantizedCheckpoint {
    std::unique_ptr<Model> model;  // float32, quantized tensors dequantized
    std::shared_ptr<QuantizedWeights> weights;
};
// Loads a quantized checkpoint; a one-line error naming the file and the tensor for an unknown
// scheme or version, a block size other than 32 or one that does not divide the stored rows,
// missing / mis-shaped tensors, or a damaged scale block (non-finite or negative scale,
// non-finite minimum, q8 code -128).
QuantizedCheckpoint load_quantized(const std::string& path);

}  // namespace t6
