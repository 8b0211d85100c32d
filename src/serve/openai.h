// The OpenAI completions API as `t6 serve` speaks it: request validation (each problem is an
// ApiError naming the parameter), and the JSON shapes of responses, stream chunks, the model
// list and errors ({"error": {"message", "type", "param", "code"}}).
#pragma once
#include <climits>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "infer/sampler.h"
#include "serve/chat_template.h"

namespace t6::serve {

struct ApiError : std::runtime_error {
    ApiError(int status, const std::string& message, std::string param = {}, std::string code = {},
             std::string type = "invalid_request_error")
        : std::runtime_error(message),
          status(status),
          param(std::move(param)),
          code(std::move(code)),
          type(std::move(type)) {}
    int status;
    std::string param, code, type;
};

// The error body; param and code are null when empty.
nlohmann::json error_body(const ApiError& e);

// What every generating request shares (completions and chat).
struct GenerationParams {
    int max_tokens = 16;
    SamplingParams sampling;  // seed: the request's, else drawn at random
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage: a last chunk with usage only
    bool ignore_eos = false;     // (extension) keep going after <|endoftext|>
    int n = 1;                   // choices per prompt (1..kMaxChoices); choice i seeds seed + i
    int logprobs = -1;           // -1: none; else top alternatives per token (completions 0..5)
    float presence_penalty = 0, frequency_penalty = 0;  // -2..2
    std::unordered_map<int32_t, float> logit_bias;      // token id -> -100..100
};

constexpr int kMaxChoices = 16;

// One prompt of a completions request: text, or token ids (`tokens`).
struct Prompt {
    std::string text;
    std::vector<int32_t> ids;
    bool tokens = false;
};

struct CompletionRequest : GenerationParams {
    std::vector<Prompt> prompts;  // a batch: choices are indexed prompt * n + i
    bool echo = false;            // each choice's text (and logprobs) starts with its prompt
};

// Validates a POST /v1/completions body against the served model's id, context and vocabulary
// (token ids in prompts and logit_bias must be below vocab_size). max_tokens 0 is allowed with
// echo (the prompt is only scored, as lm-evaluation-harness asks).
CompletionRequest parse_completion_request(const std::string& body, const std::string& model_id,
                                           int max_context, int vocab_size = INT32_MAX);

struct ChatRequest : GenerationParams {
    std::vector<ChatMessage> messages;
    bool chat_logprobs = false;  // "logprobs": true; top_logprobs (0..20) in GenerationParams
};

// POST /v1/chat/completions; roles must be system, user, assistant (or developer, as system).
ChatRequest parse_chat_request(const std::string& body, const std::string& model_id,
                               int max_context, int vocab_size = INT32_MAX);

// POST /tokenize: {"prompt" or "content": text, "add_special_tokens"?: bool}.
std::string parse_tokenize_request(const std::string& body, const std::string& model_id);
// POST /detokenize: {"tokens": [ids]}.
std::vector<int32_t> parse_detokenize_request(const std::string& body, const std::string& model_id,
                                              int vocab_size);

struct Usage {
    int prompt_tokens = 0, completion_tokens = 0;
    nlohmann::json as_json() const;
};

// "cmpl-" + 24 random hex digits.
std::string completion_id();
int64_t unix_time();

// "chatcmpl-" + 24 random hex digits.
std::string chat_completion_id();

// One choice of a text completion ("logprobs": null unless given).
nlohmann::json completion_choice(int index, const std::string& text,
                                 const std::optional<std::string>& finish_reason,
                                 const nlohmann::json& logprobs = nullptr);
nlohmann::json completion_response(const std::string& id, int64_t created, const std::string& model,
                                   nlohmann::json choices, const Usage& usage);
// One streamed chunk: one choice; usage only where given.
nlohmann::json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                                nlohmann::json choice,
                                const std::optional<Usage>& usage = std::nullopt);
// The include_usage chunk: no choices, usage only (object: text_completion or
// chat.completion.chunk).
nlohmann::json usage_chunk(const std::string& id, int64_t created, const std::string& model,
                           const Usage& usage, const char* object = "text_completion");

nlohmann::json chat_choice(int index, const std::string& content, const std::string& finish_reason,
                           const nlohmann::json& logprobs = nullptr);
nlohmann::json chat_response(const std::string& id, int64_t created, const std::string& model,
                             nlohmann::json choices, const Usage& usage);
// A chat.completion.chunk with one choice: delta {"role"?, "content"?}.
nlohmann::json chat_chunk(const std::string& id, int64_t created, const std::string& model,
                          int index, const nlohmann::json& delta,
                          const std::optional<std::string>& finish_reason,
                          const nlohmann::json& logprobs = nullptr);
nlohmann::json model_list(const std::string& model, int64_t created);

// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& j);

}  // namespace t6::serve
