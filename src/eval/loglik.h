// Log-likelihood requests as lm-evaluation-harness makes them, and the interface that scores them.
// A request is a (context, continuation) pair; its score is the summed log-probability of the
// continuation's tokens given the context (harness: LM.loglikelihood). The scorer is an interface
// so that multiple-choice metrics can be tested with injected log-likelihoods, apart from any
// model (see decoder_scorer.h for the model-backed one).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace t6::eval {

// One request in text form: the harness's Instance.arguments = (context, continuation), where the
// continuation already carries the task's target_delimiter (" " by default).
struct TextRequest {
    std::string context, continuation;
};

// The same request in tokens.
struct TokenRequest {
    std::vector<int32_t> context, continuation;
};

// Tokenizes a request the way the harness does (lm_eval/api/model.py, TemplateLM):
//  * loglikelihood(): an empty context becomes [prefix_token_id] (the EOT token) and the
//    continuation is encoded alone; fails if the tokenizer has no EOT token;
//  * _encode_pair(): trailing white space of the context moves to the front of the
//    continuation; whole = encode(context + continuation), context_enc = encode(context),
//    continuation_enc = whole[len(context_enc):].
// Fails if the continuation has no tokens.
TokenRequest encode_request(const Tokenizer& tok, const TextRequest& r);

// log softmax(row)[target] in double precision (row: V logits).
double token_logprob(const float* row, int V, int target);

class LoglikScorer {
  public:
    virtual ~LoglikScorer() = default;
    // The summed log-likelihood of each request's continuation given its context. Consecutive
    // requests with equal contexts may share work (the model scorer prefills the context once).
    virtual std::vector<double> loglikelihood(const std::vector<TokenRequest>& requests) = 0;
};

}  // namespace t6::eval
