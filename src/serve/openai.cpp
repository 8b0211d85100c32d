#include "serve/openai.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <random>

namespace t6::serve {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
    throw ApiError(400, message, param);
}

bool present(const json& j, const char* key) {
    return j.contains(key) && !j[key].is_null();
}

double number(const json& j, const char* key, double lo, double hi) {
    const json& v = j[key];
    if (!v.is_number()) bad(key, std::string(key) + " must be a number");
    const double x = v.get<double>();
    if (!(x >= lo && x <= hi))
        bad(key, std::string(key) + " must be between " + json(lo).dump() + " and " +
                     json(hi).dump() + " (got " + v.dump() + ")");
    return x;
}

int64_t integer(const json& j, const char* key, int64_t lo, int64_t hi) {
    const json& v = j[key];
    if (!v.is_number_integer()) bad(key, std::string(key) + " must be an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
        bad(key, std::string(key) + " must be at most " + std::to_string(hi));
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi)
        bad(key, std::string(key) + " must be between " + std::to_string(lo) + " and " +
                     std::to_string(hi) + " (got " + std::to_string(x) + ")");
    return x;
}

bool boolean(const json& j, const char* key) {
    if (!j[key].is_boolean()) bad(key, std::string(key) + " must be true or false");
    return j[key].get<bool>();
}

}  // namespace

json error_body(const ApiError& e) {
    return {{"error",
             {{"message", e.what()},
              {"type", e.type},
              {"param", e.param.empty() ? json(nullptr) : json(e.param)},
              {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

namespace {

json parse_body(const std::string& body) {
    json j;
    try {
        j = json::parse(body);
    } catch (const json::out_of_range& e) {  // {"max_tokens": 1e400}
        std::string what = e.what();
        if (const auto at = what.find("] "); at != std::string::npos) what = what.substr(at + 2);
        throw ApiError(400, "A number in the request body is out of range (" + what + ").");
    } catch (const json::exception&) {
        throw ApiError(400,
                       "We could not parse the JSON body of your request. (HINT: This likely "
                       "means you aren't using your HTTP library correctly.)");
    }
    if (!j.is_object()) throw ApiError(400, "The request body must be a JSON object.");
    return j;
}

void check_model(const json& j, const std::string& model_id) {
    if (!present(j, "model")) return;
    if (!j["model"].is_string()) bad("model", "model must be a string");
    if (j["model"].get<std::string>() != model_id)
        throw ApiError(404,
                       "The model '" + j["model"].get<std::string>() +
                           "' does not exist (this server serves '" + model_id + "')",
                       "model", "model_not_found");
}

int32_t token_id(const json& v, const char* param, int vocab_size) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size)
        bad(param, std::string(param) + ": " + v.dump() + " is not a token id (0.." +
                       std::to_string(vocab_size - 1) + ")");
    return int32_t(v.get<int64_t>());
}

// The fields completions and chat share; `min_tokens` is 0 where max_tokens 0 may score a prompt.
void parse_generation(const json& j, GenerationParams& r, int max_context, int vocab_size,
                      const char* max_tokens_key, int min_tokens) {
    if (present(j, max_tokens_key))
        r.max_tokens = int(integer(j, max_tokens_key, min_tokens, max_context));
    if (present(j, "temperature")) r.sampling.temperature = float(number(j, "temperature", 0, 2));
    if (present(j, "top_p")) {
        r.sampling.top_p = float(number(j, "top_p", 0, 1));
        if (r.sampling.top_p <= 0) bad("top_p", "top_p must be greater than 0");
    }
    if (present(j, "top_k")) {
        const int64_t k = integer(j, "top_k", -1, INT32_MAX);  // -1 or 0: off
        r.sampling.top_k = k < 0 ? 0 : int(k);
    }
    if (present(j, "seed"))
        r.sampling.seed = uint64_t(integer(j, "seed", INT64_MIN, INT64_MAX));
    else
        r.sampling.seed = std::random_device{}() * 0x100000001ull ^ std::random_device{}();
    if (present(j, "stop")) {
        const json& s = j["stop"];
        if (s.is_string()) {
            r.stop.push_back(s.get<std::string>());
        } else if (s.is_array() && s.size() <= 4) {
            for (const auto& e : s) {
                if (!e.is_string()) bad("stop", "stop must be a string or a list of strings");
                r.stop.push_back(e.get<std::string>());
            }
        } else {
            bad("stop", "stop must be a string or a list of at most 4 strings");
        }
        for (const auto& s2 : r.stop)
            if (s2.empty()) bad("stop", "stop sequences must not be empty");
    }
    if (present(j, "stream")) r.stream = boolean(j, "stream");
    if (present(j, "stream_options")) {
        const json& o = j["stream_options"];
        if (!o.is_object()) bad("stream_options", "stream_options must be an object");
        if (present(o, "include_usage")) r.include_usage = boolean(o, "include_usage");
    }
    if (present(j, "ignore_eos")) r.ignore_eos = boolean(j, "ignore_eos");
    if (present(j, "n")) r.n = int(integer(j, "n", 1, kMaxChoices));
    for (const char* k : {"presence_penalty", "frequency_penalty"})
        if (present(j, k))
            (k[0] == 'p' ? r.presence_penalty : r.frequency_penalty) = float(number(j, k, -2, 2));
    if (present(j, "logit_bias")) {
        const json& b = j["logit_bias"];
        if (!b.is_object())
            bad("logit_bias", "logit_bias must be an object of token id -> bias (-100..100)");
        for (const auto& [key, v] : b.items()) {
            char* end = nullptr;
            errno = 0;
            const long long id = std::strtoll(key.c_str(), &end, 10);
            if (key.empty() || *end != '\0' || errno != 0 || id < 0 || id >= vocab_size)
                bad("logit_bias", "logit_bias: '" + key + "' is not a token id (0.." +
                                      std::to_string(vocab_size - 1) + ")");
            if (!v.is_number() || !(v.get<double>() >= -100 && v.get<double>() <= 100))
                bad("logit_bias",
                    "logit_bias: the bias of token " + key + " must be a number in -100..100");
            r.logit_bias[int32_t(id)] = v.get<float>();
        }
        long banned = 0;
        for (const auto& kv : r.logit_bias) banned += kv.second <= -100;
        if (banned >= vocab_size) bad("logit_bias", "logit_bias bans every token");
    }
    if (present(j, "user") && !j["user"].is_string()) bad("user", "user must be a string");
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& body, const std::string& model_id,
                                           int max_context, int vocab_size) {
    const json j = parse_body(body);
    check_model(j, model_id);
    CompletionRequest r;
    if (!j.contains("prompt")) bad("prompt", "prompt is required");
    // A string, a list of strings, a list of token ids, or a list of lists of token ids.
    const json& p = j["prompt"];
    const char* shape =
        "prompt must be a string, a list of strings, a list of token ids or a list of lists of "
        "token ids";
    const auto ids = [&](const json& a) {
        Prompt q;
        q.tokens = true;
        for (const auto& t : a) q.ids.push_back(token_id(t, "prompt", vocab_size));
        return q;
    };
    if (p.is_string()) {
        r.prompts.push_back({p.get<std::string>(), {}, false});
    } else if (p.is_array() && !p.empty() && p[0].is_number()) {
        r.prompts.push_back(ids(p));
    } else if (p.is_array() && !p.empty()) {
        for (const auto& e : p) {
            if (e.is_string())
                r.prompts.push_back({e.get<std::string>(), {}, false});
            else if (e.is_array() && !e.empty())
                r.prompts.push_back(ids(e));
            else
                bad("prompt", shape);
        }
    } else {
        bad("prompt", shape);
    }
    if (present(j, "echo")) r.echo = boolean(j, "echo");
    parse_generation(j, r, max_context, vocab_size, "max_tokens", r.echo ? 0 : 1);
    if (present(j, "logprobs")) r.logprobs = int(integer(j, "logprobs", 0, 5));
    if (present(j, "best_of") && integer(j, "best_of", 1, kMaxChoices) != r.n)
        bad("best_of", "best_of must equal n (it is not supported otherwise)");
    if (long(r.prompts.size()) * r.n > 64)
        bad("n", "prompts x n must be at most 64 choices per request");
    if (r.stream && r.echo && r.max_tokens == 0)
        bad("stream", "max_tokens 0 (scoring the prompt) cannot be streamed");
    if (present(j, "suffix")) bad("suffix", "suffix is not supported");
    return r;
}

ChatRequest parse_chat_request(const std::string& body, const std::string& model_id,
                               int max_context, int vocab_size) {
    const json j = parse_body(body);
    check_model(j, model_id);
    ChatRequest r;
    if (!j.contains("messages")) bad("messages", "messages is required");
    const json& m = j["messages"];
    if (!m.is_array() || m.empty()) bad("messages", "messages must be a non-empty list");
    for (size_t i = 0; i < m.size(); i++) {
        const std::string at = "messages[" + std::to_string(i) + "]";
        const json& e = m[i];
        if (!e.is_object() || !e.contains("role") || !e["role"].is_string())
            bad(at + ".role", at + " must be an object with a string role");
        ChatMessage msg;
        msg.role = e["role"].get<std::string>();
        if (msg.role == "developer") msg.role = "system";
        if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
            bad(at + ".role", at + ".role: unknown role '" + msg.role +
                                  "' (system, developer, user or assistant)");
        const json c = e.value("content", json(nullptr));
        if (c.is_string()) {
            msg.content = c.get<std::string>();
        } else if (c.is_array()) {  // content parts: only text ones
            for (const auto& part : c) {
                if (!part.is_object() || part.value("type", "") != "text" ||
                    !part.contains("text") || !part["text"].is_string())
                    bad(at + ".content", at + ".content: only parts {\"type\": \"text\", " +
                                             "\"text\": ...} are supported");
                msg.content += part["text"].get<std::string>();
            }
        } else if (!(c.is_null() && msg.role == "assistant")) {
            bad(at + ".content", at + ".content must be a string or a list of text parts");
        }
        r.messages.push_back(std::move(msg));
    }
    parse_generation(j, r, max_context, vocab_size,
                     present(j, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                     1);
    if (present(j, "logprobs")) r.chat_logprobs = boolean(j, "logprobs");
    if (present(j, "top_logprobs")) {
        const int k = int(integer(j, "top_logprobs", 0, 20));
        if (!r.chat_logprobs) bad("top_logprobs", "top_logprobs needs logprobs: true");
        r.logprobs = k;
    } else if (r.chat_logprobs) {
        r.logprobs = 0;
    }
    if (present(j, "tools") && !(j["tools"].is_array() && j["tools"].empty()))
        bad("tools", "tools are not supported");
    if (present(j, "response_format") &&
        !(j["response_format"].is_object() && j["response_format"].value("type", "") == "text"))
        bad("response_format", "only response_format {\"type\": \"text\"} is supported");
    return r;
}

std::string parse_tokenize_request(const std::string& body, const std::string& model_id) {
    const json j = parse_body(body);
    check_model(j, model_id);
    const char* key = j.contains("prompt") ? "prompt" : "content";
    if (!j.contains(key) || !j[key].is_string())
        bad("prompt", "prompt (or content) must be a string");
    if (present(j, "add_special_tokens")) boolean(j, "add_special_tokens");  // no BOS in t6
    return j[key].get<std::string>();
}

std::vector<int32_t> parse_detokenize_request(const std::string& body, const std::string& model_id,
                                              int vocab_size) {
    const json j = parse_body(body);
    check_model(j, model_id);
    if (!j.contains("tokens") || !j["tokens"].is_array())
        bad("tokens", "tokens must be a list of token ids");
    std::vector<int32_t> ids;
    for (const auto& t : j["tokens"]) ids.push_back(token_id(t, "tokens", vocab_size));
    return ids;
}

json Usage::as_json() const {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens}};
}

std::string completion_id() {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    static const char* hex = "0123456789abcdef";
    std::string id = "cmpl-";
    for (int i = 0; i < 24; i++) id += hex[rng() & 15];
    return id;
}

int64_t unix_time() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string chat_completion_id() {
    return "chat" + completion_id();
}

json completion_choice(int index, const std::string& text,
                       const std::optional<std::string>& finish_reason, const json& logprobs) {
    return {{"text", text},
            {"index", index},
            {"logprobs", logprobs},
            {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)}};
}

json completion_response(const std::string& id, int64_t created, const std::string& model,
                         json choices, const Usage& usage) {
    return {{"id", id},       {"object", "text_completion"},   {"created", created},
            {"model", model}, {"choices", std::move(choices)}, {"usage", usage.as_json()}};
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model, json choice,
                      const std::optional<Usage>& usage) {
    json j = {{"id", id},
              {"object", "text_completion"},
              {"created", created},
              {"model", model},
              {"choices", json::array({std::move(choice)})}};
    if (usage) j["usage"] = usage->as_json();
    return j;
}

json usage_chunk(const std::string& id, int64_t created, const std::string& model,
                 const Usage& usage, const char* object) {
    return {{"id", id},       {"object", object},         {"created", created},
            {"model", model}, {"choices", json::array()}, {"usage", usage.as_json()}};
}

json chat_choice(int index, const std::string& content, const std::string& finish_reason,
                 const json& logprobs) {
    return {{"index", index},
            {"message", {{"role", "assistant"}, {"content", content}}},
            {"logprobs", logprobs},
            {"finish_reason", finish_reason}};
}

json chat_response(const std::string& id, int64_t created, const std::string& model, json choices,
                   const Usage& usage) {
    return {{"id", id},       {"object", "chat.completion"},   {"created", created},
            {"model", model}, {"choices", std::move(choices)}, {"usage", usage.as_json()}};
}

json chat_chunk(const std::string& id, int64_t created, const std::string& model, int index,
                const json& delta, const std::optional<std::string>& finish_reason,
                const json& logprobs) {
    return {
        {"id", id},
        {"object", "chat.completion.chunk"},
        {"created", created},
        {"model", model},
        {"choices",
         json::array({{{"index", index},
                       {"delta", delta},
                       {"logprobs", logprobs},
                       {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)}}})}};
}

json model_list(const std::string& model, int64_t created) {
    return {
        {"object", "list"},
        {"data",
         json::array(
             {{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "t6"}}})}};
}

std::string sse_event(const json& j) {
    return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace t6::serve
