// Continuing an official training run in t6: tools/import_official.py writes the official
// optimizer.pt's AdamW moments next to the imported weights as <stem>.adamw.safetensors (format
// "t6-adamw", the same tensors as a t6 training checkpoint's optimizer.safetensors) and records
// the official iter_num and best_val_loss in the weights' metadata. `t6 train init_from=IMPORTED`
// then continues that run instead of starting a fresh optimizer.
#pragma once
#include <string>

#include "model/model.h"
#include "train/adamw.h"
#include "train/train_checkpoint.h"

namespace t6 {

// The AdamW state file tools/import_official.py writes next to `weights_path`.
std::string imported_optimizer_path(const std::string& weights_path);

// When `weights_path` was written by tools/import_official.py with AdamW state next to it: loads
// the moments and Adam's step count into `opt`, sets state.step to the official iter_num (the
// steps completed, so the learning-rate schedule continues where the official run stopped) and
// state.best_val_loss, and returns a line saying so. Otherwise changes nothing and returns "".
// The mapping is exact: torch's AdamW keeps the same un-corrected m and v and the same step
// count t that t6's AdamW uses in its bias corrections (docs/numerics.md §19).
std::string load_imported_optimizer(const std::string& weights_path, const Model& model, AdamW& opt,
                                    TrainState& state);

}  // namespace t6
