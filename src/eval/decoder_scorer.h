// The model-backed LoglikScorer: scores requests with a Decoder (KV cache), as the harness's
// HFLM._loglikelihood_tokens does with full forwards:
//   inp = (context_enc + continuation_enc)[-(max_length + 1):][:-1]
// i.e. a too-long request keeps its last max_length + 1 tokens (truncation from the left), and
// the continuation's tokens are scored by the logits of the positions before them.
// With cache reuse (the default) consecutive requests with the same context prefill it once in a
// cache slot; each continuation is appended after it and the slot is then rolled back to the
// context's length (KVCache::set_length), so the context is never recomputed.
#pragma once
#include <memory>

#include "eval/loglik.h"
#include "infer/decoder.h"
#include "model/model.h"

namespace t6::eval {

class DecoderScorer : public LoglikScorer {
  public:
    // max_length: the longest input (tokens) a request may use, at most the model's block_size.
    DecoderScorer(const Model& model, int max_length, bool reuse_cache = true);

    std::vector<double> loglikelihood(const std::vector<TokenRequest>& requests) override;

    long long tokens_computed() const { return tokens_computed_; }  // positions run
    int max_length() const { return max_length_; }

  private:
    // Appends ctx[begin:] to a fresh slot and keeps its last logits in ctx_logits_.
    void prefill(const std::vector<int32_t>& ctx, size_t begin);
    // The continuation's log-likelihood after the prefilled context (then rolls back).
    double score_continuation(const std::vector<int32_t>& cont);

    Decoder dec_;
    int max_length_;
    bool reuse_;
    int V_;
    std::vector<float> ctx_logits_, cont_logits_;
    long long tokens_computed_ = 0;
};

}  // namespace t6::eval
