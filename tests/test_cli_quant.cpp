// t6 quantize end to end: writes a q8 / q4 checkpoint that t6 generate decodes and t6 eval ppl
// scores (both as stored); bad arguments give one-line errors and no output file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/model.h"
#include "test_cli_util.h"
#include "test_util.h"

using namespace t6;
using test::run_t6;

namespace {

TEST(CliQuantize, WritesCheckpointsThatGenerateAndEvalRead) {
    test::TempDir dir;
    const std::string ckpt =
        test::write_tiny_checkpoint(dir, "model.safetensors", AttentionKind::tpa, 64);
    { std::ofstream(dir.file("text.txt")) << "To be, or not to be, that is the question.\n"; }
    for (const char* type : {"q8", "q4"}) {
        const std::string out = dir.file(std::string(type) + ".safetensors");
        auto r = run_t6("quantize " + ckpt + " --type " + type + " --out " + out + " --json");
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.out.find("\"scheme\":\"" + std::string(type) + "\""), std::string::npos);
        ASSERT_TRUE(std::filesystem::exists(out));
        EXPECT_LT(std::filesystem::file_size(out), std::filesystem::file_size(ckpt) / 2);
        r = run_t6("generate --model " + out +
                   " --prompt hello --max-new-tokens 4 --temperature 0 --json");
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_NE(r.out.find("\"weights\":\"" + std::string(type) + "\""), std::string::npos)
            << r.out;
        r = run_t6("eval ppl --model " + out + " --text " + dir.file("text.txt") + " --json");
        ASSERT_EQ(r.status, 0) << r.err;
        // The stored model scores as the float checkpoint quantized at load.
        auto r2 = run_t6("eval ppl --model " + ckpt + " --weights " + type + " --text " +
                         dir.file("text.txt") + " --json");
        ASSERT_EQ(r2.status, 0) << r2.err;
        const auto ppl = [](const std::string& s) {
            auto i = s.find("\"perplexity\":");
            return std::stod(s.substr(i + 13));
        };
        EXPECT_DOUBLE_EQ(ppl(r.out), ppl(r2.out));
    }
}

TEST(CliQuantize, BadArgumentsGiveOneLineErrors) {
    test::TempDir dir;
    const std::string ckpt = test::write_tiny_checkpoint(dir, "model.safetensors",
                                                         AttentionKind::tpa, 64),
                      out = dir.file("o.safetensors");
    for (const std::string& args :
         {"quantize " + ckpt + " --type q5 --out " + out, "quantize " + ckpt + " --out " + out,
          "quantize " + ckpt + " --type q8",
          "quantize " + dir.file("none") + " --type q8 --out " + out}) {
        auto r = run_t6(args);
        EXPECT_EQ(r.status, 1) << args;
        EXPECT_EQ(r.err.rfind("t6: error: ", 0), 0u) << r.err;
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
        EXPECT_FALSE(std::filesystem::exists(out)) << args;
    }
    auto r = run_t6("quantize " + ckpt + " --type q8 --out " + out);
    ASSERT_EQ(r.status, 0) << r.err;
    r = run_t6("quantize " + out + " --type q4 --out " + dir.file("again.safetensors"));
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("already quantized"), std::string::npos) << r.err;
    r = run_t6("generate --model " + out + " --weights q4 --prompt hi --max-new-tokens 1");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("holds q8 weights"), std::string::npos) << r.err;
}

// Quantized weights in the roofline and the memory planner: bytes as stored, scales included
// (tiny-t6: nearly every parameter is in a quantized matrix, 36 / 128 and 24 / 128 of f32).
TEST(CliQuantize, BenchDecodeAndKvCountQuantizedBytes) {
    auto r = run_t6(
        "bench decode --presets tiny-t6 --contexts 1 --batches 1 --steps 1 --threads 1 "
        "--weights f32,q8,q4 --cache f32,q8 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
    ASSERT_EQ(j["results"].size(), 6u);  // weights, then cache types
    const double f32 = j["results"][0]["bytes_per_step"].get<double>();
    EXPECT_EQ(j["results"][2]["weights"], "q8");
    EXPECT_NEAR(j["results"][2]["bytes_per_step"].get<double>() / f32, 36.0 / 128, 0.01);
    EXPECT_NEAR(j["results"][4]["bytes_per_step"].get<double>() / f32, 24.0 / 128, 0.01);
    // The q8 cache: 276 numbers in 8 rows per token and layer, 276 + 32 bytes instead of 1104;
    // one cached token in each of 4 layers.
    EXPECT_EQ(j["results"][1]["cache_type"], "q8");
    EXPECT_DOUBLE_EQ(f32 - j["results"][1]["bytes_per_step"].get<double>(), 4 * (1104.0 - 308.0));
    r = run_t6("kv tiny-t6 --weights q8 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto k = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
    for (const auto& m : k["models"]) {
        // MLA keeps its up-projections float32: a little above 36 / 128.
        const double ratio = m["weight_bytes"].get<double>() / (4.0 * m["params"].get<double>());
        EXPECT_GT(ratio, 36.0 / 128 - 0.005) << m["model"];
        EXPECT_LT(ratio, 0.32) << m["model"];
        EXPECT_GT(m["cache_exceeds_weights_from_tokens"].get<double>(), 0.0);
    }
}

// q8a8 (q8 weights, int8 activations) streams the q8 bytes; the crossover table pairs T6 with
// each baseline; bad weight / cache types are one-line errors.
TEST(CliQuantize, BenchDecodeQ8A8AndCrossover) {
    auto r = run_t6(
        "bench decode --presets tiny-mha,tiny-t6 --contexts 1 --batches 1 --steps 1 --threads 1 "
        "--weights q8a8 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
    ASSERT_EQ(j["results"].size(), 2u);
    EXPECT_EQ(j["results"][1]["weights"], "q8a8");
    ASSERT_EQ(j["crossovers"].size(), 1u);
    EXPECT_EQ(j["crossovers"][0]["t6_model"], "tiny-t6");
    EXPECT_EQ(j["crossovers"][0]["baseline_model"], "tiny-mha");
    EXPECT_TRUE(j["crossovers"][0].contains("crossover_context"));
    for (const std::string& args : {std::string("bench decode --presets tiny-t6 --weights q9"),
                                    std::string("bench decode --presets tiny-t6 --cache q9")}) {
        r = run_t6(args);
        EXPECT_EQ(r.status, 1) << args;
        EXPECT_EQ(r.err.rfind("t6: error: ", 0), 0u) << r.err;
        EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
    }
}

// --cache q8: t6 kv counts its bytes (codes and one float32 scale per row: tiny-t6 caches 276
// numbers in 8 rows per token and layer, 276 + 32 bytes; bench decode above); generate and eval
// ppl run through it (eval ppl --cache scores through the decoder's cache: with f32 it equals
// the training forward); an unknown cache type is a one-line error.
TEST(CliQuantize, Q8CacheBytesGenerateAndEval) {
    auto r = run_t6("kv tiny-t6 --cache q8 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto k = nlohmann::json::parse(r.out.substr(r.out.rfind("\n{") + 1));
    EXPECT_EQ(k["cache_type"], "q8");
    for (const auto& m : k["models"])
        if (m["model"] == "tiny-t6") {
            EXPECT_EQ(m["bytes_per_token_per_layer"].get<double>(), 308.0);
        }
    test::TempDir dir;  // random weights: the official init zeroes attention's output
    const std::string ckpt =
        test::write_tiny_checkpoint(dir, "model.safetensors", AttentionKind::tpa, 64, 7);
    { std::ofstream(dir.file("text.txt")) << "To be, or not to be, that is the question.\n"; }
    r = run_t6("generate --model " + ckpt +
               " --cache q8 --prompt hello --max-new-tokens 4 --temperature 0 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("\"kv_cache_type\":\"q8\""), std::string::npos) << r.out;
    const auto ppl = [&](const std::string& extra) {
        auto e = run_t6("eval ppl --model " + ckpt + " --text " + dir.file("text.txt") +
                        " --context 16 --stride 8 --json" + extra);
        EXPECT_EQ(e.status, 0) << e.err;
        return nlohmann::json::parse(e.out.substr(e.out.rfind("\n{") + 1))["perplexity"]
            .get<double>();
    };
    const double forward = ppl(""), f32 = ppl(" --cache f32"), q8 = ppl(" --cache q8");
    EXPECT_NEAR(f32 / forward, 1.0, 1e-4);
    EXPECT_NE(q8, f32);
    EXPECT_NEAR(q8 / f32, 1.0, 0.05);
    for (const std::string& args :
         {"generate --model " + ckpt + " --cache q9 --prompt hi",
          std::string("kv tiny-t6 --cache q9"),
          "eval ppl --model " + ckpt + " --text " + dir.file("text.txt") + " --cache q9"}) {
        r = run_t6(args);
        EXPECT_EQ(r.status, 1) << args;
        EXPECT_EQ(r.err, "t6: error: cache type 'q9' is not f32, bf16 or q8\n") << args;
    }
}

}  // namespace
