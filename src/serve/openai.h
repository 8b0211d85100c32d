// The OpenAI completions API as `t6 serve` speaks it: request validation (each problem is an
// ApiError naming the parameter), and the JSON shapes of responses, stream chunks, the model
// list and errors ({"error": {"message", "type", "param", "code"}}).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "infer/sampler.h"

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

struct CompletionRequest {
    std::string prompt;
    int max_tokens = 16;
    SamplingParams sampling;  // seed: the request's, else drawn at random
    std::vector<std::string> stop;
    bool stream = false;
    bool include_usage = false;  // stream_options.include_usage: a last chunk with usage only
    bool echo = false;           // the completion's text starts with the prompt
    bool ignore_eos = false;     // (extension) keep going after <|endoftext|>
};

// Validates a POST /v1/completions body against the served model's id and context.
CompletionRequest parse_completion_request(const std::string& body, const std::string& model_id,
                                           int max_context);

struct Usage {
    int prompt_tokens = 0, completion_tokens = 0;
    nlohmann::json as_json() const;
};

// "cmpl-" + 24 random hex digits.
std::string completion_id();
int64_t unix_time();

nlohmann::json completion_response(const std::string& id, int64_t created, const std::string& model,
                                   const std::string& text, const std::string& finish_reason,
                                   const Usage& usage);
// One streamed chunk; finish_reason null while generating; usage only on the final chunk.
nlohmann::json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                                const std::string& text,
                                const std::optional<std::string>& finish_reason,
                                const std::optional<Usage>& usage = std::nullopt);
// The include_usage chunk: no choices, usage only.
nlohmann::json usage_chunk(const std::string& id, int64_t created, const std::string& model,
                           const Usage& usage);
nlohmann::json model_list(const std::string& model, int64_t created);

// "data: <json>\n\n"
std::string sse_event(const nlohmann::json& j);

}  // namespace t6::serve
