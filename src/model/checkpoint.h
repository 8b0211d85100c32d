// Model files. A t6 checkpoint is one safetensors file whose tensors carry the official
// parameter names (the tied lm_head.weight is stored once, as transformer.wte.weight) and whose
// header metadata holds:
//   "format": "t6",  "format_version": "1",  "config": <model config JSON>
// plus whatever the writer adds (training state lives in other files of a checkpoint folder).
// An official state_dict saved as safetensors (both tied names, no t6 metadata) loads too, with
// its config.json beside it.
#pragma once
#include <map>
#include <memory>
#include <string>

#include "model/model.h"

namespace t6 {

inline constexpr int kCheckpointFormatVersion = 1;

// Writes the model's weights atomically to `path` (a .safetensors file).
void save_weights(const std::string& path, const Model& model,
                  const std::map<std::string, std::string>& extra_metadata = {});

// Copies every parameter from a safetensors file into `model`, checking names and shapes.
// Accepts the tied alias lm_head.weight (it must equal transformer.wte.weight). Fails, naming the
// file and the tensor, on a missing, extra or mis-shaped tensor.
void load_weights(Model& model, const std::string& path);

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
