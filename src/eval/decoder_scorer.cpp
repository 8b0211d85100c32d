#include "eval/decoder_scorer.h"

#include "core/error.h"

namespace t6::eval {

DecoderScorer::DecoderScorer(const Model& model, int max_length, bool reuse_cache)
    : dec_(model, 1, max_length, CacheType::f32),
      max_length_(max_length),
      reuse_(reuse_cache),
      V_(model.config().vocab_size) {
    if (max_length <= 0 || max_length > model.config().block_size)
        fail("max length ", max_length, " must be in [1, ", model.config().block_size,
             "] (the model's block_size)");
    ctx_logits_.resize(V_);
}

void DecoderScorer::prefill(const std::vector<int32_t>& ctx, size_t begin) {
    dec_.reset(0);
    const int n = int(ctx.size() - begin);
    dec_.append(0, ctx.data() + begin, n, ctx_logits_.data());
    tokens_computed_ += n;
}

double DecoderScorer::score_continuation(const std::vector<int32_t>& cont) {
    const int ctx_len = dec_.cache().length(0);
    double ll = token_logprob(ctx_logits_.data(), V_, cont[0]);
    const int n = int(cont.size()) - 1;  // the last token is scored, never fed
    if (n > 0) {
        cont_logits_.resize(size_t(n) * V_);
        dec_.append(0, cont.data(), n, cont_logits_.data(), true);
        tokens_computed_ += n;
        for (int i = 0; i < n; i++)
            ll += token_logprob(cont_logits_.data() + size_t(i) * V_, V_, cont[i + 1]);
    }
    dec_.cache().set_length(0, ctx_len);
    return ll;
}

std::vector<double> DecoderScorer::loglikelihood(const std::vector<TokenRequest>& requests) {
    std::vector<double> out(requests.size());
    const std::vector<int32_t>* prefilled = nullptr;  // context now in the slot
    size_t prefilled_begin = 0;
    for (size_t i = 0; i < requests.size(); i++) {
        const TokenRequest& r = requests[i];
        if (r.context.empty() || r.continuation.empty())
            fail("internal: a request without context or continuation tokens");
        if (int(r.continuation.size()) > max_length_)
            fail("a continuation of ", r.continuation.size(), " tokens exceeds the context of ",
                 max_length_, " tokens");
        // Left truncation: keep the last max_length + 1 tokens of context + continuation.
        const size_t total = r.context.size() + r.continuation.size();
        const size_t cut = total > size_t(max_length_) + 1 ? total - (max_length_ + 1) : 0;
        const bool same = reuse_ && prefilled && prefilled_begin == cut &&
                          (prefilled == &r.context || *prefilled == r.context);
        if (!same) {
            prefill(r.context, cut);
            prefilled = &r.context;
            prefilled_begin = cut;
        }
        out[i] = score_continuation(r.continuation);
        if (!reuse_) prefilled = nullptr;
    }
    return out;
}

}  // namespace t6::eval
