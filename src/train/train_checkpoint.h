// Training checkpoints. Each is a folder out_dir/ckpt_<step>/ holding
//   model.safetensors      the weights (save_weights; loadable by load_model)
//   optimizer.safetensors  AdamW's exp_avg.<param> and exp_avg_sq.<param> (official names)
//   state.json             format version, step, sampler (data order) states, train config,
//                          model config, best val loss, thread count
//   COMPLETE               written last: the step, every file's size and checksum
// A checkpoint is written into a temporary folder (files fsynced), renamed into place, then
// marked COMPLETE (atomic write). A folder without a valid COMPLETE, or whose files do not match
// it, is never resumed from.
#pragma once
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/model.h"
#include "train/adamw.h"
#include "train/token_data.h"
#include "train/train_config.h"

namespace t6 {

inline constexpr int kTrainStateVersion = 1;

// Everything besides weights and optimizer moments that an exact resume needs.
struct TrainState {
    long long step = 0;    // optimizer steps completed
    long long tokens = 0;  // training tokens consumed
    SamplerState train_sampler, eval_train_sampler, eval_val_sampler;
    double best_val_loss = std::numeric_limits<double>::infinity();
    long long best_step = -1;
    double last_val_loss = std::numeric_limits<double>::quiet_NaN();
    double last_train_loss = std::numeric_limits<double>::quiet_NaN();  // last eval's
    double elapsed_s = 0;  // training wall time so far, over all sessions
    int threads = 0;
    int ranks = 1;  // data-parallel ranks of the run that saved it
    TrainConfig config;
    ModelConfig model;

    nlohmann::json to_json() const;
    static TrainState from_json(const nlohmann::json& j, const std::string& where);
};

std::string checkpoint_dir_name(long long step);  // "ckpt_000500"

// Writes out_dir/ckpt_<state.step>/ atomically (see above) and returns its path. Refuses (fails,
// writing nothing) weights or moments holding NaN or infinite values. On a failed write (e.g. a
// full disk) the partial folder is removed before the error propagates.
std::string save_train_checkpoint(const std::string& out_dir, const Model& model, const AdamW& opt,
                                  const TrainState& state,
                                  const std::map<std::string, std::string>& weight_metadata = {});

// Reads state.json of a checkpoint folder after checking its COMPLETE marker and file sizes.
TrainState read_train_state(const std::string& ckpt_dir);

// Loads weights and optimizer moments of a checkpoint into a model and optimizer built for
// state.model; fails naming the file on any mismatch or corruption.
void load_train_checkpoint(const std::string& ckpt_dir, Model& model, AdamW& opt);

// Reads an AdamW state file (format "t6-adamw": exp_avg.NAME and exp_avg_sq.NAME per parameter,
// adam_step in the metadata) into opt; one-line errors naming the file otherwise.
void read_adamw_file(const std::string& path, const Model& model, AdamW& opt);

struct CheckpointEntry {
    long long step = 0;
    std::string path;
};
// Folders ckpt_<step> in out_dir that carry a COMPLETE marker, by ascending step.
std::vector<CheckpointEntry> list_complete_checkpoints(const std::string& out_dir);

// True if `dir` itself is a checkpoint folder (has COMPLETE or state.json).
bool is_checkpoint_dir(const std::string& dir);

// Deletes complete checkpoints beyond the newest keep_last (never best_step's), incomplete
// ckpt_* folders older than the newest complete one, and leftover temporary folders.
void prune_checkpoints(const std::string& out_dir, int keep_last, long long best_step);

// Removes every temporary checkpoint folder (.tmp_ckpt_<step>.<pid>) in out_dir, left by runs
// that died while writing one; the caller holds out_dir's lock (train/run_lock.h), so none is
// being written. Returns how many were removed.
int remove_temporary_checkpoints(const std::string& out_dir);

}  // namespace t6
