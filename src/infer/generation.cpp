#include "infer/generation.h"

#include <chrono>
#include <limits>

#include "core/error.h"
#include "core/timing.h"

namespace t6 {

SequenceSampler::SequenceSampler(const GenerationParams& p, int vocab)
    : p_(p), vocab_(vocab), sampler_(p.sampling) {
    if (p.max_tokens < 0) fail("max_tokens must be >= 0 (got ", p.max_tokens, ")");
    T6_CHECK(vocab > 0);
}

SequenceSampler::Pick SequenceSampler::next(const float* logits) {
    T6_CHECK(!done());
    const float* biased = logits;
    if (!p_.logit_bias.empty() || p_.presence_penalty != 0 || p_.frequency_penalty != 0) {
        biased_.assign(logits, logits + vocab_);
        for (const auto& [id, c] : counts_)
            if (id < vocab_)
                biased_[size_t(id)] -=
                    float(c) * p_.frequency_penalty + (c > 0 ? p_.presence_penalty : 0.0f);
        for (const auto& [id, b] : p_.logit_bias)
            if (id >= 0 && id < vocab_)
                biased_[size_t(id)] =
                    b <= -100 ? -std::numeric_limits<float>::infinity() : biased_[size_t(id)] + b;
        biased = biased_.data();
    }
    Pick pick;
    pick.token = sampler_.sample(biased, vocab_);
    if (p_.eos >= 0 && pick.token == p_.eos) {
        ended_ = true;
        pick.finish = Finish::eos;
        return pick;
    }
    generated_++;
    counts_[pick.token]++;
    if (generated_ >= p_.max_tokens) pick.finish = Finish::length;
    return pick;
}

void decode_step(Decoder& dec, const int* slots, const int32_t* tokens, int n, float* logits,
                 bool row_by_row) {
    if (!row_by_row) {
        dec.step(slots, tokens, n, logits);
        return;
    }
    const size_t V = size_t(dec.config().vocab_size);
    for (int i = 0; i < n; i++) dec.step(slots + i, tokens + i, 1, logits + size_t(i) * V);
}

GenerationResult generate(Decoder& dec, int slot, const std::vector<int32_t>& prompt,
                          SequenceSampler& seq, const GenerationHooks& hooks) {
    T6_CHECK(!prompt.empty());
    GenerationResult r;
    std::vector<float> logits(size_t(dec.config().vocab_size));
    const auto t0 = std::chrono::steady_clock::now();
    dec.append(slot, prompt.data(), int(prompt.size()), logits.data());
    r.prefill_s = seconds_since(t0);
    const auto t1 = std::chrono::steady_clock::now();
    while (!seq.done()) {
        const SequenceSampler::Pick pick = seq.next(logits.data());
        if (pick.finish == Finish::eos) {
            r.finish = Finish::eos;
            break;
        }
        r.ids.push_back(pick.token);
        if (hooks.on_token && !hooks.on_token(pick.token)) {
            r.finish = Finish::stopped;
            break;
        }
        if (pick.finish != Finish::none) {
            r.finish = pick.finish;
            break;
        }
        const auto ts = std::chrono::steady_clock::now();
        decode_step(dec, &slot, &pick.token, 1, logits.data());
        if (hooks.time_steps) r.step_seconds.push_back(seconds_since(ts));
    }
    if (r.finish == Finish::none) r.finish = Finish::length;  // max_tokens == 0
    r.decode_s = seconds_since(t1);
    return r;
}

}  // namespace t6
