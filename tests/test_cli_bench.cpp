// End-to-end tests of the SIMD reporting: t6 info --system, t6 bench kernels, the SIMD target in
// every benchmark's output, and t6 bench decode's rounds per SIMD target.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "test_cli_util.h"
#include "test_util.h"

using namespace t6;

namespace {

using test::expect_one_line_error;
using test::last_json;

const std::string kT6 = T6_BINARY;
const std::set<std::string> kTargets = {"scalar", "avx2", "avx512", "avx512bf16",
                                        "neon",   "sve",  "sve2"};

nlohmann::json system_info(const std::string& env = "") {
    auto r = test::run_command(env + kT6 + " info --system --json");
    EXPECT_EQ(r.status, 0) << r.err;
    return last_json(r.out);
}

TEST(CliInfoSystem, JsonHasTheKeysAndAValidTarget) {
    const auto j = system_info();
    for (const char* k :
         {"cpu", "cpu_simd_features", "simd_available_targets", "simd_cpu_best", "simd_target",
          "simd_capped", "t6_simd_env", "simd_highway_target", "flash_tpa_kernel_f32",
          "flash_tpa_kernel_bf16", "gemm_kernel", "gemm_bf16_kernel", "threads"})
        EXPECT_TRUE(j.contains(k)) << k;
    const std::string t = j["simd_target"];
    EXPECT_TRUE(kTargets.count(t)) << t;
    const auto avail = j["simd_available_targets"].get<std::vector<std::string>>();
    ASSERT_FALSE(avail.empty());
    EXPECT_EQ(avail.back(), j["simd_cpu_best"].get<std::string>());
    EXPECT_NE(std::find(avail.begin(), avail.end(), t), avail.end());
    EXPECT_FALSE(j["simd_highway_target"].get<std::string>().empty());
    EXPECT_FALSE(j["flash_tpa_kernel_f32"].get<std::string>().empty());
}

TEST(CliInfoSystem, T6SimdCapsTheTarget) {
    const auto j = system_info("T6_SIMD=scalar ");
    EXPECT_EQ(j["simd_target"], "scalar");
    EXPECT_EQ(j["t6_simd_env"], "scalar");
    EXPECT_EQ(j["simd_highway_target"], "SCALAR");
    EXPECT_EQ(j["simd_capped"].get<bool>(), j["simd_cpu_best"] != "scalar");
}

TEST(CliInfoSystem, BadT6SimdIsOneLineError) {
    expect_one_line_error(test::run_command("T6_SIMD=bogus " + kT6 + " info --system"), "bogus");
    expect_one_line_error(
        test::run_command("T6_SIMD=bogus " + kT6 + " bench kernels --quick --kernels to_bf16"),
        "bogus");
}

// A bad T6_SIMD or T6_BF16_DOT is an error whatever the command (t6 kv runs no kernel).
TEST(CliInfoSystem, BadSimdSettingsAreOneLineErrorsForEveryCommand) {
    expect_one_line_error(test::run_command("T6_SIMD=bogus " + kT6 + " kv tiny-t6"), "bogus");
    expect_one_line_error(test::run_command("T6_BF16_DOT=maybe " + kT6 + " kv tiny-t6"),
                          "T6_BF16_DOT: 'maybe' is not auto, on or off");
    expect_one_line_error(test::run_command("T6_BF16_DOT=maybe " + kT6 + " info --system"),
                          "T6_BF16_DOT");
}

TEST(CliBenchKernels, QuickJsonHasOneRowPerKernelAndTarget) {
    auto r = test::run_command(kT6 + " bench kernels --quick --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = last_json(r.out);
    const auto avail = system_info()["simd_available_targets"].get<std::vector<std::string>>();
    EXPECT_TRUE(kTargets.count(j["simd_target"].get<std::string>()));
    EXPECT_FALSE(j["simd_highway_target"].get<std::string>().empty());
    EXPECT_FALSE(j["cpu"].get<std::string>().empty());
    EXPECT_GT(j["fma_peak_gflops"].get<double>(), 0.0);
    EXPECT_GT(j["read_bandwidth_gb_per_s"].get<double>(), 0.0);
    std::map<std::string, std::set<std::string>> seen;  // kernel -> targets
    for (const auto& row : j["kernels"]) {
        const std::string k = row["kernel"], t = row["target"];
        EXPECT_TRUE(seen[k].insert(t).second) << k << " " << t;
        for (const char* key : {"ms", "gflops", "gb_per_s", "fraction_of_peak"})
            EXPECT_GT(row[key].get<double>(), 0.0) << k << " " << t << " " << key;
        EXPECT_TRUE(row["bound"] == "compute" || row["bound"] == "memory");
    }
    for (const char* fam :
         {"flash_tpa_decode", "flash_kv_decode", "flash_kv_decode_mqa", "flash_mla_decode",
          "linear_f32_few_rows", "linear_bf16", "attention_forward", "attention_backward",
          "cross_entropy", "rmsnorm_forward", "rope_forward", "swiglu_forward",
          "tpa_contract_forward", "adamw_step", "to_bf16"})
        EXPECT_TRUE(seen.count(fam)) << fam;
    for (const auto& [k, targets] : seen)
        EXPECT_EQ(targets, std::set<std::string>(avail.begin(), avail.end())) << k;
    EXPECT_EQ(j["kernels"].size(), seen.size() * avail.size());
}

TEST(CliBenchKernels, TargetsListSelectsTargets) {
    auto r = test::run_command(kT6 +
                               " bench kernels --quick --targets scalar --kernels "
                               "rmsnorm_forward,to_bf16 --repeats 1 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = last_json(r.out);
    ASSERT_EQ(j["kernels"].size(), 2u);
    for (const auto& row : j["kernels"]) {
        EXPECT_EQ(row["target"], "scalar");
        EXPECT_EQ(row["highway_target"], "SCALAR");
    }
    EXPECT_NE(r.out.find("scalar"), std::string::npos);
}

TEST(CliBenchKernels, BadArgumentsAreOneLineErrors) {
    expect_one_line_error(test::run_command(kT6 + " bench kernels --targets avx9"), "avx9");
    expect_one_line_error(test::run_command(kT6 + " bench kernels --targets ,"), "--targets");
    expect_one_line_error(test::run_command(kT6 + " bench kernels --kernels nope"), "nope");
    expect_one_line_error(test::run_command(kT6 + " bench kernels --repeats 0"), "--repeats");
}

TEST(CliBenchKernels, EveryBenchmarkReportsTheSimdTarget) {
    auto r = test::run_command(kT6 +
                               " bench decode --presets tiny-t6 --contexts 64 --batches 1 "
                               "--steps 1 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("SIMD target"), std::string::npos);
    auto j = last_json(r.out);
    EXPECT_TRUE(kTargets.count(j["simd_target"].get<std::string>()));
    EXPECT_FALSE(j["simd_highway_target"].get<std::string>().empty());
    EXPECT_GT(j["fma_peak_start_gflops"].get<double>(), 0.0);
    const auto& row = j["results"][0];
    EXPECT_GT(row["roofline_memory_now_ms"].get<double>(), 0.0);
    EXPECT_GT(row["roofline_compute_now_ms"].get<double>(), 0.0);
    EXPECT_NEAR(row["roofline_floor_now_ms"].get<double>(),
                std::max(row["roofline_memory_now_ms"].get<double>(),
                         row["roofline_compute_now_ms"].get<double>()),
                1e-9);
    for (const char* b : {"step", "train"}) {
        r = test::run_command(kT6 + " bench " + b +
                              " --preset tiny-t6 n_layer=1 n_embd=64 n_head=2 vocab_size=256 "
                              "--batch 1 --seq 16 --steps 1 --warmup 0 --json");
        ASSERT_EQ(r.status, 0) << b << r.err;
        EXPECT_NE(r.out.find("SIMD target"), std::string::npos) << b;
        j = last_json(r.out);
        EXPECT_TRUE(kTargets.count(j["simd_target"].get<std::string>())) << b;
        EXPECT_FALSE(j["simd_highway_target"].get<std::string>().empty()) << b;
    }
}

// --rounds and --targets: the sweep runs once per round and target (targets in turn within a
// round); every result names its round and target, and "summary" holds each point's values in
// round order and their median, from which the crossovers are taken per target.
TEST(CliBenchDecode, RoundsAndTargetsGiveEachPointsMedianPerTarget) {
    // scalar, the CPU's best and "now" (the target in force: the best one, or T6_SIMD's cap), each
    // once, in that order.
    const auto info = system_info();
    std::vector<std::string> targets = {"scalar"};
    for (const char* key : {"simd_cpu_best", "simd_target"}) {
        const std::string t = info[key].get<std::string>();
        if (std::find(targets.begin(), targets.end(), t) == targets.end()) targets.push_back(t);
    }
    const std::string list = "scalar," + info["simd_cpu_best"].get<std::string>() + ",now";
    auto r = test::run_command(kT6 +
                               " bench decode --presets tiny-mha,tiny-t6 --contexts 64,128 "
                               "--batches 1 --steps 1 --threads 1 --paired --rounds 3 --targets " +
                               list + " --json");
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("medians of 3 rounds per point"), std::string::npos);
    const auto j = last_json(r.out);
    EXPECT_EQ(j["rounds"], 3);
    EXPECT_EQ(j["targets"].get<std::vector<std::string>>(), targets);
    const auto& res = j["results"];
    const size_t nt = targets.size();
    ASSERT_EQ(res.size(), 3 * nt * 4);  // rounds x targets x (2 contexts x 2 models)
    for (size_t i = 0; i < res.size(); i++) {
        EXPECT_EQ(res[i]["round"], int(i / (4 * nt)) + 1) << i;
        EXPECT_EQ(res[i]["simd_target"], targets[i / 4 % nt]) << i;
        // The overlapped floor over the serial one: at most 1 (a sum of maxima is at least the
        // maximum of the sums).
        const double reach = res[i]["roofline_fraction_reachable_now"].get<double>();
        EXPECT_NEAR(reach,
                    res[i]["roofline_floor_now_ms"].get<double>() /
                        res[i]["roofline_serial_floor_now_ms"].get<double>(),
                    1e-12 * reach)
            << i;
        EXPECT_GT(reach, 0.0) << i;
        EXPECT_LE(reach, 1.0 + 1e-12) << i;
    }
    const auto& sum = j["summary"];
    ASSERT_EQ(sum.size(), nt * 4);
    for (const auto& e : sum) {
        EXPECT_EQ(e["rounds"], 3);
        // The point's results, in round order.
        std::vector<double> steps, ratios, bounds;
        for (const auto& x : res)
            if (x["simd_target"] == e["simd_target"] && x["model"] == e["model"] &&
                x["context"] == e["context"]) {
                steps.push_back(x["step_ms"].get<double>());
                ratios.push_back(x["paired_step_ratio"].get<double>());
                bounds.push_back(x["paired_step_ratio_bound_now"].get<double>());
            }
        ASSERT_EQ(steps.size(), 3u);
        EXPECT_EQ(e["step_ms_rounds"].get<std::vector<double>>(), steps);
        EXPECT_EQ(e["paired_step_ratio_rounds"].get<std::vector<double>>(), ratios);
        EXPECT_EQ(e["paired_step_ratio_bound_now_rounds"].get<std::vector<double>>(), bounds);
        EXPECT_EQ(e["paired_floor_ratio_now_rounds"].size(), 3u);
        std::sort(steps.begin(), steps.end());
        std::sort(ratios.begin(), ratios.end());
        EXPECT_EQ(e["step_ms"].get<double>(), steps[1]);
        EXPECT_EQ(e["paired_step_ratio"].get<double>(), ratios[1]);
        EXPECT_EQ(e["roofline_fraction_now_rounds"].size(), 3u);
        EXPECT_TRUE(e.contains("attention_fraction_now"));
    }
    // One crossover row (tiny-t6 against tiny-mha) per target, from the medians.
    ASSERT_EQ(j["crossovers"].size(), nt);
    for (size_t t = 0; t < nt; t++) {
        const auto& c = j["crossovers"][t];
        EXPECT_EQ(c["simd_target"], targets[t]);
        std::map<long, double> t6, mha;
        for (const auto& e : sum)
            if (e["simd_target"] == targets[t])
                (e["model"] == "tiny-t6" ? t6 : mha)[e["context"].get<long>()] =
                    e["step_ms"].get<double>();
        const nlohmann::json want = t6[128] >= mha[128] ? nlohmann::json()
                                    : t6[64] < mha[64]  ? nlohmann::json(64)
                                                        : nlohmann::json(128);
        EXPECT_EQ(c["crossover_context"], want) << targets[t];
    }
}

TEST(CliBenchDecode, BadRoundsAndTargetsAreOneLineErrors) {
    const std::string cmd = kT6 + " bench decode --presets tiny-t6 --contexts 64 --batches 1 ";
    for (const auto& [args, needle] : std::vector<std::pair<std::string, std::string>>{
             {"--rounds 0", "--rounds must be positive"},
             {"--targets avx9", "unknown SIMD target 'avx9'"},
             {"--targets ,", "--targets is empty"}}) {
        auto r = test::run_command(cmd + args);
        expect_one_line_error(r, needle);
        EXPECT_EQ(r.out, "") << args;
    }
    // A target this machine cannot run (where there is one).
    const auto avail = system_info()["simd_available_targets"].get<std::vector<std::string>>();
    if (std::find(avail.begin(), avail.end(), "avx512bf16") == avail.end() &&
        std::find(avail.begin(), avail.end(), "avx2") != avail.end()) {
        auto r = test::run_command(cmd + "--targets avx512bf16");
        expect_one_line_error(r, "does not run on this machine");
    }
}

TEST(CliBenchKernels, EveryCommandHasHelp) {
    for (const char* c :
         {"info", "bench", "bench step", "bench train", "bench decode", "bench kernels"}) {
        auto r = test::run_command(kT6 + " " + c + " --help");
        EXPECT_EQ(r.status, 0) << c;
        EXPECT_NE(r.out.find("usage: t6"), std::string::npos) << c;
    }
    auto r = test::run_command(kT6 + " info --help");
    EXPECT_NE(r.out.find("--system"), std::string::npos);
}

}  // namespace

// ---- merged from test_cli_paged.cpp (one program fewer to build and link in CI):
// `t6 bench serve` end to end (the paged KV cache, docs/paged-cache.md): a paged pool admits
// more short sequences than contiguous slots of the maximum context, prefix reuse holds fewer
// blocks; bad arguments are one-line errors.
namespace paged_cli {

using namespace t6;

namespace {

const std::string kT6 = T6_BINARY;

TEST(CliBenchServe, PagedAdmitsMoreAndPrefixReuseHoldsFewerBlocks) {
    auto r = test::run_command(kT6 +
                               " bench serve --preset tiny-t6 --kv-budget 2MiB --context 64 "
                               "--max-context 256 --steps 1 --prefix-requests 3 "
                               "--prefix-tokens 40 --threads 1 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = test::last_json(r.out);
    // 4416 bytes per token: 2 MiB holds 1 slot of 256 tokens, 14 blocks of 32 = 7 sequences of 64.
    EXPECT_EQ(j["kv_bytes_per_token"].get<long>(), 4416);
    EXPECT_EQ(j["contiguous_sequences"].get<long>(), 1);
    EXPECT_EQ(j["pool_blocks"].get<long>(), 14);
    EXPECT_EQ(j["paged_sequences"].get<long>(), 7);
    EXPECT_GT(j["paged_tokens_per_s"].get<double>(), 0.0);
    // 48-token prompts in blocks of 32: the first holds 2 blocks, the others share its full one.
    const auto& p = j["prefix"];
    EXPECT_EQ(p["blocks_one_request"].get<long>(), 2);
    EXPECT_EQ(p["blocks_with_reuse"].get<long>(), 4);
    EXPECT_EQ(p["blocks_without_reuse"].get<long>(), 6);
}

TEST(CliBenchServe, BadArgumentsAreOneLineErrors) {
    test::expect_one_line_error(test::run_command(kT6 + " bench serve --context 1"), "--context");
    test::expect_one_line_error(test::run_command(kT6 + " bench serve --block-tokens 0"),
                                "--block-tokens");
    test::expect_one_line_error(
        test::run_command(kT6 + " bench serve --preset tiny-t6 --kv-budget 1KiB"), "budget");
    auto r = test::run_command(kT6 + " bench serve --help");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("usage: t6"), std::string::npos);
}

}  // namespace

}  // namespace paged_cli

// ---- merged from test_cli_bench_peers.cpp (one program fewer to build and link in CI):
// `t6 bench step|train --peers FILE`: the official code's figures are data (a JSON file, by
// default the repository's bench/official-pytorch-cpu.json), not code. A row gets
// official_tokens_per_s and speedup_vs_official when the file lists its preset, batch and
// sequence length (test_cli_train checks that a changed model gets none); a broken or missing
// --peers file is a one-line error.
namespace bench_peers_cli {

using namespace t6;

namespace {

void write_text(const std::string& path, const std::string& text) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr) << path;
    std::fputs(text.c_str(), f);
    std::fclose(f);
}

}  // namespace

TEST(CliBenchPeers, ARowIsComparedWhenTheFileListsItsShape) {
    test::TempDir tmp;
    const std::string peers = tmp.file("peers.json");
    write_text(peers, R"({"step": [{"preset": "tiny-t6", "batch": 1, "seq": 16,
                                    "tokens_per_s": 2.0}]})");
    const std::string run = "bench step --preset tiny-t6 --steps 1 --warmup 0 --json --peers '" +
                            peers + "' --batch 1 --seq ";
    const auto r = test::run_t6(run + "16");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto row = test::last_json(r.out)["results"][0];
    EXPECT_EQ(row["official_tokens_per_s"], 2.0);
    EXPECT_NEAR(row["speedup_vs_official"].get<double>(), row["tokens_per_s"].get<double>() / 2.0,
                1e-9);
}

TEST(CliBenchPeers, ABrokenOrMissingFileIsAOneLineError) {
    test::TempDir tmp;
    const std::string peers = tmp.file("peers.json");
    write_text(peers, R"({"train": [{"preset": "tiny-t6"}]})");
    test::expect_one_line_error(test::run_t6("bench train --peers '" + peers + "'"),
                                "train[0]: needs preset");
    test::expect_one_line_error(test::run_t6("bench step --peers '" + tmp.file("none") + "'"),
                                "peer figures file not found");
}

}  // namespace bench_peers_cli
