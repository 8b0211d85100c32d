// Training configuration: the keys of a `t6 train` JSON config file (and of key=value overrides),
// with the official train_adam.py defaults where they apply. A config file is one JSON object:
//   {"model": "tiny-t6" | {model config keys} | "path/to/config.json or checkpoint",
//    "data": "data/fortunes", "max_iters": 2000, ...}
// Unknown keys and values of the wrong type are one-line errors naming the file and the key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/config.h"
#include "train/adamw.h"
#include "train/lr_schedule.h"

namespace t6 {

struct TrainConfig {
    // Data and output.
    std::string data;                  // folder: train.bin + val.bin, or *train*/*val* shards
    std::string data_format = "auto";  // auto | nanogpt | llmc
    std::string out_dir = "out";
    std::string init_from = "scratch";  // "scratch" or a checkpoint to start from (weights only)
    // Batches.
    int batch_size = 8;
    int seq_len = 256;  // tokens per window (the official block_size of a training run)
    int gradient_accumulation_steps = 1;
    // Length and schedule.
    int max_iters = 1000;  // optimizer steps
    double learning_rate = 6e-4;
    double min_lr = 6e-5;
    int warmup_iters = 100;
    int lr_decay_iters = 0;  // 0: = max_iters
    bool decay_lr = true;
    // AdamW and clipping.
    double weight_decay = 0.1;
    double beta1 = 0.9;
    double beta2 = 0.95;
    double adam_eps = 1e-8;
    double grad_clip = 1.0;  // 0: no clipping
    // Evaluation, logging, checkpoints.
    int eval_interval = 250;    // evaluate and write a checkpoint every this many steps
    int eval_iters = 20;        // batches per split in an evaluation
    bool eval_at_start = true;  // also evaluate before the first step (official: iter 0)
    int log_interval = 10;
    int keep_last = 3;  // complete checkpoints kept (the best one is always kept too)
    // Reproducibility and speed.
    long long seed = 1337;
    int threads = 0;                       // 0: OpenMP default
    std::string matmul_precision = "f32";  // f32 | bf16 (bf16 GEMM inputs, f32 accumulation)
    // Data parallelism (t6 train under mpirun/srun; see train/dist.h). batch_size is per rank:
    // the global batch is ranks x batch_size x gradient_accumulation_steps sequences.
    bool zero1 = false;         // shard the AdamW moments and update over the ranks (ZeRO-1)
    bool dist_overlap = true;   // all-reduce gradient buckets while backward runs
    double dist_timeout = 300;  // seconds a rank waits for the others before stopping the job
    // After training: a greedy sample of this many tokens in the data's tokenizer (train/sample.h).
    int sample_tokens = 0;
    std::string sample_prompt = "\n";
    // Distillation from a teacher checkpoint (recovery after t6 convert; train/distill.h).
    std::string distill_from;                   // "": none
    double distill_weight = 0.5;                // w of CE + w T^2 KL(teacher || student)
    double distill_temperature = 1.0;           // T
    std::string distill_schedule = "constant";  // constant | linear (w decays to 0 at max_iters)

    LrSchedule schedule() const;
    AdamWConfig adamw() const;
    nlohmann::json to_json() const;
};

// Sets one key from a JSON value; returns false for an unknown key, fails (naming `where` and
// the key) on a value of the wrong type.
bool set_train_key(TrainConfig& c, const std::string& key, const nlohmann::json& v,
                   const std::string& where);

// Every key with its type and default, for --help.
std::string train_keys_help();

// A training run's configuration: the training keys plus the model.
struct TrainSetup {
    TrainConfig train;
    ModelConfig model;
    std::string model_source;  // preset, file, or "config" when given inline
    bool model_given = false;
};

// Reads a config file (see above) into `s`.
void apply_train_config_json(TrainSetup& s, const nlohmann::json& j, const std::string& where);
void load_train_config_file(TrainSetup& s, const std::string& path);

// "key=value": a training key, or else a model key (applied to s.model). Unknown keys fail.
void apply_train_override(TrainSetup& s, const std::string& assignment, bool allow_model_keys);

// Checks values and their combination with the model; fails naming the key.
void validate_train_setup(const TrainSetup& s, const std::string& where);

TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace t6
