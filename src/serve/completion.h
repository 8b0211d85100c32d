// One completion in flight: what the HTTP handler asks for, and the channel through which the
// scheduler thread hands back its text. The handler and the scheduler share it (shared_ptr);
// everything below `mu` is guarded by it, and `cv` signals every change.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "infer/sampler.h"
#include "serve/logprobs.h"

namespace t6::serve {

struct CompletionJob {
    // Set by the handler before submitting, then read-only.
    std::vector<int32_t> prompt;  // token ids, at least one
    int max_tokens = 16;
    SamplingParams sampling;
    std::vector<std::string> stop;
    bool ignore_eos = false;
    // max_tokens may be 0 (completions with echo): the job only prefills (with score_prompt:
    // scores) its prompt.
    // logprobs: -1 none, else the log-probability of every generated token (and of every prompt
    // token after the first when score_prompt) with the top `logprobs` alternatives (0..20).
    int logprobs = -1;
    bool score_prompt = false;
    // OpenAI's penalties, over the tokens generated so far (c = count of token j):
    //   logit[j] -= c * frequency_penalty + (c > 0) * presence_penalty
    float presence_penalty = 0, frequency_penalty = 0;
    std::unordered_map<int32_t, float> logit_bias;  // added to the logits; <= -100 bans
    std::chrono::steady_clock::time_point submitted = std::chrono::steady_clock::now();

    // Set by the handler (client gone) or at shutdown; the scheduler frees the slot at its next
    // step.
    std::atomic<bool> cancelled{false};

    std::mutex mu;
    std::condition_variable cv;
    std::string text;           // released text so far (valid UTF-8)
    int completion_tokens = 0;  // tokens generated (an end-of-text token is not counted)
    bool done = false;
    std::string finish_reason;  // "stop" | "length" | "cancelled" | "error" once done
    std::string error;          // message when finish_reason is "error"
    // With logprobs >= 0: one entry per prompt token (score_prompt; the first has no logprob)
    // and per generated token (tokens[i], published with the text).
    std::vector<TokenLogprob> prompt_logprobs;
    std::vector<TokenLogprob> token_logprobs;

    // Scheduler side: appends text and/or finishes, then wakes the handler.
    void publish(const std::string& piece, int tokens, const char* finish = nullptr,
                 const std::string& err = {}) {
        {
            std::lock_guard<std::mutex> lock(mu);
            text += piece;
            completion_tokens = tokens;
            if (finish) {
                done = true;
                finish_reason = finish;
                error = err;
            }
        }
        cv.notify_all();
    }
};

}  // namespace t6::serve
