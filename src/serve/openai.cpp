#include "serve/openai.h"

#include <chrono>
#include <cmath>
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

CompletionRequest parse_completion_request(const std::string& body, const std::string& model_id,
                                           int max_context) {
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
    CompletionRequest r;
    if (present(j, "model")) {
        if (!j["model"].is_string()) bad("model", "model must be a string");
        if (j["model"].get<std::string>() != model_id)
            throw ApiError(404,
                           "The model '" + j["model"].get<std::string>() +
                               "' does not exist (this server serves '" + model_id + "')",
                           "model", "model_not_found");
    }
    if (!j.contains("prompt")) bad("prompt", "prompt is required");
    if (!j["prompt"].is_string()) bad("prompt", "prompt must be a string");
    r.prompt = j["prompt"].get<std::string>();
    if (present(j, "max_tokens")) r.max_tokens = int(integer(j, "max_tokens", 1, max_context));
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
    if (present(j, "echo")) r.echo = boolean(j, "echo");
    if (present(j, "ignore_eos")) r.ignore_eos = boolean(j, "ignore_eos");
    // Accepted only at values that change nothing.
    if (present(j, "n") && integer(j, "n", 1, 1) != 1) bad("n", "n must be 1");
    if (present(j, "best_of") && integer(j, "best_of", 1, 1) != 1)
        bad("best_of", "best_of must be 1");
    if (present(j, "logprobs")) bad("logprobs", "logprobs are not supported");
    for (const char* k : {"presence_penalty", "frequency_penalty"})
        if (present(j, k) && number(j, k, -2, 2) != 0) bad(k, std::string(k) + " is not supported");
    if (present(j, "logit_bias") && !(j["logit_bias"].is_object() && j["logit_bias"].empty()))
        bad("logit_bias", "logit_bias is not supported");
    if (present(j, "suffix")) bad("suffix", "suffix is not supported");
    return r;
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

json completion_response(const std::string& id, int64_t created, const std::string& model,
                         const std::string& text, const std::string& finish_reason,
                         const Usage& usage) {
    return {{"id", id},
            {"object", "text_completion"},
            {"created", created},
            {"model", model},
            {"choices", json::array({{{"text", text},
                                      {"index", 0},
                                      {"logprobs", nullptr},
                                      {"finish_reason", finish_reason}}})},
            {"usage", usage.as_json()}};
}

json completion_chunk(const std::string& id, int64_t created, const std::string& model,
                      const std::string& text, const std::optional<std::string>& finish_reason,
                      const std::optional<Usage>& usage) {
    json j = completion_response(id, created, model, text, finish_reason.value_or(""), Usage{});
    if (!finish_reason) j["choices"][0]["finish_reason"] = nullptr;
    if (usage)
        j["usage"] = usage->as_json();
    else
        j.erase("usage");
    return j;
}

json usage_chunk(const std::string& id, int64_t created, const std::string& model,
                 const Usage& usage) {
    return {{"id", id},       {"object", "text_completion"}, {"created", created},
            {"model", model}, {"choices", json::array()},    {"usage", usage.as_json()}};
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
