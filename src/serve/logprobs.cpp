#include "serve/logprobs.h"

#include <algorithm>
#include <cmath>

#include "serve/text_stream.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace t6::serve {

using nlohmann::json;

namespace {

// A token's text on its own: valid UTF-8, each byte of a split character as U+FFFD.
std::string token_text(const Tokenizer& tok, int32_t id) {
    Utf8Sanitizer s;
    std::string out = s.push(tok.token_bytes(id));
    return out + s.flush();
}

}  // namespace

TokenLogprob token_logprob(const float* row, int V, int32_t token, int k) {
    float mx = row[0];
    for (int i = 1; i < V; i++) mx = std::max(mx, row[i]);
    double s = 0;
    for (int i = 0; i < V; i++) s += std::exp(double(row[i]) - mx);
    const double lse = double(mx) + std::log(s);
    TokenLogprob t;
    t.token = token;
    t.logprob = float(double(row[token]) - lse);
    k = std::min(k, V);
    if (k > 0) {
        // Insertion into a short sorted list (k <= 20): one pass, no allocation of V.
        std::vector<int32_t> ids;
        ids.reserve(size_t(k) + 1);
        for (int i = 0; i < V; i++) {
            if (int(ids.size()) == k && row[i] <= row[ids.back()]) continue;
            auto at = ids.end();
            while (at != ids.begin() && row[*(at - 1)] < row[i]) --at;
            ids.insert(at, i);
            if (int(ids.size()) > k) ids.pop_back();
        }
        for (int32_t id : ids) t.top.emplace_back(id, float(double(row[id]) - lse));
    }
    return t;
}

size_t text_length(const Tokenizer& tok, const std::vector<TokenLogprob>& lps) {
    size_t n = 0;
    for (const auto& t : lps) n += text::utf8_lead_bytes(token_text(tok, t.token));
    return n;
}

json completion_logprobs(const Tokenizer& tok, const std::vector<TokenLogprob>& lps,
                         size_t first_offset) {
    json tokens = json::array(), logprobs = json::array(), top = json::array(),
         offsets = json::array();
    size_t off = first_offset;
    for (const auto& t : lps) {
        const std::string text = token_text(tok, t.token);
        tokens.push_back(text);
        offsets.push_back(off);
        off += text::utf8_lead_bytes(text);
        if (!t.has_logprob) {
            logprobs.push_back(nullptr);
            top.push_back(nullptr);
            continue;
        }
        logprobs.push_back(t.logprob);
        json d = json::object();
        // Two tokens may share a text (e.g. split characters): the likelier one is kept.
        for (const auto& [id, lp] : t.top) {
            const std::string k = token_text(tok, id);
            if (!d.contains(k)) d[k] = lp;
        }
        top.push_back(std::move(d));
    }
    return {{"tokens", tokens},
            {"token_logprobs", logprobs},
            {"top_logprobs", top},
            {"text_offset", offsets}};
}

json chat_logprobs(const Tokenizer& tok, const std::vector<TokenLogprob>& lps) {
    const auto entry = [&](int32_t id, float lp) {
        const std::string b = tok.token_bytes(id);
        json bytes = json::array();
        for (unsigned char c : b) bytes.push_back(int(c));
        return json{{"token", token_text(tok, id)}, {"logprob", lp}, {"bytes", bytes}};
    };
    json content = json::array();
    for (const auto& t : lps) {
        json e = entry(t.token, t.logprob);
        json top = json::array();
        for (const auto& [id, lp] : t.top) top.push_back(entry(id, lp));
        e["top_logprobs"] = top;
        content.push_back(std::move(e));
    }
    return {{"content", content}};
}

}  // namespace t6::serve
