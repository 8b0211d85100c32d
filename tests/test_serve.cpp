// t6 serve's pure parts: the text stream (UTF-8 sanitizing, stop sequences), the API-key check,
// OpenAI request validation and response shapes, and the slot plan.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "serve/auth.h"
#include "serve/logprobs.h"
#include "serve/metrics.h"
#include "serve/openai.h"
#include "serve/slot_plan.h"
#include "serve/text_stream.h"
#include "text/tokenizer.h"

using namespace t6;
using namespace t6::serve;
using nlohmann::json;

namespace {

// Pushes `pieces` one by one; returns the concatenated releases (and the finish).
std::string run_stream(TextStream& s, const std::vector<std::string>& pieces) {
    std::string out;
    for (const auto& p : pieces) out += s.push(p);
    return out + s.finish();
}

TEST(TextStream, Utf8SplitAcrossTokensIsHeldUntilComplete) {
    TextStream s;
    EXPECT_EQ(s.push("a\xE2"), "a");
    EXPECT_EQ(s.push("\x82"), "");
    EXPECT_EQ(s.push("\xAC!"), "\xE2\x82\xAC!");  // U+20AC
    EXPECT_EQ(s.finish(), "");
}

TEST(TextStream, InvalidBytesBecomeReplacementCharacters) {
    const std::string fffd = "\xEF\xBF\xBD";
    TextStream s;
    EXPECT_EQ(run_stream(s, {"\xFF", "x", "\xE2\x82", "y", "\xC3"}),
              fffd + "x" + fffd + fffd + "y" + fffd);
}

TEST(TextStream, AnySplitGivesTheSameText) {
    const std::string bytes = "h\xC3\xA9llo \xF0\x9F\x98\x80 \xE0\x80 z\xED\xA0\x80\xC3";
    TextStream whole;
    const std::string expect = run_stream(whole, {bytes});
    for (size_t cut1 = 0; cut1 <= bytes.size(); cut1++)
        for (size_t cut2 = cut1; cut2 <= bytes.size(); cut2++) {
            TextStream s;
            EXPECT_EQ(run_stream(s, {bytes.substr(0, cut1), bytes.substr(cut1, cut2 - cut1),
                                     bytes.substr(cut2)}),
                      expect);
        }
    EXPECT_TRUE(json(expect).dump().size() > 0);  // valid UTF-8: dumps without throwing
}

TEST(TextStream, StopSequenceEndsTheTextAndIsNotReleased) {
    TextStream s({"END", "\n\n"});
    EXPECT_EQ(s.push("abc E"), "abc ");  // "E" may start "END"
    EXPECT_EQ(s.push("N"), "");
    EXPECT_EQ(s.push("Dxyz"), "");
    EXPECT_TRUE(s.stopped());
    EXPECT_EQ(s.finish(), "");
    TextStream t({"END"});
    EXPECT_EQ(run_stream(t, {"x E", "Nd", "!"}), "x ENd!");  // a false start is released
    EXPECT_FALSE(t.stopped());
    TextStream u({"ab", "b"});
    EXPECT_EQ(run_stream(u, {"xa", "b"}), "x");  // the earliest match wins
}

TEST(Auth, BearerKeyMatchesExactly) {
    EXPECT_TRUE(constant_time_equal("secret", "secret"));
    EXPECT_FALSE(constant_time_equal("secreT", "secret"));
    EXPECT_FALSE(constant_time_equal("secret1", "secret"));
    EXPECT_FALSE(constant_time_equal("", "secret"));
    EXPECT_TRUE(bearer_matches("Bearer k3y", "k3y"));
    EXPECT_TRUE(bearer_matches("bearer k3y", "k3y"));  // RFC 7235: the scheme is case-blind
    EXPECT_TRUE(bearer_matches("BEARER  k3y", "k3y"));
    EXPECT_FALSE(bearer_matches("Bearerk3y", "k3y"));
    EXPECT_FALSE(bearer_matches("Basic k3y", "k3y"));
    EXPECT_FALSE(bearer_matches("Bearer k3", "k3y"));
    EXPECT_FALSE(bearer_matches("", "k3y"));
}

// The ApiError a body raises (status 0 when it parses).
ApiError error_of(const std::string& body) {
    try {
        parse_completion_request(body, "m", 64);
    } catch (const ApiError& e) {
        return e;
    }
    return ApiError(0, "");
}

TEST(OpenAiRequest, ParsesEveryField) {
    auto r = parse_completion_request(
        R"({"model":"m","prompt":"hi","max_tokens":5,"temperature":0.5,"top_p":0.9,"top_k":40,
            "seed":-3,"stop":["a","b"],"stream":true,"stream_options":{"include_usage":true},
            "echo":true,"n":1,"presence_penalty":0})",
        "m", 64);
    ASSERT_EQ(r.prompts.size(), 1u);
    EXPECT_EQ(r.prompts[0].text, "hi");
    EXPECT_EQ(r.max_tokens, 5);
    EXPECT_FLOAT_EQ(r.sampling.temperature, 0.5f);
    EXPECT_FLOAT_EQ(r.sampling.top_p, 0.9f);
    EXPECT_EQ(r.sampling.top_k, 40);
    EXPECT_EQ(r.sampling.seed, uint64_t(-3));
    EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(r.stream && r.include_usage && r.echo);
    EXPECT_EQ(parse_completion_request(R"({"prompt":"x","stop":"s"})", "m", 64).stop.size(), 1u);
    EXPECT_EQ(parse_completion_request(R"({"prompt":"x"})", "m", 64).max_tokens, 16);
}

TEST(OpenAiRequest, BadInputNamesTheParameter) {
    struct Case {
        const char* body;
        int status;
        const char* param;
    };
    const Case cases[] = {
        {"{not json", 400, ""},
        {"[1,2]", 400, ""},
        {R"({"prompt":"x","max_tokens":1e400})", 400, ""},  // #17.11: was a 500 server_error
        {R"({"model":"other","prompt":"x"})", 404, "model"},
        {R"({"model":3,"prompt":"x"})", 400, "model"},
        {R"({"max_tokens":4})", 400, "prompt"},
        {R"({"prompt":[]})", 400, "prompt"},
        {R"({"prompt":[[]]})", 400, "prompt"},
        {R"({"prompt":[1,"a"]})", 400, "prompt"},
        {R"({"prompt":"x","max_tokens":-1})", 400, "max_tokens"},
        {R"({"prompt":"x","max_tokens":0})", 400, "max_tokens"},
        {R"({"prompt":"x","max_tokens":65})", 400, "max_tokens"},
        {R"({"prompt":"x","max_tokens":1e30})", 400, "max_tokens"},
        {R"({"prompt":"x","max_tokens":18446744073709551615})", 400, "max_tokens"},
        {R"({"prompt":"x","max_tokens":"5"})", 400, "max_tokens"},
        {R"({"prompt":"x","temperature":-1})", 400, "temperature"},
        {R"({"prompt":"x","temperature":"hot"})", 400, "temperature"},
        {R"({"prompt":"x","top_p":0})", 400, "top_p"},
        {R"({"prompt":"x","top_k":1.5})", 400, "top_k"},
        {R"({"prompt":"x","seed":"7"})", 400, "seed"},
        {R"({"prompt":"x","stop":[1]})", 400, "stop"},
        {R"({"prompt":"x","stop":["a","b","c","d","e"]})", 400, "stop"},
        {R"({"prompt":"x","stop":""})", 400, "stop"},
        {R"({"prompt":"x","stream":"yes"})", 400, "stream"},
        {R"({"prompt":"x","n":0})", 400, "n"},
        {R"({"prompt":"x","n":17})", 400, "n"},
        {R"({"prompt":"x","n":2,"best_of":3})", 400, "best_of"},
        {R"({"prompt":"x","logprobs":6})", 400, "logprobs"},
        {R"({"prompt":"x","logprobs":-1})", 400, "logprobs"},
        {R"({"prompt":"x","logit_bias":[1]})", 400, "logit_bias"},
        {R"({"prompt":"x","logit_bias":{"-1":1}})", 400, "logit_bias"},
        {R"({"prompt":"x","logit_bias":{"1":"a"}})", 400, "logit_bias"},
        {R"({"prompt":"x","echo":true,"max_tokens":0,"stream":true})", 400, "stream"},
    };
    for (const auto& c : cases) {
        ApiError e = error_of(c.body);
        EXPECT_EQ(e.status, c.status) << c.body;
        EXPECT_EQ(e.param, c.param) << c.body;
        json b = error_body(e);
        EXPECT_EQ(b["error"]["type"], "invalid_request_error") << c.body;
        EXPECT_TRUE(b["error"]["message"].is_string()) << c.body;
        EXPECT_TRUE(b["error"].contains("param") && b["error"].contains("code")) << c.body;
    }
}

TEST(OpenAiResponse, Shapes) {
    json r = completion_response("cmpl-1", 7, "m",
                                 json::array({completion_choice(0, "text", "length")}), {3, 2});
    EXPECT_EQ(r["object"], "text_completion");
    EXPECT_EQ(r["choices"][0]["text"], "text");
    EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(r["usage"]["total_tokens"], 5);
    json c = completion_chunk("cmpl-1", 7, "m", completion_choice(0, "t", std::nullopt));
    EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());
    EXPECT_FALSE(c.contains("usage"));
    EXPECT_EQ(sse_event(json{{"a", 1}}), "data: {\"a\":1}\n\n");
    EXPECT_EQ(model_list("m", 1)["data"][0]["id"], "m");
    EXPECT_EQ(completion_id().rfind("cmpl-", 0), 0u);
}

TEST(OpenAiRequest, BatchesTokenPromptsAndScoring) {
    auto r = parse_completion_request(
        R"({"prompt":[[1,2],"ab",[3]],"n":2,"echo":true,"max_tokens":0,"logprobs":1,
            "logit_bias":{"5":-100,"7":2.5},"presence_penalty":1,"frequency_penalty":-0.5,
            "user":"u"})",
        "m", 64, 256);
    ASSERT_EQ(r.prompts.size(), 3u);
    EXPECT_TRUE(r.prompts[0].tokens);
    EXPECT_EQ(r.prompts[0].ids, (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(r.prompts[1].text, "ab");
    EXPECT_EQ(r.n, 2);
    EXPECT_EQ(r.max_tokens, 0);
    EXPECT_EQ(r.logprobs, 1);
    EXPECT_FLOAT_EQ(r.logit_bias.at(5), -100.0f);
    EXPECT_FLOAT_EQ(r.frequency_penalty, -0.5f);
    EXPECT_EQ(parse_completion_request(R"({"prompt":[4,5]})", "m", 64).prompts.size(), 1u);
    EXPECT_THROW(parse_completion_request(R"({"prompt":[4,256]})", "m", 64, 256), ApiError);
    EXPECT_THROW(
        parse_completion_request(R"({"prompt":"a","logit_bias":{"0":-100,"1":-100}})", "m", 64, 2),
        ApiError);
    EXPECT_EQ(parse_completion_request(R"({"prompt":"a","logit_bias":{"0":-100}})", "m", 64, 2)
                  .logit_bias.size(),
              1u);
}

TEST(OpenAiRequest, Chat) {
    auto r = parse_chat_request(
        R"({"messages":[{"role":"developer","content":"s"},
                        {"role":"user","content":[{"type":"text","text":"a"},
                                                  {"type":"text","text":"b"}]},
                        {"role":"assistant","content":null}],
            "max_completion_tokens":5,"logprobs":true,"top_logprobs":3})",
        "m", 64);
    ASSERT_EQ(r.messages.size(), 3u);
    EXPECT_EQ(r.messages[0].role, "system");
    EXPECT_EQ(r.messages[1].content, "ab");
    EXPECT_EQ(r.max_tokens, 5);
    EXPECT_EQ(r.logprobs, 3);
    ChatTemplate t;
    EXPECT_EQ(t.render(r.messages), "s\n\nUser: ab\n\nAssistant: \n\nAssistant:");
    ChatTemplate u = ChatTemplate::parse(
        R"({"bos":"<b>","user":{"prefix":"[","suffix":"]"},"stop":["</s>"]})", "x");
    EXPECT_EQ(u.render({{"user", "hi"}}), "<b>[hi]Assistant:");
    EXPECT_EQ(u.stop, std::vector<std::string>{"</s>"});
    EXPECT_THROW(ChatTemplate::parse(R"({"users":{}})", "x"), Error);
    EXPECT_THROW(ChatTemplate::parse(R"({"stop":"x"})", "x"), Error);
    EXPECT_THROW(ChatTemplate::parse("[", "x"), Error);
}

TEST(Logprobs, LogSoftmaxTopKAndLegacyShape) {
    const float row[4] = {1.0f, 3.0f, 3.0f, -2.0f};
    const TokenLogprob t = token_logprob(row, 4, 0, 2);
    const double lse = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(-2.0));
    EXPECT_NEAR(t.logprob, 1.0 - lse, 1e-6);
    ASSERT_EQ(t.top.size(), 2u);
    EXPECT_EQ(t.top[0].first, 1);  // ties: the lower id first
    EXPECT_EQ(t.top[1].first, 2);
    EXPECT_NEAR(t.top[0].second, 3.0 - lse, 1e-6);
    auto tok = load_tokenizer("bytes");
    TokenLogprob first;
    first.token = 'a';
    first.has_logprob = false;
    TokenLogprob e = token_logprob(row, 4, 1, 1);
    e.token = 0xC3;  // half of a two-byte character
    const json j = completion_logprobs(*tok, {first, e}, 0);
    EXPECT_EQ(j["tokens"], json({"a", "\xEF\xBF\xBD"}));
    EXPECT_TRUE(j["token_logprobs"][0].is_null() && j["top_logprobs"][0].is_null());
    EXPECT_EQ(j["text_offset"], json({0, 1}));
    EXPECT_EQ(j["top_logprobs"][1].size(), 1u);
}

TEST(Metrics, HistogramBucketsAndSections) {
    Metrics m;
    m.time_to_first_token.observe(0.02);
    m.time_to_first_token.observe(100);
    m.add_section([](std::ostream& os) { write_metric(os, "t6_extra", "gauge", "Extra.", 7); });
    const std::string p = m.prometheus();
    EXPECT_NE(p.find("t6_time_to_first_token_seconds_bucket{le=\"0.01\"} 0"), std::string::npos);
    EXPECT_NE(p.find("t6_time_to_first_token_seconds_bucket{le=\"0.025\"} 1"), std::string::npos);
    EXPECT_NE(p.find("t6_time_to_first_token_seconds_bucket{le=\"30\"} 1"), std::string::npos);
    EXPECT_NE(p.find("t6_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2"), std::string::npos);
    EXPECT_NE(p.find("t6_time_to_first_token_seconds_count 2"), std::string::npos);
    EXPECT_NE(p.find("t6_extra 7"), std::string::npos) << p;
}

TEST(SlotPlan, BudgetOverContextTimesBytesPerToken) {
    SlotPlan p = plan_slots(1024.0 * 1024, 1024, 64, 1000);
    EXPECT_EQ(p.budget_slots, 16);
    EXPECT_EQ(p.slots, 16);
    EXPECT_EQ(p.bytes, size_t(16 * 64 * 1024));
    EXPECT_EQ(plan_slots(1024.0 * 1024, 1024, 64, 4).slots, 4);
    EXPECT_THROW(plan_slots(1000, 1024, 64, 4), Error);
    // Slots whose block holds more than the context (a float32 TPA cache: whole groups of 16).
    SlotPlan g = plan_slots(1024.0 * 1024, 1024, 50, 1000, 64);
    EXPECT_EQ(g.budget_slots, 16);
    EXPECT_EQ(g.bytes, size_t(16 * 64 * 1024));
}

}  // namespace
