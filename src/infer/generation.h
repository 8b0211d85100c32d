// The one generation loop: prefill a prompt (Decoder::append, in chunks of chunk_tokens), then
// repeat { pick the next token from the logits, check the stop rules, hand the token on, step }.
// It is cut into the pieces that a caller stepping many sequences at once reuses:
//   - SequenceSampler: one sequence's choice of the next token (penalties and logit bias over
//     its own generated tokens, then its own seeded Sampler) and its stop rules (end-of-text id,
//     max tokens). Its state depends only on that sequence's logits, so its tokens do not depend
//     on what else shares a batched step.
//   - decode_step: one Decoder step over a batch of sequences (or one single-row step each).
//   - generate: the single-sequence loop over both, streaming each token to a callback (which
//     may end the generation early, e.g. on a stop string).
// Callers: `t6 generate`, the server's continuous-batching scheduler (serve/scheduler.cpp: its
// own batch loop, with these pieces per sequence), the study's decode timing and the trainer's
// sample.
#pragma once
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "infer/decoder.h"
#include "infer/sampler.h"

namespace t6 {

// Why a sequence ended.
enum class Finish {
    none,    // still running
    eos,     // it picked the end-of-text token (not counted as generated, not streamed)
    length,  // it generated max_tokens tokens
    stopped  // the caller ended it (a stop string, a cancelled request)
};

struct GenerationParams {
    SamplingParams sampling;
    int max_tokens = 16;  // >= 0
    int32_t eos = -1;     // end-of-text id; < 0: none (generation runs to max_tokens)
    // OpenAI's penalties over the tokens generated so far (c = count of token j):
    //   logit[j] -= c * frequency_penalty + (c > 0) * presence_penalty
    float presence_penalty = 0, frequency_penalty = 0;
    std::unordered_map<int32_t, float> logit_bias;  // added to the logits; <= -100 bans
};

// One sequence's token choice and stop rules. `vocab` ids can be picked: the model's logit rows
// may be wider (GPT-2's vocabulary is padded from 50257 to 50304), only the first vocab count.
class SequenceSampler {
  public:
    SequenceSampler(const GenerationParams& p, int vocab);

    struct Pick {
        int32_t token = 0;
        Finish finish = Finish::none;  // eos: token is the end-of-text id, not generated
    };
    // Picks the next token from this sequence's logits (after the penalties and bias). A token
    // that is not the end-of-text one counts as generated; finish is `length` when it was the
    // max_tokens-th. Call only while !done().
    Pick next(const float* logits);

    int generated() const { return generated_; }
    // No token is to be picked (max_tokens reached, or max_tokens == 0 from the start).
    bool done() const { return generated_ >= p_.max_tokens || ended_; }
    const GenerationParams& params() const { return p_; }
    int vocab() const { return vocab_; }

  private:
    GenerationParams p_;
    int vocab_;
    Sampler sampler_;
    int generated_ = 0;
    bool ended_ = false;
    std::unordered_map<int32_t, int> counts_;  // generated tokens, for the penalties
    std::vector<float> biased_;                // logits after the penalties and logit_bias
};

// One decoding step: appends tokens[i] to slots[i] for i < n, writes logits (n, V). row_by_row:
// n single-row steps instead of one batched step (OpenBLAS's GEMM rows for M > 1 can differ
// from M = 1 in the last bits; single rows make a sequence's logits independent of its batch).
void decode_step(Decoder& dec, const int* slots, const int32_t* tokens, int n, float* logits,
                 bool row_by_row = false);

struct GenerationResult {
    std::vector<int32_t> ids;  // generated tokens (no end-of-text)
    Finish finish = Finish::none;
    double prefill_s = 0;              // Decoder::append of the prompt
    double decode_s = 0;               // everything after the prefill
    std::vector<double> step_seconds;  // each decode_step alone, when GenerationHooks asks
};

struct GenerationHooks {
    // Called with every generated token, in order; returning false ends the generation
    // (Finish::stopped) before another step.
    std::function<bool(int32_t)> on_token;
    bool time_steps = false;  // fill GenerationResult::step_seconds
};

// Prefills `prompt` (non-empty) into `slot` (empty) of `dec`, then generates with `seq` until it
// finishes; the cache must hold prompt + max_tokens - 1 tokens. No step follows the last token.
GenerationResult generate(Decoder& dec, int slot, const std::vector<int32_t>& prompt,
                          SequenceSampler& seq, const GenerationHooks& hooks = {});

}  // namespace t6
