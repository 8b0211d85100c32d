// Multiple-choice evaluation (src/eval): harness metrics on injected log-likelihoods, the task
// readers and prompt templates of every native format, few-shot prompts, harness tokenization,
// errors with FILE:LINE, and the model scorer: sharing the context's KV cache gives the scores
// of recomputation and of a plain full forward.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "core/error.h"
#include "eval/decoder_scorer.h"
#include "eval/loglik.h"
#include "eval/mc_eval.h"
#include "eval/mc_metrics.h"
#include "eval/mc_prompt.h"
#include "eval/mc_task.h"
#include "test_eval_util.h"
#include "test_util.h"
#include "text/byte_tokenizer.h"

using namespace t6;
using namespace t6::eval;

namespace {

// Bytes plus an end-of-text id 256 (the byte tokenizer has none).
class BytesWithEot : public Tokenizer {
  public:
    using Tokenizer::encode;
    std::string kind() const override { return "bytes+eot"; }
    int vocab_size() const override { return 257; }
    int eot() const override { return 256; }
    void encode(std::string_view text, std::vector<int32_t>& out) const override {
        for (unsigned char c : text) out.push_back(c);
    }
    std::string token_bytes(int32_t id) const override {
        return id == 256 ? std::string(kEndOfText) : std::string(1, char(id));
    }
    nlohmann::json spec() const override { return {}; }
};

std::string write(const test::TempDir& dir, const std::string& name, const std::string& text) {
    std::string path = dir.file(name);
    std::ofstream(path) << text;
    return path;
}

// Log-likelihoods injected by continuation text (decoded from the request's tokens).
class FakeScorer : public LoglikScorer {
  public:
    explicit FakeScorer(std::map<std::string, double> ll) : ll_(std::move(ll)) {}
    std::vector<double> loglikelihood(const std::vector<TokenRequest>& reqs) override {
        auto tok = make_byte_tokenizer();
        std::vector<double> out;
        for (const auto& r : reqs) {
            const std::string c = tok->decode(r.continuation);
            auto it = ll_.find(c);
            if (it == ll_.end()) throw std::runtime_error("no loglik for '" + c + "'");
            out.push_back(it->second);
            contexts.push_back(tok->decode(r.context));
        }
        return out;
    }
    std::vector<std::string> contexts;

  private:
    std::map<std::string, double> ll_;
};

TEST(EvalMetrics, ArgmaxTakesTheFirstMaximum) {
    EXPECT_EQ(argmax_first({-1.0, -1.0, -2.0}), 0);
    EXPECT_EQ(argmax_first({-3.0, -1.0, -1.0}), 1);
    EXPECT_EQ(argmax_first({-3.0, -2.0, -1.0}), 2);
    EXPECT_EQ(argmax_first({}), -1);
}

TEST(EvalMetrics, AccAndAccNormAsTheHarness) {
    // acc: argmax(lls) = 1. acc_norm: lls / len(choice) = -1, -2.25, -1 -> tie, first wins -> 0.
    DocScore s = score_doc({-6.0, -4.5, -9.0}, {"abcdef", "ab", "abcdefghi"}, 0);
    EXPECT_EQ(s.pred, 1);
    EXPECT_EQ(s.pred_norm, 0);
    EXPECT_EQ(s.acc, 0.0);
    EXPECT_EQ(s.acc_norm, 1.0);
    // len() counts code points: "été" is 3 characters (5 bytes): -3/3 = -1 beats -4/2 = -2.
    s = score_doc({-3.0, -4.0}, {"\xC3\xA9t\xC3\xA9", "ab"}, 1);
    EXPECT_EQ(s.pred, 0);
    EXPECT_EQ(s.pred_norm, 0);
    EXPECT_EQ(py_len("\xC3\xA9t\xC3\xA9"), 3u);
}

TEST(EvalMetrics, MeanStderrIsSampleStdOverSqrtN) {
    MeanStderr m = mean_stderr({1, 0, 1, 1});
    EXPECT_DOUBLE_EQ(m.mean, 0.75);
    EXPECT_DOUBLE_EQ(m.stderr_, 0.25);  // sqrt(0.75 / 3) / 2
    EXPECT_TRUE(std::isnan(mean_stderr({1}).stderr_));
}

// A hand-built task through evaluate_mc with injected log-likelihoods: ties, multi-token
// continuations, acc_norm flipping the answer.
TEST(EvalMc, HandBuiltTaskWithInjectedLoglikelihoods) {
    test::TempDir dir;
    std::string path = write(dir, "hand.jsonl",
                             R"({"context": "Q1", "choices": ["a", "bbbb"], "gold": 1}
{"context": "Q2", "choices": ["cc", "d"], "gold": 0}

{"context": "Q3", "choices": ["ee", "ff", "g"], "gold": 0}
{"context": "Q4", "choices": ["hhh", "i"], "gold": 1}
)");
    McTask task = read_mc_task(path);
    ASSERT_EQ(task.docs.size(), 4u);
    EXPECT_EQ(task.format, McFormat::generic);
    EXPECT_EQ(task.docs[2].line, 4);  // the blank line is skipped but counted
    // Q1: acc picks a (wrong); acc_norm -2/1 < -4/4 picks bbbb (right).
    // Q2: acc tie -3 = -3 -> the first, cc (right); acc_norm -1.5 > -3 -> cc (right).
    // Q3: acc picks g (wrong); acc_norm three-way tie at -1 -> the first, ee (right).
    // Q4: acc picks i (right); acc_norm -6/3 = -2 > -5 -> hhh (wrong).
    FakeScorer fake({{" a", -2.0},
                     {" bbbb", -4.0},
                     {" cc", -3.0},
                     {" d", -3.0},
                     {" ee", -2.0},
                     {" ff", -2.0},
                     {" g", -1.0},
                     {" hhh", -6.0},
                     {" i", -5.0}});
    auto tok = make_byte_tokenizer();
    McResult r = evaluate_mc(task, *tok, fake, {});
    ASSERT_EQ(r.num_docs, 4);
    std::vector<double> acc, norm;
    for (const auto& d : r.docs) {
        acc.push_back(d.acc);
        norm.push_back(d.acc_norm);
    }
    EXPECT_EQ(acc, (std::vector<double>{0, 1, 0, 1}));
    EXPECT_EQ(norm, (std::vector<double>{1, 1, 1, 0}));
    EXPECT_DOUBLE_EQ(r.acc.mean, 0.5);
    EXPECT_DOUBLE_EQ(r.acc.stderr_, std::sqrt(1.0 / 3.0) / 2.0);  // sample std / sqrt(4)
    EXPECT_DOUBLE_EQ(r.acc_norm.mean, 0.75);
    EXPECT_DOUBLE_EQ(r.acc_norm.stderr_, 0.25);
    EXPECT_EQ(r.requests, 9);
    EXPECT_EQ(fake.contexts[0], "Q1");
    // --limit
    McOptions o;
    o.limit = 2;
    EXPECT_EQ(evaluate_mc(task, *tok, fake, o).num_docs, 2);
}

TEST(EvalMc, BadLinesFailWithFileAndLine) {
    test::TempDir dir;
    auto expect_error = [&](const std::string& text, const std::string& needle) {
        std::string path = write(dir, "bad.jsonl", text);
        try {
            read_mc_task(path);
            FAIL() << "no error for " << text;
        } catch (const Error& e) {
            std::string m = e.what();
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
            EXPECT_NE(m.find(path + ":" + needle), std::string::npos) << m;
        }
    };
    const std::string ok = R"({"context": "x", "choices": ["a", "b"], "gold": 0})";
    expect_error(ok + "\n" + ok + "\n{\"context\": \"x\", \"choices\": [\n", "3: not valid JSON");
    expect_error(ok + "\n" + R"({"context": "x", "choices": ["a", "b", "c"], "gold": 3})",
                 "2: gold index 3 is outside the 3 choices");
    expect_error(R"({"context": "x", "choices": ["a"], "gold": -1})",
                 "1: gold index -1 is outside");
    expect_error(ok + "\n" + R"({"context": "x", "gold": 0})", "2: missing field 'choices'");
    expect_error(
        R"({"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "C"})",
        "1: answerKey 'C' is not one of the choice labels");
    expect_error("", "");  // (no documents: "FILE: no documents")
}

// The prompt of each native format, as the harness YAMLs render it.
std::vector<TextRequest> requests_of(const std::string& line, McFormat f = McFormat::automatic) {
    test::TempDir dir;
    McTask t = read_mc_task(write(dir, "t.jsonl", line + "\n"), f);
    return doc_requests(t, 0, 0, 0);
}

TEST(EvalMcFormats, HellaSwag) {
    auto r = requests_of(
        R"({"activity_label": "Baking cookies", "ctx_a": "A woman is in a kitchen [header] How to bake.", "ctx_b": "SHE mixes flour  and sugar", "endings": [" [title] Preheat the oven [step]   to 350 degrees. ", "Stir [it] well [title] Serve."], "label": "1"})");
    ASSERT_EQ(r.size(), 2u);
    // Expected strings from the harness's utils.preprocess run in Python.
    EXPECT_EQ(r[0].context,
              "Baking cookies: A woman is in a kitchen How to bake. She mixes flour and sugar");
    EXPECT_EQ(r[0].continuation, "  Preheat the oven  to 350 degrees.");
    EXPECT_EQ(r[1].continuation, " Stir well. Serve.");
}

TEST(EvalMcFormats, ArcObqaPiqaSciqBoolqMmlu) {
    auto arc = requests_of(
        R"({"question": "Which is a gas?", "choices": {"text": ["iron", "oxygen"], "label": ["1", "2"]}, "answerKey": "2"})");
    EXPECT_EQ(arc[0].context, "Question: Which is a gas?\nAnswer:");
    EXPECT_EQ(arc[1].continuation, " oxygen");

    test::TempDir dir;
    McTask t = read_mc_task(write(
        dir, "obqa.jsonl",
        R"({"question_stem": "The sun is", "choices": {"text": ["cold", "a star"], "label": ["A", "B"]}, "answerKey": " B"})"));
    EXPECT_EQ(t.format, McFormat::obqa);
    EXPECT_EQ(t.docs[0].gold, 1);
    EXPECT_EQ(doc_requests(t, 0, 0, 0)[0].context, "The sun is");

    auto piqa = requests_of(
        R"({"goal": "Open a jar", "sol1": "Twist the lid", "sol2": "Eat it", "label": 0})");
    EXPECT_EQ(piqa[0].context, "Question: Open a jar\nAnswer:");
    EXPECT_EQ(piqa[1].continuation, " Eat it");

    auto sciq = requests_of(
        R"({"question": "What do plants make?", "distractor1": "salt", "distractor2": "iron", "distractor3": "gold", "correct_answer": "sugar", "support": "  Plants photosynthesize."})");
    EXPECT_EQ(sciq[0].context, "Plants photosynthesize.\nQuestion: What do plants make?\nAnswer:");
    EXPECT_EQ(sciq[3].continuation, " sugar");

    McTask b = read_mc_task(
        write(dir, "boolq.jsonl",
              R"({"question": "is the sky blue", "passage": "The sky is blue.", "answer": true})"));
    EXPECT_EQ(b.format, McFormat::boolq);
    EXPECT_FALSE(b.has_acc_norm);
    EXPECT_EQ(b.docs[0].gold, 1);
    auto br = doc_requests(b, 0, 0, 0);
    EXPECT_EQ(br[0].context, "The sky is blue.\nQuestion: is the sky blue?\nAnswer:");
    EXPECT_EQ(br[0].continuation, " no");
    EXPECT_EQ(br[1].continuation, " yes");

    McTask m = read_mc_task(write(
        dir, "mmlu.jsonl",
        R"({"question": " What is 2+2? ", "subject": "elementary_mathematics", "choices": ["3", "4", "5", "6"], "answer": 1})"));
    EXPECT_EQ(m.format, McFormat::mmlu);
    auto mr = doc_requests(m, 0, 0, 0);
    EXPECT_EQ(mr[0].context,
              "The following are multiple choice questions (with answers) about elementary "
              "mathematics.\n\nWhat is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:");
    EXPECT_EQ(mr[1].continuation, " B");
}

TEST(EvalMcFormats, WinograndePartialScoring) {
    test::TempDir dir;
    McTask t = read_mc_task(write(
        dir, "wg.jsonl",
        R"({"sentence": "The cup fell off the table because _ was wobbly.", "option1": "the cup", "option2": "the table", "answer": "2"})"));
    EXPECT_EQ(t.format, McFormat::winogrande);
    EXPECT_FALSE(t.has_acc_norm);
    EXPECT_EQ(t.docs[0].gold, 1);
    auto r = doc_requests(t, 0, 0, 0);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[0].context, "The cup fell off the table because the cup");
    EXPECT_EQ(r[1].context, "The cup fell off the table because the table");
    EXPECT_EQ(r[0].continuation, " was wobbly.");
    EXPECT_EQ(r[1].continuation, " was wobbly.");
    EXPECT_EQ(t.docs[0].fewshot_text, "The cup fell off the table because the table was wobbly.");
}

TEST(EvalMc, FewshotPromptsExcludeTheDocAndFollowTheSeed) {
    test::TempDir dir;
    std::string text;
    for (int i = 0; i < 6; i++)
        text += R"({"context": "Q)" + std::to_string(i) + R"(", "choices": ["x)" +
                std::to_string(i) + R"(", "y"], "gold": 0})" + "\n";
    McTask t = read_mc_task(write(dir, "fs.jsonl", text));
    for (int i = 0; i < 6; i++) {
        auto idx = fewshot_indices(6, i, 3, 7);
        ASSERT_EQ(idx.size(), 3u);
        for (int k : idx) EXPECT_NE(k, i);
        EXPECT_NE(idx[0], idx[1]);
        EXPECT_NE(idx[1], idx[2]);
        EXPECT_NE(idx[0], idx[2]);
        EXPECT_EQ(idx, fewshot_indices(6, i, 3, 7));
        auto r = doc_requests(t, i, 3, 7);
        std::string expect;
        for (int k : idx) expect += "Q" + std::to_string(k) + " x" + std::to_string(k) + "\n\n";
        EXPECT_EQ(r[0].context, expect + "Q" + std::to_string(i));
    }
    bool differs = false;
    for (int i = 0; i < 6; i++)
        differs |= fewshot_indices(6, i, 3, 7) != fewshot_indices(6, i, 3, 8);
    EXPECT_TRUE(differs);
    EXPECT_THROW(fewshot_indices(3, 0, 3, 1), Error);
}

TEST(EvalMc, HarnessTokenization) {
    BytesWithEot tok;
    // Trailing white space of the context moves to the continuation (_encode_pair).
    TokenRequest r = encode_request(tok, {"Answer: ", "yes"});
    EXPECT_EQ(r.context, tok.encode("Answer:"));
    EXPECT_EQ(r.continuation, tok.encode(" yes"));
    // An empty context is the EOT token.
    r = encode_request(tok, {"", " yes"});
    EXPECT_EQ(r.context, std::vector<int32_t>{256});
    EXPECT_EQ(r.continuation, tok.encode(" yes"));
    // ...which the byte tokenizer lacks.
    auto bytes = make_byte_tokenizer();
    EXPECT_THROW(encode_request(*bytes, {"", " yes"}), Error);
    EXPECT_THROW(encode_request(*bytes, {"Q", ""}), Error);
}

// Reference: one full forward over (context + continuation)[-(max_len + 1):][:-1].
double reference_loglik(Model& m, const TokenRequest& r, int max_len) {
    std::vector<int32_t> all = r.context;
    all.insert(all.end(), r.continuation.begin(), r.continuation.end());
    if (all.size() > size_t(max_len) + 1) all.erase(all.begin(), all.end() - (max_len + 1));
    const int T = int(all.size()) - 1, V = m.config().vocab_size, n = int(r.continuation.size());
    m.forward(all.data(), nullptr, 1, T);
    double ll = 0;
    for (int i = 0; i < n; i++)
        ll += token_logprob(m.logits() + size_t(T - n + i) * V, V, r.continuation[i]);
    return ll;
}

std::vector<int32_t> toks(int n, int seed, int V) {
    std::vector<int32_t> t(n);
    for (int i = 0; i < n; i++) t[i] = int32_t((seed * 31 + i * 17 + i * i) % V);
    return t;
}

TEST(EvalScorer, CacheReuseMatchesRecomputationAndFullForward) {
    for (auto kind : {AttentionKind::tpa, AttentionKind::mha, AttentionKind::gqa,
                      AttentionKind::mla, AttentionKind::tpa_kvonly}) {
        auto mp = test::eval_model(kind, 32, 64);
        Model& m = *mp;
        // Two contexts with 4 and 3 choices of 1..5 tokens; the second context is long enough
        // that some requests are truncated from the left (max_len 24).
        std::vector<TokenRequest> reqs;
        const auto c1 = toks(9, 1, 64), c2 = toks(22, 2, 64);
        for (int k = 0; k < 4; k++) reqs.push_back({c1, toks(1 + k, 10 + k, 64)});
        for (int k = 0; k < 3; k++) reqs.push_back({c2, toks(1 + 2 * k, 20 + k, 64)});
        const int max_len = 24;
        DecoderScorer reuse(m, max_len, true), fresh(m, max_len, false);
        auto a = reuse.loglikelihood(reqs);
        auto b = fresh.loglikelihood(reqs);
        ASSERT_EQ(a.size(), reqs.size());
        for (size_t i = 0; i < reqs.size(); i++) {
            const double ref = reference_loglik(m, reqs[i], max_len);
            EXPECT_NEAR(a[i], b[i], 1e-4) << attention_kind_name(kind) << " request " << i;
            EXPECT_NEAR(a[i], ref, 1e-4) << attention_kind_name(kind) << " request " << i;
        }
        // Reuse computes each context once per truncation point, recomputation once per choice.
        EXPECT_LT(reuse.tokens_computed(), fresh.tokens_computed());
    }
}

TEST(EvalScorer, RejectsContinuationsLongerThanTheContext) {
    auto mp = test::eval_model(AttentionKind::tpa, 32, 64);
    DecoderScorer s(*mp, 8, true);
    EXPECT_THROW(s.loglikelihood({{toks(3, 1, 64), toks(9, 2, 64)}}), Error);
    EXPECT_THROW(DecoderScorer(*mp, 33, true), Error);
}

// A whole task through the model: the same log-likelihoods with and without cache reuse.
TEST(EvalMc, TaskScoresWithAndWithoutCacheReuse) {
    test::TempDir dir;
    std::string path = write(
        dir, "t.jsonl",
        R"({"context": "The sky is", "choices": ["blue", "green", "made of cheese"], "gold": 0}
{"contexts": ["Tom gave Ann the book because Tom", "Tom gave Ann the book because Ann"], "continuation": "was done with it.", "gold": 0}
{"context": "2 + 2 =", "choices": ["4", "5"], "gold": 0}
)");
    McTask task = read_mc_task(path);
    auto mp = test::eval_model(AttentionKind::tpa, 64, 256);
    auto tok = make_byte_tokenizer();
    for (int shots : {0, 2}) {
        McOptions o;
        o.shots = shots;
        DecoderScorer reuse(*mp, 64, true), fresh(*mp, 64, false);
        McResult a = evaluate_mc(task, *tok, reuse, o), b = evaluate_mc(task, *tok, fresh, o);
        ASSERT_EQ(a.lls.size(), 3u);
        for (size_t d = 0; d < a.lls.size(); d++)
            for (size_t c = 0; c < a.lls[d].size(); c++)
                EXPECT_NEAR(a.lls[d][c], b.lls[d][c], 1e-4);
        EXPECT_EQ(a.acc.mean, b.acc.mean);
    }
}

}  // namespace
