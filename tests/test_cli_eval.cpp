// End-to-end tests of t6 eval: ppl on a token file and on text, mc on native-format task files
// with --json, several models in one comparison table, --report, and one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/file_util.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "test_cli_util.h"
#include "test_eval_util.h"
#include "test_util.h"

using namespace t6;

namespace {

using test::expect_one_line_error;
using test::last_json;

const std::string kT6 = T6_BINARY;

std::string make_checkpoint(const test::TempDir& dir, const std::string& name,
                            AttentionKind kind = AttentionKind::tpa, unsigned seed = 5) {
    auto m = test::eval_model(kind, 64, 256, seed);
    std::string path = dir.file(name);
    save_weights(path, *m, {{"tokenizer", R"({"kind":"bytes"})"}});
    return path;
}

std::string write(const test::TempDir& dir, const std::string& name, const std::string& text) {
    std::string path = dir.file(name);
    std::ofstream(path) << text;
    return path;
}

const char* kText =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity.\n";

TEST(CliEval, PplOnTokensAndText) {
    test::TempDir dir;
    std::string ckpt = make_checkpoint(dir, "m.safetensors");
    // A nanoGPT val.bin of the text's bytes.
    std::string text = kText;
    std::vector<uint16_t> ids(text.begin(), text.end());
    write_file_atomic(dir.file("val.bin"), ids.data(), ids.size() * 2);
    write(dir, "train.bin", "");
    std::string txt = write(dir, "t.txt", text);

    auto a = test::run_command(kT6 + " eval ppl --model " + ckpt + " --tokens " +
                               dir.file("val.bin") + " --context 32 --stride 20 --batch 3 --json");
    ASSERT_EQ(a.status, 0) << a.err;
    auto ja = last_json(a.out);
    EXPECT_EQ(ja["tokens_scored"], long(text.size()) - 1);
    EXPECT_NEAR(ja["perplexity"].get<double>(), std::exp(ja["val_loss"].get<double>()), 1e-9);
    EXPECT_FALSE(ja.contains("bits_per_byte"));

    // The same tokens as text: the same loss, plus bits per byte.
    auto b = test::run_command(kT6 + " eval ppl --model " + ckpt + " --text " + txt +
                               " --context 32 --stride 20 --json");
    ASSERT_EQ(b.status, 0) << b.err;
    auto jb = last_json(b.out);
    EXPECT_NEAR(jb["val_loss"].get<double>(), ja["val_loss"].get<double>(), 1e-5);
    EXPECT_NEAR(jb["bits_per_byte"].get<double>(), jb["val_loss"].get<double>() / std::log(2.0),
                1e-9);  // one byte per token
    EXPECT_NE(b.err.find("tokens/s"), std::string::npos) << b.err;

    // --data DIR --split val and --max-tokens.
    auto c = test::run_command(kT6 + " eval ppl --model " + ckpt + " --data " + dir.path() +
                               " --max-tokens 50 --json --quiet");
    ASSERT_EQ(c.status, 0) << c.err;
    EXPECT_EQ(last_json(c.out)["tokens_scored"], 49);

    expect_one_line_error(test::run_command(kT6 + " eval ppl --model " + ckpt + " --text " + txt +
                                            " --context 32 --stride 33"),
                          "--stride");
}

const char* kArc =
    R"({"question": "Which is a gas at room temperature?", "choices": {"text": ["iron", "oxygen", "salt"], "label": ["A", "B", "C"]}, "answerKey": "B"}
{"question": "What do bees make?", "choices": {"text": ["honey", "milk", "silk"], "label": ["A", "B", "C"]}, "answerKey": "A"}
{"question": "What is frozen water?", "choices": {"text": ["steam", "ice"], "label": ["1", "2"]}, "answerKey": "2"}
)";
const char* kPiqa =
    R"({"goal": "Open a jar", "sol1": "Twist the lid", "sol2": "Sing to it", "label": 0}
{"goal": "Dry wet hands", "sol1": "Use a towel", "sol2": "Use a towel of water", "label": 0}
)";

TEST(CliEval, McJsonAndCacheReuse) {
    test::TempDir dir;
    std::string ckpt = make_checkpoint(dir, "m.safetensors");
    std::string arc = write(dir, "arc.jsonl", kArc);
    std::string base = kT6 + " eval mc --model " + ckpt + " --task " + arc + " --json --quiet";
    auto a = test::run_command(base);
    auto b = test::run_command(base + " --no-cache-reuse");
    ASSERT_EQ(a.status, 0) << a.err;
    ASSERT_EQ(b.status, 0) << b.err;
    auto ja = last_json(a.out), jb = last_json(b.out);
    auto ta = ja["models"][0]["tasks"][0], tb = jb["models"][0]["tasks"][0];
    EXPECT_EQ(ta["task"], "arc");
    EXPECT_EQ(ta["format"], "arc");
    EXPECT_EQ(ta["num_docs"], 3);
    EXPECT_EQ(ta["requests"], 8);
    EXPECT_EQ(ta["acc"], tb["acc"]);
    EXPECT_EQ(ta["acc_norm"], tb["acc_norm"]);
    EXPECT_LT(ta["tokens_computed"].get<long>(), tb["tokens_computed"].get<long>());
    EXPECT_TRUE(ja["cache_reuse"].get<bool>());
    EXPECT_FALSE(jb["cache_reuse"].get<bool>());
    EXPECT_NE(a.out.find("| arc | arc | 0 | 3 |"), std::string::npos) << a.out;

    // Few-shot runs and reports its shots.
    auto c = test::run_command(base + " --shots 1 --seed 3");
    ASSERT_EQ(c.status, 0) << c.err;
    EXPECT_EQ(last_json(c.out)["models"][0]["tasks"][0]["num_fewshot"], 1);
}

TEST(CliEval, SeveralModelsGiveAComparisonTable) {
    test::TempDir dir;
    std::string m1 = make_checkpoint(dir, "t6.safetensors", AttentionKind::tpa, 1);
    std::string m2 = make_checkpoint(dir, "mha.safetensors", AttentionKind::mha, 2);
    std::string arc = write(dir, "arc.jsonl", kArc), piqa = write(dir, "piqa.jsonl", kPiqa);
    auto r = test::run_command(kT6 + " eval mc --model " + m1 + "," + m2 + " --task " + arc +
                               " --task " + piqa + " --report " + dir.file("table.md") +
                               " --table-metric acc_norm --json --quiet");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = last_json(r.out);
    ASSERT_EQ(j["models"].size(), 2u);
    ASSERT_EQ(j["models"][1]["tasks"].size(), 2u);
    EXPECT_EQ(j["models"][1]["tasks"][1]["task"], "piqa");
    const double avg = (j["models"][0]["tasks"][0]["acc_norm"].get<double>() +
                        j["models"][0]["tasks"][1]["acc_norm"].get<double>()) /
                       2;
    EXPECT_NEAR(j["models"][0]["average"].get<double>(), avg, 1e-12);
    std::string md = read_file_text(dir.file("table.md"));
    EXPECT_NE(md.find("| Model | arc | piqa | Avg. |"), std::string::npos) << md;
    EXPECT_NE(md.find("| " + m2 + " |"), std::string::npos) << md;
    EXPECT_NE(r.out.find("| Model | arc | piqa | Avg. |"), std::string::npos) << r.out;
}

TEST(CliEval, McErrorsAreOneLine) {
    test::TempDir dir;
    std::string ckpt = make_checkpoint(dir, "m.safetensors");
    std::string bad =
        write(dir, "bad.jsonl",
              std::string(R"({"context": "x", "choices": ["a", "b"], "gold": 0})") + "\n" +
                  R"({"context": "y", "choices": ["a", "b"], "gold": 2})" + "\n");
    expect_one_line_error(test::run_command(kT6 + " eval mc --model " + ckpt + " --task " + bad),
                          bad + ":2: gold index 2 is outside the 2 choices");
    expect_one_line_error(
        test::run_command(kT6 + " eval mc --model " + ckpt + " --task " + bad + " --format nope"),
        "unknown task format 'nope'");
    expect_one_line_error(test::run_command(kT6 + " eval nope"), "unknown subcommand");
}

}  // namespace

// ---- merged from test_cli_eval_q8a8.cpp (one program fewer to build and link in CI):
// t6 eval ppl --weights q8a8|q4a8 end to end: int8 activations times q8 / q4 weights exist only
// in the decoder, so these types score through it (implying --cache f32); the perplexity is
// finite, near the f32 model's and the dequantized q8 / q4 model's (which it differs from: the
// activations are rounded too); a `t6 quantize` checkpoint scored with the a8 type of its scheme
// equals the float checkpoint quantized at load; bad combinations are one-line errors.
namespace eval_q8a8_cli {

using namespace t6;
using test::run_t6;

namespace {

TEST(CliEvalQ8a8, ScoresThroughTheDecoder) {
    test::TempDir dir;  // random weights: the official init zeroes attention's output
    const std::string ckpt =
        test::write_tiny_checkpoint(dir, "model.safetensors", AttentionKind::tpa, 64, 7);
    {
        std::ofstream(dir.file("text.txt"))
            << "To be, or not to be, that is the question: whether 'tis nobler in the mind to "
               "suffer the slings and arrows of outrageous fortune.\n";
    }
    const auto eval = [&](const std::string& model, const std::string& extra) {
        auto r = run_t6("eval ppl --model " + model + " --text " + dir.file("text.txt") +
                        " --context 32 --stride 16 --json" + extra);
        EXPECT_EQ(r.status, 0) << extra << ": " << r.err;
        return r.status == 0 ? test::last_json(r.out) : nlohmann::json{};
    };
    const auto ppl = [](const nlohmann::json& j) { return j.value("perplexity", NAN); };
    const double f32 = ppl(eval(ckpt, " --cache f32"));
    for (const std::string type : {"q8", "q4"}) {
        const nlohmann::json a8 = eval(ckpt, " --weights " + type + "a8");
        EXPECT_EQ(a8.value("kv_cache", ""), "f32") << "--weights " << type << "a8 implies --cache";
        EXPECT_EQ(a8.value("weights", ""), type + "a8");
        const double p = ppl(a8), deq = ppl(eval(ckpt, " --weights " + type + " --cache f32"));
        ASSERT_TRUE(std::isfinite(p)) << type;
        // Random weights (perplexity ~1250 of 256 tokens) are harder on 4 bits than trained ones.
        EXPECT_NEAR(p / f32, 1.0, type == "q8" ? 0.03 : 0.08)
            << type << "a8 " << p << " f32 " << f32;
        std::printf("%sa8 %.4f, %s %.4f, f32 %.4f\n", type.c_str(), p, type.c_str(), deq, f32);
        EXPECT_NE(p, deq) << type << "a8 rounds the activations";
        EXPECT_NEAR(p / deq, 1.0, 0.01) << type << "a8 " << p << " " << type << " " << deq;
        // With the q8 cache too.
        EXPECT_NEAR(ppl(eval(ckpt, " --weights " + type + "a8 --cache q8")) / p, 1.0, 0.03);
    }
    // A `t6 quantize` checkpoint: its stored codes with int8 activations equal quantizing at load.
    const std::string q8 = dir.file("q8.safetensors");
    auto r = run_t6("quantize " + ckpt + " --type q8 --out " + q8);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_DOUBLE_EQ(ppl(eval(q8, " --weights q8a8")), ppl(eval(ckpt, " --weights q8a8")));

    const std::string base = "eval ppl --text " + dir.file("text.txt") + " --model ";
    test::expect_one_line_error(run_t6(base + ckpt + " --weights q8a8 --cache q9"),
                                "cache type 'q9' is not f32, bf16 or q8");
    test::expect_one_line_error(run_t6(base + ckpt + " --weights q5a8"), "unknown type 'q5a8'");
    test::expect_one_line_error(run_t6(base + q8 + " --weights q4a8"),
                                "holds q8 weights, not q4a8");
    test::expect_one_line_error(run_t6(base + q8 + " --weights q8"), "is quantized already");
}

}  // namespace

}  // namespace eval_q8a8_cli
