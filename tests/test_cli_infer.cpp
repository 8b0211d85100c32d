// End-to-end tests of the inference commands: t6 generate, t6 kv, t6 info, t6 bench decode.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "kernels/int8_linear.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "test_cli_util.h"
#include "test_util.h"

using namespace t6;

namespace {

using test::expect_one_line_error;
using test::last_json;

const std::string kT6 = T6_BINARY;

TEST(CliGenerate, GreedyIsDeterministicAndReportsSpeed) {
    test::TempDir dir;
    std::string ckpt = test::write_tiny_checkpoint(dir);
    std::string cmd = kT6 + " generate --model " + ckpt +
                      " --prompt 'To be' --max-new-tokens 12 --temperature 0 --json";
    auto a = test::run_command(cmd), b = test::run_command(cmd);
    ASSERT_EQ(a.status, 0) << a.err;
    EXPECT_EQ(a.out.substr(0, a.out.find('\n')), b.out.substr(0, b.out.find('\n')));
    EXPECT_EQ(a.out.rfind("To be", 0), 0u);
    auto j = last_json(a.out);
    EXPECT_EQ(j["prompt_tokens"], 5);
    EXPECT_EQ(j["generated_tokens"], 12);
    EXPECT_GT(j["decode_tokens_per_s"].get<double>(), 0.0);
    // The cache is allocated once for the whole context: (R_K+R_V)(h+d_h) numbers per token and
    // layer, float32.
    EXPECT_EQ(j["kv_cache_bytes"], 64 * 2 * (2 + 2) * (2 + 16) * 4);
    EXPECT_NE(a.err.find("decode 12 tokens"), std::string::npos);
}

TEST(CliGenerate, SeededSamplingReproduces) {
    test::TempDir dir;
    std::string ckpt = test::write_tiny_checkpoint(dir);
    std::string cmd = kT6 + " generate --model " + ckpt +
                      " --prompt abc --max-new-tokens 20 --temperature 1.0 --top-k 40 "
                      "--top-p 0.9 --seed 7 --cache bf16";
    auto a = test::run_command(cmd), b = test::run_command(cmd);
    ASSERT_EQ(a.status, 0) << a.err;
    EXPECT_EQ(a.out, b.out);
}

TEST(CliGenerate, Bf16WeightsGenerate) {
    test::TempDir dir;
    std::string ckpt = test::write_tiny_checkpoint(dir);
    auto r = test::run_command(kT6 + " generate --model " + ckpt +
                               " --prompt 'To be' --max-new-tokens 6 --temperature 0 --weights "
                               "bf16 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = last_json(r.out);
    EXPECT_EQ(j["weights"], "bf16");
    EXPECT_EQ(j["generated_tokens"], 6);
    EXPECT_NE(r.err.find("weights bf16"), std::string::npos);
}

TEST(CliGenerate, PromptFromStdin) {
    test::TempDir dir;
    std::string ckpt = test::write_tiny_checkpoint(dir);
    auto r = test::run_command("printf 'hello' | " + kT6 + " generate --model " + ckpt +
                               " --max-new-tokens 3 --temperature 0");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out.rfind("hello", 0), 0u);
}

TEST(CliGenerate, BadInputGivesOneLineErrors) {
    test::TempDir dir;
    std::string ckpt = test::write_tiny_checkpoint(dir);
    const std::string base = kT6 + " generate --model " + ckpt;
    expect_one_line_error(test::run_command(base + " --prompt ''"), "prompt is empty");
    std::string long_prompt(80, 'x');
    expect_one_line_error(test::run_command(base + " --prompt " + long_prompt),
                          "exceeds the context");
    expect_one_line_error(test::run_command(base + " --prompt a --temperature -1"), "temperature");
    expect_one_line_error(test::run_command(base + " --prompt a --top-p 0"), "top_p");
    expect_one_line_error(test::run_command(base + " --prompt a --top-k -3"), "top_k");
    expect_one_line_error(test::run_command(base + " --prompt a --cache f16"), "f16");
    expect_one_line_error(test::run_command(base + " --prompt a --weights f16"), "f16");
    expect_one_line_error(test::run_command(kT6 + " generate --model " + dir.file("nope")),
                          "no such file");
    // A checkpoint whose weights belong to another architecture than its config says.
    test::TempDir other;
    std::string mha = test::write_tiny_checkpoint(other, "model.safetensors", AttentionKind::mha);
    std::string cfg = other.file("config.json");
    {
        std::ofstream f(cfg);
        f << R"({"model_type": "T6", "n_layer": 2, "n_embd": 32, "n_head": 2, "head_dim": 16,
                "vocab_size": 256, "rank": 2, "q_rank": 6})";
    }
    // Strip the t6 metadata: write an official-style state_dict next to that config.
    Model m(load_model(mha)->config());
    std::string official = other.file("weights.safetensors");
    write_safetensors(official, {{"transformer.wte.weight", DType::F32, {256, 32}, m.params()}},
                      {});
    expect_one_line_error(test::run_command(kT6 + " generate --model " + other.path() +
                                            "/weights.safetensors --prompt a"),
                          "missing tensor");
}

TEST(CliKv, TableAndJsonFollowTheFormulas) {
    auto r = test::run_command(kT6 + " kv small-t6 --budget 2GiB --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = last_json(r.out);
    ASSERT_EQ(j["models"].size(), 6u);
    for (const auto& m : j["models"]) {
        if (m["model"] == "small-mha") {
            EXPECT_EQ(m["numbers_per_token_per_layer"], 2 * 12 * 64);
        } else if (m["model"] == "small-t6") {
            EXPECT_EQ(m["numbers_per_token_per_layer"], 4 * (34 + 64));
        } else if (m["model"] == "small-mla") {
            EXPECT_EQ(m["numbers_per_token_per_layer"], 256 + 32);
        }
        const double per_token = m["bytes_per_token"].get<double>();
        EXPECT_EQ(m["max_context_tokens"].get<long long>(), (long long)(2147483648.0 / per_token));
    }
    expect_one_line_error(test::run_command(kT6 + " kv small-t6 --budget 2XB"), "unknown unit");
    expect_one_line_error(test::run_command(kT6 + " kv huge-t6"), "unknown preset");
}

TEST(CliInfo, PaperSizesWithinTwoPercent) {
    const std::pair<const char*, double> sizes[] = {
        {"small", 124e6}, {"medium", 353e6}, {"large", 773e6}, {"xl", 1.5e9}};
    for (const auto& [size, target] : sizes)
        for (const char* kind : {"mha", "mqa", "gqa", "mla", "t6", "t6-kvonly"}) {
            std::string name = std::string(size) + "-" + kind;
            auto r = test::run_command(kT6 + " info " + name + " --json");
            ASSERT_EQ(r.status, 0) << r.err;
            double params = last_json(r.out)["params_total"].get<double>();
            // The paper's xl is "1.5B": allow 2% around 1.5B..1.55B.
            double lo = target * 0.98, hi = (size == std::string("xl") ? 1.55e9 : target) * 1.02;
            EXPECT_GE(params, lo) << name;
            EXPECT_LE(params, hi) << name;
        }
}

TEST(CliInfo, ConfigErrorsNameTheProblem) {
    test::TempDir dir;
    {
        std::ofstream f(dir.file("bad.json"));
        f << R"({"attention": "tpa", "n_embd": 64, "colour": 3})";
    }
    expect_one_line_error(test::run_command(kT6 + " info " + dir.file("bad.json")),
                          "unknown key 'colour'");
    expect_one_line_error(test::run_command(kT6 + " info tiny-t6 n_head=0"), "n_head");
    expect_one_line_error(test::run_command(kT6 + " info tiny-gqa n_head=5"), "multiple");
    expect_one_line_error(test::run_command(kT6 + " info tiny-t6 q_rank=abc"), "q_rank");
    expect_one_line_error(test::run_command(kT6 + " info --bogus"), "--bogus");
}

TEST(CliBench, DecodeJsonHasRooflineFields) {
    auto r = test::run_command(kT6 +
                               " bench decode --presets tiny-t6,tiny-mha --contexts 100 "
                               "--batches 1,2 --steps 1 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = last_json(r.out);
    ASSERT_EQ(j["results"].size(), 4u);
    for (const auto& x : j["results"]) {
        EXPECT_GT(x["tokens_per_s"].get<double>(), 0.0);
        EXPECT_GT(x["roofline_fraction"].get<double>(), 0.0);
        EXPECT_GT(x["roofline_fraction_now"].get<double>(), 0.0);
        EXPECT_GT(x["bandwidth_now_gb_per_s"].get<double>(), 0.0);
        // A probe that the best step beat is repeated (tiny models fit in a cache, so this can
        // go either way); a point whose probe was not repeated has its best step at or above the
        // floor of that probe.
        ASSERT_TRUE(x["probe_repeated"].is_boolean());
        if (!x["probe_repeated"].get<bool>()) {
            EXPECT_GE(x["best_step_ms"].get<double>(),
                      x["roofline_memory_now_ms"].get<double>() * (1 - 1e-12));
        }
        EXPECT_LE(x["best_step_ms"].get<double>(), x["step_ms"].get<double>());
        // The step split into attention and linear layers, each against its own floor; the
        // floor of the phases run one after the other is at least the overlapped one.
        EXPECT_GT(x["attention_ms"].get<double>(), 0.0);
        EXPECT_GT(x["linear_ms"].get<double>(), 0.0);
        EXPECT_LE(x["attention_ms"].get<double>(), x["step_ms"].get<double>());
        EXPECT_GT(x["attention_fraction_now"].get<double>(), 0.0);
        EXPECT_GT(x["linear_fraction_now"].get<double>(), 0.0);
        EXPECT_GE(x["roofline_serial_floor_now_ms"].get<double>(),
                  x["roofline_floor_now_ms"].get<double>() * (1 - 1e-12));  // rounding apart
        EXPECT_NEAR(
            x["roofline_serial_floor_now_ms"].get<double>(),
            x["attention_floor_now_ms"].get<double>() + x["linear_floor_now_ms"].get<double>(),
            1e-9 * x["roofline_serial_floor_now_ms"].get<double>());
        // Attention FLOPs count at the fp32 FMA peak unless a native bf16 kernel runs them.
        if (x["attention_kernel"].get<std::string>().find("vdpbf16ps") == std::string::npos) {
            EXPECT_EQ(x["attention_flops_rate_now_gflops"].get<double>(),
                      x["fma_peak_now_gflops"].get<double>());
        }
    }
    // The float32 GEMM library in force (gemm_backend.h) names itself.
    const auto gemm_kernel = j["gemm_kernel"].get<std::string>();
    EXPECT_TRUE(gemm_kernel.find("OpenBLAS") != std::string::npos ||
                gemm_kernel.find("oneDNN") != std::string::npos)
        << gemm_kernel;
    EXPECT_GT(j["bandwidth_start_gb_per_s"].get<double>(), 0.0);
    EXPECT_GT(j["gemm_gflops_start"].get<double>(), 0.0);
    EXPECT_EQ(j["weights"].get<std::string>(), "f32");
    EXPECT_FALSE(j["flash_tpa_kernel"].get<std::string>().empty());
    // The int8 GEMV of q8a8 / q4a8 weights, as t6 info --system names it.
    EXPECT_EQ(j["int8_gemv_kernel"].get<std::string>(), std::string(int8_kernel_name()));
}

// Bad arguments fail with one line before the benchmark prints anything (no half table).
TEST(CliBench, DecodeBadArgumentsFailBeforeAnyOutput) {
    for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
             {"--presets tiny-t6,small-zzz", "unknown preset 'small-zzz'"},
             {"--cache f16", "cache type 'f16'"},
             {"--contexts 0", "bad context length '0'"},
             {"--presets tiny-t6 --paired", "--paired needs at least two presets"}}) {
        auto r = test::run_command(kT6 + " bench decode " + args);
        expect_one_line_error(r, needle);
        EXPECT_EQ(r.out, "") << args;
    }
}

// --paired: the presets' steps taken in turn at each point; every result carries its step times,
// and its step-by-step ratios to the first preset's are those times divided, their median the
// reported ratio (the first preset's: all 1).
TEST(CliBench, DecodePairedStepsGiveStepByStepRatios) {
    auto r = test::run_command(kT6 +
                               " bench decode --presets tiny-mha,tiny-t6 --contexts 64,128 "
                               "--batches 1 --steps 3 --paired --json");
    ASSERT_EQ(r.status, 0) << r.err;
    auto j = last_json(r.out);
    EXPECT_TRUE(j["paired"].get<bool>());
    const auto& res = j["results"];
    ASSERT_EQ(res.size(), 4u);
    for (size_t p = 0; p < 2; p++) {  // per point: tiny-mha, then tiny-t6
        const auto& ref = res[2 * p];
        const auto& x = res[2 * p + 1];
        EXPECT_EQ(ref["model"], "tiny-mha");
        EXPECT_EQ(x["model"], "tiny-t6");
        EXPECT_EQ(x["context"], ref["context"]);
        EXPECT_EQ(x["paired_with"], "tiny-mha");
        EXPECT_EQ(ref["paired_step_ratio"].get<double>(), 1.0);
        const auto a = ref["step_times_ms"].get<std::vector<double>>();
        const auto b = x["step_times_ms"].get<std::vector<double>>();
        auto ratios = x["paired_step_ratios"].get<std::vector<double>>();
        ASSERT_EQ(a.size(), 3u);
        ASSERT_EQ(b.size(), 3u);
        ASSERT_EQ(ratios.size(), 3u);
        for (size_t i = 0; i < 3; i++) {
            EXPECT_GT(a[i], 0.0);
            EXPECT_NEAR(ratios[i], b[i] / a[i], 1e-9 * ratios[i]);
        }
        std::sort(ratios.begin(), ratios.end());
        EXPECT_EQ(x["paired_step_ratio"].get<double>(), ratios[1]);
        auto steps = b;
        std::sort(steps.begin(), steps.end());
        EXPECT_NEAR(x["step_ms"].get<double>(), steps[1], 1e-9 * steps[1]);
        // The bounds: each model's serial floor over the first model's median step and over its
        // serial floor (the first model's own: its serial fraction, and 1).
        const double ref_step = ref["step_ms"].get<double>();
        const double ref_serial = ref["roofline_serial_floor_now_ms"].get<double>();
        for (const auto* y : {&ref, &x}) {
            const double serial = (*y)["roofline_serial_floor_now_ms"].get<double>();
            EXPECT_GT(serial, 0.0);
            EXPECT_NEAR((*y)["paired_step_ratio_bound_now"].get<double>(), serial / ref_step,
                        1e-12 * serial / ref_step);
            EXPECT_NEAR((*y)["paired_floor_ratio_now"].get<double>(), serial / ref_serial,
                        1e-12 * serial / ref_serial);
        }
        EXPECT_NEAR(ref["paired_step_ratio_bound_now"].get<double>(),
                    ref["roofline_serial_fraction_now"].get<double>(), 1e-12);
        EXPECT_EQ(ref["paired_floor_ratio_now"].get<double>(), 1.0);
    }
    EXPECT_NE(r.out.find("paired steps (f32, f32, context 128, batch 1)"), std::string::npos);
}

// --paired holds the point's caches together, so --mem-limit bounds their sum: at 1024 tokens
// tiny-mha's cache (8.0 MiB) and tiny-t6's (4.3 MiB) each fit 10 MiB, but not both.
TEST(CliBench, DecodePairedMemLimitCountsTheCachesTogether) {
    const std::string args =
        " bench decode --presets tiny-mha,tiny-t6 --contexts 1024 --batches 1 --steps 1 "
        "--mem-limit 10MiB --json";
    auto one_by_one = test::run_command(kT6 + args);
    ASSERT_EQ(one_by_one.status, 0) << one_by_one.err;
    EXPECT_EQ(last_json(one_by_one.out)["results"].size(), 2u);
    auto paired = test::run_command(kT6 + args + " --paired");
    ASSERT_EQ(paired.status, 0) << paired.err;
    const auto res = last_json(paired.out)["results"];
    ASSERT_EQ(res.size(), 1u);
    EXPECT_EQ(res[0]["model"], "tiny-mha");
    EXPECT_NE(paired.out.find("of the other models') > --mem-limit"), std::string::npos);
}

// bf16 weights: the roofline counts 2 bytes per parameter (and the cache is the same).
TEST(CliBench, DecodeBf16WeightsHalveWeightBytes) {
    auto run = [](const char* w) {
        auto r = test::run_command(kT6 +
                                   " bench decode --presets tiny-t6 --contexts 1 --batches 1 "
                                   "--steps 1 --json --weights " +
                                   w);
        EXPECT_EQ(r.status, 0) << r.err;
        return last_json(r.out)["results"][0]["bytes_per_step"].get<double>();
    };
    const double f32 = run("f32"), bf16 = run("bf16");
    EXPECT_NEAR(bf16 / f32, 0.5, 0.01);
}

TEST(CliHelp, EveryCommandHasHelp) {
    for (const char* c : {"info", "kv", "generate", "demo", "bench step", "bench decode"}) {
        auto r = test::run_command(kT6 + " " + c + " --help");
        EXPECT_EQ(r.status, 0) << c;
        EXPECT_NE(r.out.find("usage: t6"), std::string::npos) << c;
    }
}

}  // namespace
