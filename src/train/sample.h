// Greedy sampling for byte-level models (token id = byte), the simple way: every new token
// recomputes a full forward pass over the context (at most the last max_context tokens) and takes
// the argmax of the last position's logits. No KV cache; meant for short demo samples.
#pragma once
#include <string>

#include "model/model.h"

namespace t6 {

std::string greedy_sample_bytes(Model& model, const std::string& prompt, int n_tokens,
                                int max_context);

// The text with control characters other than newline and tab shown as '?' (for printing).
std::string printable_text(const std::string& s);

}  // namespace t6
