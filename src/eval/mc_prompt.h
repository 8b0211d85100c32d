// Prompts of a multiple-choice document with k-shot examples, as lm-evaluation-harness builds
// them (lm_eval/api/task.py fewshot_context, lm_eval/api/samplers.py ContextSampler):
//   description + shot_1 + "\n\n" + ... + shot_k + "\n\n" + doc_to_text(doc)
// where each shot is doc_to_text + target_delimiter + gold target ("\n\n" is the default
// fewshot_delimiter). Shots are drawn from the same file without the current document: like the
// harness sampling from the evaluated split (draw k + 1, drop the current doc, keep k), but with
// t6's seeded generator (per document, so --limit does not change earlier prompts), not Python's
// random.Random.
#pragma once
#include <cstdint>
#include <vector>

#include "eval/loglik.h"
#include "eval/mc_task.h"

namespace t6::eval {

inline constexpr const char* kFewshotDelimiter = "\n\n";

// The indices of the k shots of document `index` among n documents (k < n), in draw order.
std::vector<int> fewshot_indices(int n, int index, int k, uint64_t seed);

// One request per choice: (prefix + context, target_delimiter + continuation), or for
// multiple_input documents (prefix + context_i, target_delimiter + shared continuation).
std::vector<TextRequest> doc_requests(const McTask& task, int index, int shots, uint64_t seed);

}  // namespace t6::eval
