// Model files. A t6 checkpoint is one safetensors file whose tensors carry the official
// parameter names (the tied lm_head.weight is stored once, as transformer.wte.weight) and whose
// header metadata holds:
//   "format": "t6",  "format_version": "1" (or "2", below),  "config": <model config JSON>
// plus whatever the writer adds (training state lives in other files of a checkpoint folder).
// An official state_dict saved as safetensors (both tied names, no t6 metadata) loads too, with
// its config.json beside it.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace t6 {

// Version 2 adds the HF-layout options of ModelConfig (norm gains, untied lm_head, q/k/v biases,
// HF RoPE); save_weights writes 1 for configs that use none of them.
inline constexpr int kCheckpointFormatVersion = 2;

// Writes the model's weights atomically to `path` (a .safetensors file).
void save_weights(const std::string& path, const Model& model,
                  const std::map<std::string, std::string>& extra_metadata = {});

// Copies every parameter from a safetensors file into `model`, checking names and shapes.
// Accepts the tied alias lm_head.weight (it must equal transformer.wte.weight). Fails, naming the
// file and the tensor, on a missing, extra or mis-shaped tensor, and on a NaN or infinite weight.
// When the file is the model.safetensors of a checkpoint folder with a COMPLETE marker (as
// `t6 train` writes), its size and checksum are first checked against the marker (`verify`;
// callers that checked the whole folder already pass false).
void load_weights(Model& model, const std::string& path, bool verify = true);

// The checksum a checkpoint folder's COMPLETE marker records for each file: 16 hex digits of a
// fast 64-bit hash of the bytes. It detects truncation and flipped bits; it is no cryptographic
// hash.
std::string file_checksum_hex(const std::string& path);

// Checks the COMPLETE marker of checkpoint folder `dir` ({"step", "files": {name: size},
// "checksums": {name: hex}}) against the named files beside it: each present with its recorded
// size, and when `checksums`, its recorded checksum (reads every byte). Fails naming the file.
void verify_complete_marker(const std::string& dir, const std::vector<std::string>& files,
                            bool checksums);

// Finds the weights file of a checkpoint given as a .safetensors file or a folder holding
// model.safetensors (t6) or weights.safetensors / model.safetensors with config.json (official).
std::string checkpoint_weights_path(const std::string& path);

// The header metadata of a checkpoint's weights file (e.g. "tokenizer": a tokenizer spec JSON).
std::map<std::string, std::string> checkpoint_metadata(const std::string& path);

// The model config of a checkpoint (t6 metadata, else config.json beside the weights).
ModelConfig checkpoint_config(const std::string& path);

// Builds the model of a checkpoint and loads its weights.
std::unique_ptr<Model> load_model(const std::string& path);

// A preset name, a JSON config file, or a checkpoint.
ModelConfig resolve_model_config(const std::string& name_or_path);

}  // namespace t6
