// Result tables of t6 eval mc: the per-task table of one model, and the comparison table of the
// T6 paper's Tables 2 and 3 (one row per checkpoint, one column per task, plus Avg.), in
// markdown. Scores are percentages with two decimals.
#pragma once
#include <string>
#include <vector>

#include "eval/mc_eval.h"

namespace t6::eval {

struct ModelResults {
    std::string model;  // a label (the checkpoint path)
    std::vector<McResult> tasks;
};

// The score a table shows for a task: acc, or acc_norm where the task defines it and
// use_acc_norm is set (tasks without acc_norm in their harness YAML show acc).
double table_score(const McResult& r, bool use_acc_norm);

// | Task | Format | Shots | Docs | acc | ± | acc_norm | ± |, then an average row (acc means).
std::string task_table(const std::vector<McResult>& results);

// | Model | task1 | task2 | ... | Avg. | (Avg. = unweighted mean over tasks).
std::string comparison_table(const std::vector<ModelResults>& models, bool use_acc_norm);

}  // namespace t6::eval
