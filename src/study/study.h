// `t6 study`: the paper's comparison at a chosen scale. Every attention kind is built at the
// same parameter count as MHA (equal_params.h: heads chosen per kind as the paper's Table 10),
// trained with identical data order, schedule and seed, evaluated on the validation split and
// timed at decoding; a report folder collects the table, the logs and the loss curves.
//
// Layout of a study folder (out_dir):
//   study.json            the plan (base model and training keys); a rerun must match it
//   runs/<kind>/          a `t6 train` out_dir: metrics.jsonl, checkpoints (resumable)
//   runs/<kind>/done.json written once the kind is trained and timed: it is never retrained
//   report/ (or --report) report.md, loss.svg, summary.json, logs/<kind>.jsonl
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.h"
#include "model/model.h"
#include "train/train_config.h"

namespace t6::study {

// Kind names as in preset names: mha, mqa, gqa, mla, t6, t6-kvonly.
const std::vector<std::string>& all_kinds();
AttentionKind kind_attention(const std::string& kind, const std::string& where);

struct StudyPlan {
    TrainSetup base;  // training keys (out_dir = the study folder) and the MHA-shaped base model
    std::vector<std::string> kinds = all_kinds();
    std::string report_dir;  // "" = out_dir/report
    std::string title = "t6 study";
    int decode_context = 1024;  // tokens in the cache when decode speed is measured
    int decode_steps = 32;      // timed decoding steps (median reported)
    std::string command;        // the command that (re)generates the study, for the report

    std::string out_dir() const { return base.train.out_dir; }
    std::string run_dir(const std::string& kind) const;
    std::string report_path() const;
    long long tokens_per_step() const;
};

// Reads the "study" object of a config file ({"kinds": [...], "title": ..., "decode_context": N,
// "decode_steps": N, "report_dir": ...}); fails naming `where` and the key.
void apply_study_json(StudyPlan& plan, const nlohmann::json& j, const std::string& where);

// The model of `kind` at MHA's parameter count (the base's vocabulary, layers, widths, ranks).
ModelConfig kind_model(const StudyPlan& plan, const std::string& kind);

// The rule in words, for the log and the report.
std::string equal_params_rule(const ModelConfig& base);

// Checks the plan (kinds known and distinct, sizes positive, training keys valid for each kind).
void validate_plan(const StudyPlan& plan);

// One kind's figures; every number except decode speed is derived from runs/<kind>/metrics.jsonl
// and the model configuration.
struct KindSummary {
    std::string kind;
    ModelConfig model;
    long long params = 0, attention_params_per_layer = 0;
    long long kv_bytes_per_token = 0;  // f32 cache, all layers
    long long steps = 0, tokens = 0;
    double final_val_loss = 0, best_val_loss = 0, final_train_loss = 0;
    long long best_step = -1;
    double train_tokens_per_s = 0;  // training steps only (evaluation excluded)
    double decode_tokens_per_s = 0;
    int decode_context = 0;
    double wall_s = 0;  // training wall time incl. evaluations (all sessions)
    std::vector<double> train_tokens, train_loss;           // logged training steps
    std::vector<double> eval_tokens, eval_val, eval_train;  // evaluations
    nlohmann::json to_json() const;
};

// Reads runs/<kind>/ of a finished kind.
KindSummary summarize_kind(const StudyPlan& plan, const std::string& kind);

struct StudyResult {
    std::vector<KindSummary> kinds;
    std::vector<std::string> trained, skipped;  // kinds trained in this call / already done
    double wall_s = 0;
    std::string report_dir;
    nlohmann::json to_json() const;
};

// Trains every kind not yet done (resuming a half-done one from its latest checkpoint), then
// writes the report. stop_at >= 0 stops each kind trained here after that many steps as if
// killed (tests of resume); no report is written then. retime_decode: kinds already done get
// their decoding speed measured again (from their last checkpoint), e.g. after an engine upgrade;
// their training is untouched.
StudyResult run_study(const StudyPlan& plan, FILE* log, long long stop_at = -1,
                      bool retime_decode = false);

// Writes report.md, loss.svg, summary.json and logs/ for the given kinds.
void write_report(const StudyPlan& plan, const std::vector<KindSummary>& kinds,
                  const std::string& dir);

// Median decoding tokens/s of batch 1 with `context` tokens in the cache.
double measure_decode_tokens_per_s(const Model& model, int context, int steps);

}  // namespace t6::study
