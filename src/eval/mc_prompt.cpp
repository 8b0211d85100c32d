#include "eval/mc_prompt.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"

namespace t6::eval {

std::vector<int> fewshot_indices(int n, int index, int k, uint64_t seed) {
    if (k <= 0) return {};
    if (k >= n)
        fail(k, "-shot prompts need at least ", k + 1, " documents in the task file (it has ", n,
             ")");
    Rng rng(seed * 0x9e3779b97f4a7c15ull + uint64_t(index));
    // Draw k + 1 distinct documents (partial Fisher-Yates over a lazily permuted range), drop the
    // current one, keep the first k.
    const int draw = std::min(n, k + 1);
    std::vector<int> perm(n);
    for (int i = 0; i < n; i++) perm[i] = i;
    std::vector<int> out;
    for (int i = 0; i < draw; i++) {
        int j = i + int(rng.below(uint64_t(n - i)));
        std::swap(perm[i], perm[j]);
        if (perm[i] != index && int(out.size()) < k) out.push_back(perm[i]);
    }
    return out;
}

std::vector<TextRequest> doc_requests(const McTask& task, int index, int shots, uint64_t seed) {
    const McDoc& d = task.docs.at(index);
    std::string prefix = d.description;
    for (int s : fewshot_indices(int(task.docs.size()), index, shots, seed))
        prefix += task.docs[s].fewshot_text + kFewshotDelimiter;
    std::vector<TextRequest> out;
    if (d.multiple_input()) {
        for (const auto& c : d.contexts)
            out.push_back({prefix + c, d.target_delimiter + d.continuations[0]});
    } else {
        for (const auto& c : d.continuations)
            out.push_back({prefix + d.contexts[0], d.target_delimiter + c});
    }
    return out;
}

}  // namespace t6::eval
