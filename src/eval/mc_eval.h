// Evaluation of one multiple-choice task: prompts (mc_prompt.h), harness tokenization
// (loglik.h), log-likelihoods from any LoglikScorer, metrics (mc_metrics.h).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "eval/loglik.h"
#include "eval/mc_metrics.h"
#include "eval/mc_task.h"
#include "text/tokenizer.h"

namespace t6::eval {

struct McOptions {
    int shots = 0;
    uint64_t seed = 1234;  // the harness's default fewshot_random_seed
    int limit = 0;         // evaluate the first `limit` documents (0: all)
};

struct McResult {
    std::string task, format;
    int num_docs = 0, shots = 0;
    bool has_acc_norm = true;
    MeanStderr acc, acc_norm;
    long long requests = 0;
    double elapsed_s = 0;
    std::vector<DocScore> docs;
    std::vector<std::vector<double>> lls;  // per document, per choice
};

// progress(done, total) after each document.
McResult evaluate_mc(const McTask& task, const Tokenizer& tok, LoglikScorer& scorer,
                     const McOptions& opt, const std::function<void(int, int)>& progress = nullptr);

}  // namespace t6::eval
