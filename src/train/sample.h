// The trainer's sample after training: greedy decoding with the generation loop
// (infer/generation.h) over a KV cache, in the training data's own tokenizer (bytes, char, BPE
// or GPT-2, resolved from the data folder's meta.json as every command resolves it). The prompt
// keeps its last max_context tokens; the sample then continues for n_tokens over the cache (RoPE
// positions past max_context when prompt + n_tokens exceed it, where a sliding window would
// recompute).
#pragma once
#include <string>

#include "model/model.h"
#include "text/tokenizer.h"

namespace t6 {

struct GreedySample {
    std::string prompt_text;  // the prompt as the tokenizer reads it back (decoded ids)
    std::string text;         // the generated tokens, decoded
    int tokens = 0;           // generated tokens
};

// An empty prompt (or one that encodes to no ids) starts from "\n". Fails when the prompt has
// no ids even then.
GreedySample greedy_sample(const Model& model, const Tokenizer& tok, const std::string& prompt,
                           int n_tokens, int max_context);

// The text with control characters other than newline and tab shown as '?' (for printing).
std::string printable_text(const std::string& s);

}  // namespace t6
