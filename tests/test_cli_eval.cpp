// End-to-end tests of t6 eval: ppl on a token file and on text, mc on native-format task files
// with --json, several models in one comparison table, --report, and one-line errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

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
