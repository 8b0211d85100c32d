// Token log-probabilities for the OpenAI APIs: log softmax of a row of logits at the chosen token
// and its top-k alternatives, and their JSON shapes (the legacy completions `logprobs` object and
// the chat `logprobs.content` list).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace t6 {
class Tokenizer;
}

namespace t6::serve {

struct TokenLogprob {
    int32_t token = 0;
    bool has_logprob = true;  // false for the first prompt token (nothing predicts it)
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;  // the k most likely tokens, descending
};

// log softmax(row)[token] (in double, like t6 eval) and the top k ids (ties: lower id first).
TokenLogprob token_logprob(const float* row, int V, int32_t token, int k);

// The legacy completions shape: {tokens, token_logprobs, top_logprobs, text_offset}. tokens are
// the tokens' texts (bytes that are not valid UTF-8 become U+FFFD); text_offset[i] is the offset,
// in Unicode code points, of token i in the text prompt + completion (vLLM's and OpenAI's
// convention), counting from `first_offset`; top_logprobs are dicts token text -> logprob (null
// where there is no logprob).
nlohmann::json completion_logprobs(const Tokenizer& tok, const std::vector<TokenLogprob>& lps,
                                   size_t first_offset = 0);
// Code points of the tokens' texts (the offset after them).
size_t text_length(const Tokenizer& tok, const std::vector<TokenLogprob>& lps);

// The chat shape: {"content": [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}.
nlohmann::json chat_logprobs(const Tokenizer& tok, const std::vector<TokenLogprob>& lps);

}  // namespace t6::serve
