// End-to-end tests of the SIMD reporting: t6 info --system, t6 bench kernels, and the SIMD target
// in every benchmark's output.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

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
         {"flash_tpa_decode", "flash_kv_decode", "flash_mla_decode", "linear_f32_few_rows",
          "linear_bf16", "attention_forward", "attention_backward", "cross_entropy",
          "rmsnorm_forward", "rope_forward", "swiglu_forward", "tpa_contract_forward", "adamw_step",
          "to_bf16"})
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
