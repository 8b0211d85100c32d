// The training loop of `t6 train` (the official train_adam.py / nanoGPT loop, float32 on CPU):
//   for each step: lr = get_lr(step); gradient_accumulation_steps micro-batches of
//   forward+backward (grad_scale 1/accum); clip_grad_norm_(grad_clip); AdamW step;
//   every eval_interval steps (and at the end): mean loss over eval_iters batches of each split,
//   best-val tracking, an atomic checkpoint, keep_last pruning.
// Feedback: a progress line every log_interval steps, out_dir/metrics.jsonl (one JSON object per
// logged step and per evaluation), and a final summary.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/adamw.h"
#include "train/distill.h"
#include "train/run_lock.h"
#include "train/token_data.h"
#include "train/train_checkpoint.h"
#include "train/train_config.h"

namespace t6 {

// One optimizer step on `accum` micro-batches (x, y each hold accum*B*T ids): zero the grads,
// forward+backward with grad_scale 1/accum, clip to grad_clip (0: off), AdamW at rate lr.
struct StepResult {
    float loss = 0;        // mean over the micro-batches
    double grad_norm = 0;  // before clipping
    float clip_coef = 1;
};

// Data parallelism (train/dist.h) for train_step: every rank of the group runs train_step on its
// own slice of the global batch; the gradients are averaged by a sum all-reduce (the backward
// pass scales them by 1/(accum * ranks)), in buckets started while the last micro-batch's
// backward still runs (overlap), or in one call after it. The step is then the same on every
// rank, or with zero1 each rank updates its shard [shard[rank], shard[rank+1]) of the
// parameters (`opt` holds only that shard's moments) and the shards are all-gathered.
struct DataParallel {
    int ranks = 1, rank = 0;
    bool overlap = true;
    bool zero1 = false;
    std::vector<size_t> shard;  // zero1: dist::split_evenly(num_params, ranks)
    // Seconds spent by the last step: in MPI calls made during backward (starting and
    // progressing buckets), waiting for the gradient all-reduce after backward (without
    // overlap: the whole all-reduce), and in the ZeRO-1 all-gather.
    double backward_mpi_s = 0, wait_s = 0, gather_s = 0;
    // Overlap: the last micro-batch's embedding backward runs after the all-reduce, over every
    // rank's rows (Model::set_defer_embedding_backward); its inputs, gathered from all ranks.
    std::vector<int32_t> emb_tokens;
    std::vector<float> emb_grad;
};

StepResult train_step(Model& model, AdamW& opt, const int32_t* x, const int32_t* y, int B, int T,
                      int accum, double lr, double grad_clip, DataParallel* dp = nullptr);

struct TrainResult {
    long long start_step = 0, end_step = 0;  // steps completed before and after this run
    long long tokens = 0;                    // training tokens in this run
    double wall_s = 0;                       // this run
    std::vector<float> losses;               // per step of this run
    std::vector<double> grad_norms;          // per step of this run (before clipping)
    double best_val_loss = 0, final_val_loss = 0, final_train_loss = 0;
    long long best_step = -1;
    std::string last_checkpoint;
    std::string sample;  // greedy sample (sample_tokens > 0)
    int stopped_by = 0;  // SIGINT/SIGTERM that stopped the run early (core/stop_signal.h), or 0
};

class Trainer {
  public:
    // A new run (fails if out_dir already holds checkpoints: resume it or choose another).
    Trainer(const TrainSetup& setup, FILE* log);

    // Continues the run in `dir`: an out_dir (its latest complete checkpoint that loads; broken
    // ones are skipped with a warning) or one checkpoint folder. `overrides` are training
    // key=value pairs (e.g. max_iters=...); model keys cannot change.
    static std::unique_ptr<Trainer> resume(const std::string& dir,
                                           const std::vector<std::string>& overrides, FILE* log);

    // Trains up to max_iters. stop_at >= 0 stops after that many steps (total) as if killed:
    // no final evaluation or checkpoint (tests of resume). A stop signal (core/stop_signal.h)
    // ends the run after the current step with a checkpoint (no evaluation) and sets stopped_by.
    // A non-finite training or evaluation loss, or non-finite weights, fail the run before any
    // checkpoint of them is written.
    TrainResult run(long long stop_at = -1);

    const Model& model() const { return *model_; }
    Model& model() { return *model_; }
    const TrainState& state() const { return state_; }
    const std::string& resumed_from() const { return resumed_from_; }

  private:
    Trainer() = default;
    void open_data();
    void evaluate(double& train_loss, double& val_loss);
    void write_metrics(const std::string& line);
    void trim_metrics(long long max_step);
    void logf(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    // Warnings go to stderr (rank 0 only), never into the progress log on stdout.
    void warnf(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
    // The signal that stops the run, agreed by all ranks (0: none).
    int agreed_stop_signal();
    void setup_parallel(FILE* log);
    bool sharded() const { return dp_.zero1 && dp_.ranks > 1; }
    // The sampler's global micro-batch (ranks x batch_size rows); this rank's rows to x, y.
    void next_slice(BatchSampler& s, int32_t* x, int32_t* y);
    void save_checkpoint(TrainResult& res, bool best);

    TrainState state_;
    std::unique_ptr<Model> model_;
    std::unique_ptr<AdamW> opt_;
    std::unique_ptr<BatchSampler> train_, eval_train_, eval_val_;
    FILE* log_ = nullptr;
    std::unique_ptr<RunLock> lock_;  // out_dir's lock (rank 0)
    long long saved_step_ = -1;      // the step of the newest checkpoint written or resumed from
    std::string resumed_from_;
    DataParallel dp_;                          // ranks, this rank, ZeRO-1 shard
    std::vector<int32_t> gx_, gy_;             // a global micro-batch (all ranks' rows)
    std::unique_ptr<DistillTeacher> teacher_;  // distill_from (train/distill.h)
};

}  // namespace t6
