// End-to-end tests of `t6 serve`'s OpenAI surface beyond plain completions (issue #20): n, echo +
// logprobs, prompt scoring as lm-evaluation-harness's local-completions asks for it (checked
// against `t6 eval mc` on the same model and task), token-id and batched prompts, logit_bias,
// chat completions with a chat template (plain and streamed), /tokenize, /detokenize,
// X-Request-Id, the latency histograms of /metrics, bad requests, and the official `openai` npm
// client (tools/openai_client_test.mjs).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "eval/decoder_scorer.h"
#include "eval/loglik.h"
#include "eval/mc_metrics.h"
#include "eval/mc_prompt.h"
#include "eval/mc_task.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "test_cli_util.h"
#include "test_serve_process.h"
#include "test_util.h"
#include "text/tokenizer.h"

using namespace t6;
using nlohmann::json;
using test::Clock;
using test::slurp;
using test::sse_data;

// The server under test, named "tiny" for the clients.
struct Server : test::Server {
    Server(const test::TempDir& dir, const std::string& ckpt, std::vector<std::string> args)
        : test::Server(dir, ckpt, with_name(std::move(args))) {}
    static std::vector<std::string> with_name(std::vector<std::string> a) {
        a.insert(a.begin(), {"--model-name", "tiny"});
        return a;
    }
};

namespace {

struct OpenAiTest : ::testing::Test {
    test::TempDir dir;
    std::string ckpt =
        test::write_tiny_checkpoint(dir, "tiny.safetensors", AttentionKind::tpa, 32, 11);
};

// A small generic multiple-choice task (contexts with trailing spaces too, which the harness
// moves into the continuation).
std::string write_task(const test::TempDir& dir) {
    const std::string path = dir.file("mc.jsonl");
    std::ofstream f(path);
    f << R"({"context":"The cat sat on the","choices":["mat","dog","moon"],"gold":0})" << '\n'
      << R"({"context":"Two plus two is ","choices":["four","five"],"gold":0})" << '\n'
      << R"({"context":"Water is","choices":["wet","dry","blue","loud"],"gold":0})" << '\n'
      << R"({"context":"Q: sky color?\nA:","choices":["blue","green"],"gold":1})" << '\n'
      << R"({"context":"Once upon a","choices":["time","tree","cat"],"gold":2})" << '\n';
    return path;
}

// Issue #20: scores through the server, requested exactly as lm-evaluation-harness's
// local-completions does (token-id prompts context + continuation, batched, echo, logprobs 1,
// temperature 0, max_tokens 1, summing token_logprobs[ctxlen:-1]; is_greedy from top_logprobs),
// equal `t6 eval mc`'s in-process log-likelihoods and accuracies to 4 decimals. The same with
// max_tokens 0 and text prompts (token_logprobs[ctxlen:]).
TEST_F(OpenAiTest, HarnessScoringEqualsEvalMc) {
    const std::string task_path = write_task(dir);
    const auto r = test::run_t6("eval mc --model " + ckpt + " --task " + task_path +
                                " --quiet --json --threads 1");
    ASSERT_EQ(r.status, 0) << r.err;
    const json ev = test::last_json(r.out)["models"][0]["tasks"][0];

    // The same requests, tokenized as t6 eval does, and its in-process scorer.
    const eval::McTask task = eval::read_mc_task(task_path, eval::McFormat::automatic);
    auto tok = load_tokenizer("bytes");
    auto model = load_model(ckpt);
    eval::DecoderScorer scorer(*model, model->config().block_size, true);
    std::vector<eval::TextRequest> texts;
    std::vector<eval::TokenRequest> reqs;
    std::vector<size_t> doc_of;
    for (int d = 0; d < int(task.docs.size()); d++)
        for (const auto& tr : eval::doc_requests(task, d, 0, 1234)) {
            texts.push_back(tr);
            reqs.push_back(eval::encode_request(*tok, tr));
            doc_of.push_back(size_t(d));
        }
    const std::vector<double> local = scorer.loglikelihood(reqs);

    Server s(dir, ckpt, {"--max-slots", "4"});
    ASSERT_GT(s.port(), 0) << s.err();
    // Batches of 5 (the harness's batch_size), max_tokens 1 as lm-eval sends it.
    std::vector<double> served(reqs.size()), served0(reqs.size());
    for (size_t b = 0; b < reqs.size(); b += 5) {
        json prompts = json::array(), texts0 = json::array();
        const size_t e = std::min(reqs.size(), b + 5);
        for (size_t i = b; i < e; i++) {
            std::vector<int32_t> all = reqs[i].context;
            all.insert(all.end(), reqs[i].continuation.begin(), reqs[i].continuation.end());
            prompts.push_back(all);
        }
        int status = 0;
        const json out = s.post("/v1/completions",
                                {{"model", "tiny"},
                                 {"prompt", prompts},
                                 {"temperature", 0},
                                 {"max_tokens", 1},
                                 {"logprobs", 1},
                                 {"seed", 1234},
                                 {"echo", true}},
                                &status);
        ASSERT_EQ(status, 200) << out;
        ASSERT_EQ(out["choices"].size(), e - b);
        for (size_t i = b; i < e; i++) {
            const json& c = out["choices"][i - b];
            ASSERT_EQ(c["index"], int(i - b));
            const json& lp = c["logprobs"];
            const size_t ctxlen = reqs[i].context.size();
            const size_t total = ctxlen + reqs[i].continuation.size() + 1;
            ASSERT_EQ(lp["token_logprobs"].size(), total);
            EXPECT_TRUE(lp["token_logprobs"][0].is_null());
            double sum = 0;
            for (size_t k = ctxlen; k + 1 < total; k++) {
                const double x = lp["token_logprobs"][k].get<double>();
                sum += x;
                // is_greedy as the harness computes it: top_logprobs has the best token.
                double best = -1e30;
                for (const auto& [key, v] : lp["top_logprobs"][k].items())
                    best = std::max(best, v.get<double>());
                EXPECT_LE(x, best + 1e-6);
            }
            served[i] = sum;
        }
        // max_tokens 0, text prompts (the brief's form): token_logprobs[ctxlen:].
        for (size_t i = b; i < e; i++) texts0.push_back(texts[i].context + texts[i].continuation);
        const json out0 = s.post("/v1/completions",
                                 {{"prompt", texts0},
                                  {"temperature", 0},
                                  {"max_tokens", 0},
                                  {"logprobs", 1},
                                  {"echo", true}},
                                 &status);
        ASSERT_EQ(status, 200) << out0;
        for (size_t i = b; i < e; i++) {
            const json& tl = out0["choices"][i - b]["logprobs"]["token_logprobs"];
            double sum = 0;
            for (size_t k = reqs[i].context.size(); k < tl.size(); k++) sum += tl[k].get<double>();
            served0[i] = sum;
            EXPECT_EQ(out0["choices"][i - b]["finish_reason"], "length");
        }
    }
    for (size_t i = 0; i < reqs.size(); i++) {
        EXPECT_NEAR(served[i], local[i], 1e-4) << "request " << i;
        EXPECT_NEAR(served0[i], local[i], 1e-4) << "request " << i;
    }
    // The accuracies from the served scores equal t6 eval's.
    std::vector<double> acc, acc_norm;
    size_t k = 0;
    for (const auto& d : task.docs) {
        std::vector<double> lls(served.begin() + long(k),
                                served.begin() + long(k + d.choice_texts.size()));
        k += d.choice_texts.size();
        const eval::DocScore sc = eval::score_doc(lls, d.choice_texts, d.gold);
        acc.push_back(sc.acc);
        acc_norm.push_back(sc.acc_norm);
    }
    EXPECT_NEAR(eval::mean_stderr(acc).mean, ev["acc"].get<double>(), 1e-4);
    EXPECT_NEAR(eval::mean_stderr(acc_norm).mean, ev["acc_norm"].get<double>(), 1e-4);
}

TEST_F(OpenAiTest, CompletionsNLogprobsEchoBatchesAndLogitBias) {
    Server s(dir, ckpt, {"--max-slots", "4"});
    ASSERT_GT(s.port(), 0) << s.err();
    int status = 0;
    // A batch of 2 prompts x n = 2: choices indexed prompt * n + i; seeded.
    const json body = {{"prompt", json::array({"ab", "cd"})},
                       {"n", 2},
                       {"max_tokens", 6},
                       {"temperature", 1},
                       {"seed", 3},
                       {"logprobs", 3}};
    json r = s.post("/v1/completions", body, &status);
    ASSERT_EQ(status, 200) << r;
    ASSERT_EQ(r["choices"].size(), 4u);
    for (int i = 0; i < 4; i++) {
        const json& c = r["choices"][i];
        EXPECT_EQ(c["index"], i);
        const json& lp = c["logprobs"];
        ASSERT_EQ(lp["tokens"].size(), 6u) << c;
        EXPECT_EQ(lp["text_offset"][0], 2);  // generated tokens start after the 2-character prompt
        for (size_t k = 0; k < 6; k++) {
            EXPECT_LE(lp["top_logprobs"][k].size(), 3u);
            EXPECT_LE(lp["token_logprobs"][k].get<double>(), 0.0);
        }
    }
    EXPECT_EQ(r["usage"]["prompt_tokens"], 4);
    EXPECT_EQ(r["usage"]["completion_tokens"], 24);
    // The same seed gives the same texts (logprobs may differ in the last bits between batches).
    const json again = s.post("/v1/completions", body);
    for (int i = 0; i < 4; i++) EXPECT_EQ(again["choices"][i]["text"], r["choices"][i]["text"]);

    // Echo + logprobs: prompt tokens first, null for the first one.
    json e = s.post("/v1/completions", {{"prompt", "xyz"},
                                        {"max_tokens", 2},
                                        {"temperature", 0},
                                        {"echo", true},
                                        {"logprobs", 0}});
    const json& lp = e["choices"][0]["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), 5u) << e;
    EXPECT_EQ(lp["tokens"][0], "x");
    EXPECT_TRUE(lp["token_logprobs"][0].is_null());
    EXPECT_TRUE(lp["top_logprobs"][0].is_null());
    EXPECT_EQ(lp["text_offset"], json({0, 1, 2, 3, 4}));
    EXPECT_EQ(e["choices"][0]["text"].get<std::string>().substr(0, 3), "xyz");

    // logit_bias: banning the greedy first token changes it; +100 forces one.
    json g = s.post("/v1/completions",
                    {{"prompt", "q"}, {"max_tokens", 1}, {"temperature", 0}, {"logprobs", 0}});
    const std::string first = g["choices"][0]["text"];
    ASSERT_EQ(first.size(), 1u);
    const std::string banned = std::to_string(int(static_cast<unsigned char>(first[0])));
    json b = s.post(
        "/v1/completions",
        {{"prompt", "q"}, {"max_tokens", 1}, {"temperature", 0}, {"logit_bias", {{banned, -100}}}});
    EXPECT_NE(b["choices"][0]["text"], first);
    json f = s.post("/v1/completions", {{"prompt", "q"},
                                        {"max_tokens", 3},
                                        {"temperature", 0.7},
                                        {"seed", 1},
                                        {"logit_bias", {{"90", 100}}}});
    EXPECT_EQ(f["choices"][0]["text"], "ZZZ");
    // Penalties (OpenAI's formula): with every token but 'Y' and 'Z' banned, greedy decoding
    // under presence + frequency penalties of 2 must keep switching between the two (each use
    // of one lowers it by 2 per count, 4 at the first), so neither can run away.
    json only_yz = json::object();
    for (int id = 0; id < 256; id++)
        if (id != 'Y' && id != 'Z') only_yz[std::to_string(id)] = -100;
    json pen = s.post("/v1/completions", {{"prompt", "q"},
                                          {"max_tokens", 24},
                                          {"temperature", 0},
                                          {"presence_penalty", 2},
                                          {"frequency_penalty", 2},
                                          {"logit_bias", only_yz}});
    const std::string pt = pen["choices"][0]["text"];
    ASSERT_EQ(pt.size(), 24u) << pen;
    const long ys = std::count(pt.begin(), pt.end(), 'Y'),
               zs = std::count(pt.begin(), pt.end(), 'Z');
    EXPECT_EQ(ys + zs, 24) << pt;
    EXPECT_LE(std::abs(ys - zs), 6) << pt;
}

TEST_F(OpenAiTest, ChatTemplateStreamingTokenizeRequestIdMetrics) {
    const std::string tpl = dir.file("chat.json");
    std::ofstream(tpl) << R"({"user": {"prefix": "<u>", "suffix": "</u>"},
                              "system": {"prefix": "<s>", "suffix": "</s>"},
                              "generation_prompt": "<a>", "stop": ["Q"]})";
    Server s(dir, ckpt, {"--chat-template", tpl});
    ASSERT_GT(s.port(), 0) << s.err();
    EXPECT_NE(s.err().find("chat template: --chat-template"), std::string::npos) << s.err();
    const json messages = {{{"role", "system"}, {"content", "be"}},
                           {{"role", "user"}, {"content", "hi"}}};
    int status = 0;
    json r = s.post("/v1/chat/completions",
                    {{"messages", messages}, {"max_tokens", 8}, {"temperature", 0}}, &status);
    ASSERT_EQ(status, 200) << r;
    EXPECT_EQ(r["object"], "chat.completion");
    EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
    // "<s>be</s><u>hi</u><a>": 21 bytes.
    EXPECT_EQ(r["usage"]["prompt_tokens"], 21);
    // The template's end of turn ("Q", forced here by logit_bias) ends the reply.
    json q = s.post("/v1/chat/completions", {{"messages", messages},
                                             {"max_tokens", 8},
                                             {"temperature", 0},
                                             {"logit_bias", {{"81", 100}}}});
    EXPECT_EQ(q["choices"][0]["message"]["content"], "");
    EXPECT_EQ(q["choices"][0]["finish_reason"], "stop");

    // Streamed chat: role first, deltas concatenate to the plain reply, then [DONE].
    auto c = s.client();
    auto st = c.Post("/v1/chat/completions",
                     json({{"messages", messages},
                           {"max_tokens", 8},
                           {"temperature", 0},
                           {"stream", true},
                           {"logprobs", true},
                           {"top_logprobs", 2}})
                         .dump(),
                     "application/json");
    ASSERT_TRUE(st);
    const auto events = sse_data(st->body);
    ASSERT_GE(events.size(), 3u);
    EXPECT_EQ(events.back(), "[DONE]");
    EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
    std::string text;
    size_t lp_tokens = 0;
    for (size_t i = 0; i + 1 < events.size(); i++) {
        const json e = json::parse(events[i]);
        EXPECT_EQ(e["object"], "chat.completion.chunk");
        const json& ch = e["choices"][0];
        if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
        if (ch["logprobs"].is_object()) lp_tokens += ch["logprobs"]["content"].size();
    }
    EXPECT_EQ(text, r["choices"][0]["message"]["content"].get<std::string>());
    EXPECT_EQ(lp_tokens, size_t(r["usage"]["completion_tokens"].get<int>()));

    // /tokenize and /detokenize; X-Request-Id echoed or generated.
    json t = s.post("/tokenize", {{"prompt", "héllo"}});
    EXPECT_EQ(t["count"], 6);
    EXPECT_EQ(t["max_model_len"], 64);
    EXPECT_EQ(s.post("/detokenize", {{"tokens", t["tokens"]}})["prompt"], "héllo");
    httplib::Headers h = {{"X-Request-Id", "abc-123"}};
    auto withid = c.Post("/tokenize", h, R"({"content":"x"})", "application/json");
    ASSERT_TRUE(withid);
    EXPECT_EQ(withid->get_header_value("X-Request-Id"), "abc-123");
    auto info = c.Get("/tokenizer_info");  // lm-eval's probe for its "remote" tokenizer
    ASSERT_TRUE(info);
    const json ti = json::parse(info->body);
    EXPECT_TRUE(ti.contains("eos_token")) << ti;
    EXPECT_EQ(ti["model_max_length"], 64);
    auto gen = c.Get("/health");
    ASSERT_TRUE(gen);
    EXPECT_EQ(gen->get_header_value("X-Request-Id").rfind("req-", 0), 0u);

    // /metrics: latency histograms and the queue gauge.
    auto m = c.Get("/metrics");
    ASSERT_TRUE(m);
    for (const char* name :
         {"t6_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3",
          "t6_time_to_first_token_seconds_count 3", "t6_inter_token_latency_seconds_count",
          "t6_queued_requests 0", "# TYPE t6_inter_token_latency_seconds histogram"})
        EXPECT_NE(m->body.find(name), std::string::npos) << name << "\n" << m->body;
}

TEST_F(OpenAiTest, BadRequestsGet400WithAnOpenAiError) {
    Server s(dir, ckpt, {});
    ASSERT_GT(s.port(), 0) << s.err();
    struct Case {
        const char* path;
        json body;
        const char* param;
    };
    const json msgs = {{{"role", "user"}, {"content", "x"}}};
    const Case cases[] = {
        {"/v1/completions", {{"prompt", "x"}, {"n", 0}}, "n"},
        {"/v1/completions", {{"prompt", "x"}, {"n", 17}}, "n"},
        {"/v1/completions", {{"prompt", "x"}, {"logprobs", 6}}, "logprobs"},
        {"/v1/completions", {{"prompt", "x"}, {"logit_bias", {{"256", 1}}}}, "logit_bias"},
        {"/v1/completions", {{"prompt", "x"}, {"logit_bias", {{"a", 1}}}}, "logit_bias"},
        {"/v1/completions", {{"prompt", "x"}, {"logit_bias", {{"3", 101}}}}, "logit_bias"},
        {"/v1/completions", {{"prompt", {1, 300}}}, "prompt"},
        {"/v1/completions", {{"prompt", "x"}, {"max_tokens", 0}}, "max_tokens"},
        {"/v1/completions", {{"prompt", "x"}, {"presence_penalty", 3}}, "presence_penalty"},
        {"/v1/chat/completions",
         {{"messages", {{{"role", "wizard"}, {"content", "x"}}}}},
         "messages[0].role"},
        {"/v1/chat/completions", {{"messages", "hello"}}, "messages"},
        {"/v1/chat/completions", {{"messages", json::array()}}, "messages"},
        {"/v1/chat/completions", {{"messages", {{{"content", "x"}}}}}, "messages[0].role"},
        {"/v1/chat/completions",
         {{"messages", {{{"role", "user"}, {"content", 5}}}}},
         "messages[0].content"},
        {"/v1/chat/completions", {{"messages", msgs}, {"top_logprobs", 2}}, "top_logprobs"},
        {"/v1/chat/completions", {{"messages", msgs}, {"n", 99}}, "n"},
        {"/detokenize", {{"tokens", {-1}}}, "tokens"},
        {"/tokenize", {{"prompt", 5}}, "prompt"},
    };
    for (const auto& c : cases) {
        int status = 0;
        const json r = s.post(c.path, c.body, &status);
        EXPECT_EQ(status, 400) << c.path << " " << c.body << " -> " << r;
        EXPECT_EQ(r["error"]["param"], c.param) << c.body << " -> " << r;
        EXPECT_EQ(r["error"]["type"], "invalid_request_error") << c.body;
        EXPECT_TRUE(r["error"]["message"].is_string()) << c.body;
    }
}

// Streamed completions with n = 2, echo and logprobs: each index's chunks concatenate to that
// choice of the non-streamed answer, and carry one logprobs entry per token.
TEST_F(OpenAiTest, StreamedChoicesWithLogprobsMatchTheNonStreamedOnes) {
    Server s(dir, ckpt, {"--max-slots", "4"});
    ASSERT_GT(s.port(), 0) << s.err();
    json body = {{"prompt", "ab"}, {"n", 2},       {"max_tokens", 10}, {"temperature", 1},
                 {"seed", 9},      {"echo", true}, {"logprobs", 1}};
    const json plain = s.post("/v1/completions", body);
    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    auto c = s.client();
    auto r = c.Post("/v1/completions", body.dump(), "application/json");
    ASSERT_TRUE(r);
    const auto events = sse_data(r->body);
    ASSERT_GE(events.size(), 4u);
    EXPECT_EQ(events.back(), "[DONE]");
    std::string text[2];
    size_t tokens[2] = {0, 0};
    std::string finish[2];
    for (size_t i = 0; i + 2 < events.size(); i++) {
        const json e = json::parse(events[i]);
        const json& ch = e["choices"][0];
        const int k = ch["index"];
        ASSERT_TRUE(k == 0 || k == 1) << e;
        text[k] += ch["text"].get<std::string>();
        if (ch["logprobs"].is_object()) tokens[k] += ch["logprobs"]["tokens"].size();
        if (!ch["finish_reason"].is_null()) finish[k] = ch["finish_reason"];
    }
    const json usage = json::parse(events[events.size() - 2]);
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"], plain["usage"]);
    for (int k = 0; k < 2; k++) {
        EXPECT_EQ(text[k], plain["choices"][k]["text"].get<std::string>()) << k;
        EXPECT_EQ(tokens[k], plain["choices"][k]["logprobs"]["tokens"].size()) << k;
        EXPECT_EQ(finish[k], "length");
    }
}

// A chat template stored in the checkpoint's metadata is used without --chat-template.
TEST(OpenAiServeCli, ChatTemplateFromCheckpointMetadata) {
    test::TempDir dir;
    ModelConfig cfg = load_model(test::write_tiny_checkpoint(dir))->config();
    Model m(cfg);
    m.init_weights(3);
    const std::string ckpt = dir.file("chat.safetensors");
    save_weights(
        ckpt, m,
        {{"tokenizer", R"({"kind":"bytes"})"},
         {"chat_template", R"({"user":{"prefix":"[","suffix":"]"},"generation_prompt":">"})"}});
    Server s(dir, ckpt, {});
    ASSERT_GT(s.port(), 0) << s.err();
    EXPECT_NE(s.err().find("metadata 'chat_template'"), std::string::npos) << s.err();
    const json r =
        s.post("/v1/chat/completions",
               {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 1}});
    EXPECT_EQ(r["usage"]["prompt_tokens"], 5) << r;  // "[hi]>"
}

TEST(OpenAiServeCli, BadChatTemplateIsAOneLineError) {
    test::TempDir dir;
    const std::string ckpt = test::write_tiny_checkpoint(dir);
    const std::string tpl = dir.file("bad.json");
    std::ofstream(tpl) << R"({"user": {"prefix": 3}})";
    test::expect_one_line_error(test::run_t6("serve --model " + ckpt + " --chat-template " + tpl),
                                "user.prefix must be a string");
    test::expect_one_line_error(
        test::run_t6("serve --model " + ckpt + " --chat-template " + dir.file("none.json")),
        "no such file");
}

// The official `openai` npm client (pinned, fetched by scripts/install-deps.sh openai) against
// the server: tools/openai_client_test.mjs.
TEST_F(OpenAiTest, OfficialOpenAiNodeClient) {
    const char* cache = std::getenv("T6_CACHE");
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    const std::string root = cache && *cache ? cache
                             : xdg && *xdg   ? std::string(xdg) + "/t6"
                                             : std::string(home ? home : "") + "/.cache/t6";
    const std::string pkg = root + "/openai/node_modules/openai";
    if (!std::filesystem::exists(pkg + "/index.mjs"))
        T6_SKIP_UNLESS_CI(pkg << " not found (scripts/install-deps.sh openai)");
    if (std::system("node --version >/dev/null 2>&1") != 0)
        T6_SKIP_UNLESS_CI("node not found (scripts/install-deps.sh openai)");
    Server s(dir, ckpt, {"--max-slots", "4"});
    ASSERT_GT(s.port(), 0) << s.err();
    const std::string log = dir.file("node.out");
    const std::string cmd =
        "node " + std::string(T6_SOURCE_DIR) +
        "/tools/openai_client_test.mjs http://127.0.0.1:" + std::to_string(s.port()) + "/v1 " +
        pkg + " >" + log + " 2>&1";
    const int rc = std::system(cmd.c_str());
    const std::string out = slurp(log);
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(test::last_json(out)["ok"], true) << out;
}

}  // namespace
