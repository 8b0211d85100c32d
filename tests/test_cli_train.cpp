// End-to-end: the t6 binary trains a tiny model on a temporary dataset, writes its metrics log
// and a complete checkpoint, resumes, and reports bad arguments as one-line errors.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/file_util.h"
#include "core/simd.h"
#include "test_cli_util.h"
#include "test_train_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

using RunResult = test::CommandResult;
RunResult t6(const std::string& args, const test::TempDir&) {
    return test::run_t6(args);
}

// The tiny model and a short run, as a t6 train config file.
std::string write_config(const test::TempDir& tmp, int max_iters) {
    nlohmann::json model = test::tiny_train_model().to_json();
    nlohmann::json cfg = {{"model", model},
                          {"data", tmp.file("data")},
                          {"out_dir", tmp.file("out")},
                          {"batch_size", 2},
                          {"seq_len", 16},
                          {"max_iters", max_iters},
                          {"eval_interval", 3},
                          {"eval_iters", 1},
                          {"log_interval", 2},
                          {"warmup_iters", 2},
                          {"threads", 1}};
    const std::string path = tmp.file("train.json");
    write_file_atomic(path, cfg.dump(2));
    return path;
}

TEST(CliTrain, ShortRunWritesLogAndCompleteCheckpointThenResumes) {
    test::TempDir tmp;
    fs::create_directory(tmp.file("data"));
    test::write_repetitive_dataset(tmp.file("data"), 64, 4000, 1000);
    const std::string cfg = write_config(tmp, 4);
    RunResult r = t6("train --config '" + cfg + "'", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("step 4/4"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("tok/s"), std::string::npos);
    EXPECT_NE(r.out.find("ETA"), std::string::npos);
    EXPECT_NE(r.out.find("done: 4 steps"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(tmp.file("out/ckpt_000004/COMPLETE")));
    EXPECT_TRUE(fs::exists(tmp.file("out/ckpt_000004/model.safetensors")));
    EXPECT_TRUE(fs::exists(tmp.file("out/ckpt_000004/optimizer.safetensors")));
    EXPECT_TRUE(fs::exists(tmp.file("out/ckpt_000003/COMPLETE")));
    std::ifstream in(tmp.file("out/metrics.jsonl"));
    std::string line;
    int train = 0, eval = 0;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line);  // every line is one JSON object
        train += j["kind"] == "train";
        eval += j["kind"] == "eval";
    }
    EXPECT_EQ(train, 3);  // steps 1, 2, 4
    EXPECT_EQ(eval, 3);   // start, 3, 4

    // Continue the same run to 6 steps.
    r = t6("train --resume '" + tmp.file("out") + "' max_iters=6", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("resuming from"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(tmp.file("out/ckpt_000006/COMPLETE")));
    // A new run into the same out_dir is refused.
    r = t6("train --config '" + cfg + "'", tmp);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
}

TEST(CliTrain, HelpExitsZero) {
    test::TempDir tmp;
    RunResult r = t6("train --help", tmp);
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("usage: t6 train"), std::string::npos);
    EXPECT_NE(r.out.find("gradient_accumulation_steps"), std::string::npos);
    r = t6("bench train --help", tmp);
    EXPECT_EQ(r.status, 0);
}

TEST(CliTrain, BadArgumentsAreOneLineErrors) {
    test::TempDir tmp;
    fs::create_directory(tmp.file("data"));
    test::write_repetitive_dataset(tmp.file("data"), 64, 4000, 1000);
    const std::string cfg = write_config(tmp, 2);
    for (const std::string& args :
         {std::string("train --config '") + cfg + "' batch_size=two",
          std::string("train --config '") + cfg + "' no_such_key=1",
          std::string("train --config '") + cfg + "' matmul_precision=fp8",
          std::string("bench train --preset tiny-t6 --matmul-precision f32,fp16"),
          std::string("train --config '") + cfg + "' vocab_size=32",  // data ids >= 32
          std::string("train --config '") + tmp.file("missing.json") + "'",
          std::string("train --preset tiny-t6"),  // no data
          std::string("train --bogus-option"),
          std::string("train --resume '") + tmp.file("nothing") + "'"}) {
        RunResult r = t6(args, tmp);
        EXPECT_NE(r.status, 0) << args;
        EXPECT_EQ(r.err.rfind("t6: error: ", 0), 0u) << args << ": " << r.err;
        EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    }
}

TEST(CliTrain, BenchTrainReportsBothPrecisionsAndTheGemmRateMeasuredNow) {
    test::TempDir tmp;
    RunResult r =
        t6("bench train --preset tiny-t6 n_layer=1 n_embd=128 n_head=2 vocab_size=512 --batch 2 "
           "--seq 64 --steps 1 --warmup 0 --matmul-precision f32,bf16 --json",
           tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const auto last = r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1);
    const auto j = nlohmann::json::parse(last);
    EXPECT_EQ(j["benchmark"], "train");
    // oneDNN's bf16 matmul where native bf16 runs (the child inherits T6_SIMD), the float32
    // sgemm on rounded inputs elsewhere.
    const auto bf16_kernel = j["gemm_bf16_kernel"].get<std::string>();
    EXPECT_NE(bf16_kernel.find(simd_native_bf16() ? "matmul, bf16 inputs" : "bf16-rounded inputs"),
              std::string::npos)
        << bf16_kernel;
    ASSERT_EQ(j["results"].size(), 2u);
    EXPECT_EQ(j["results"][0]["matmul_precision"], "f32");
    EXPECT_EQ(j["results"][1]["matmul_precision"], "bf16");
    for (const auto& row : j["results"]) {
        EXPECT_GT(row["gemm_gflops_measured_f32"].get<double>(), 0.0);
        EXPECT_NEAR(
            row["mfu_vs_measured_f32_gemm"].get<double>(),
            row["achieved_gflops"].get<double>() / row["gemm_gflops_measured_f32"].get<double>(),
            1e-9);
        EXPECT_FALSE(row.contains("speedup_vs_official"));  // not the preset as measured
        // One probe after each timed step; the rate is their median.
        EXPECT_EQ(row["gemm_probes"].get<int>(), 1);
        EXPECT_LE(row["gemm_gflops_measured_f32_min"].get<double>(),
                  row["gemm_gflops_measured_f32"].get<double>());
        EXPECT_GE(row["gemm_gflops_measured_f32_max"].get<double>(),
                  row["gemm_gflops_measured_f32"].get<double>());
    }
    EXPECT_GT(j["results"][1]["gemm_gflops_measured_bf16"].get<double>(), 0.0);
}

}  // namespace

// ---- merged from test_cli_train_sample.cpp (one program fewer to build and link in CI):
// End-to-end: `t6 train` with sample_tokens on a char-level dataset prepared by `t6 prepare` prints
// its closing sample in that dataset's tokenizer (resolved from meta.json): the prompt encoded
// and the tokens decoded as the corpus's characters, not taken as bytes (ids 0..6 as bytes would
// be control characters, printed as '?'), with a vocabulary far below 256.
namespace train_sample_cli {

using namespace t6;

TEST(CliTrainSample, CharDataSamplesInItsOwnTokenizer) {
    test::TempDir tmp;
    std::string text;
    for (int i = 0; i < 300; i++) text += "abc cab. bca!\n";  // 7 characters
    write_file_atomic(tmp.file("in.txt"), text);
    const test::CommandResult prep = test::run_t6("prepare '" + tmp.file("in.txt") + "' --out '" +
                                                  tmp.file("data") + "' --tokenizer char --quiet");
    ASSERT_EQ(prep.status, 0) << prep.err;
    // vocab_size 16: the model's rows are wider than the tokenizer's 7 ids (never sampled).
    const test::CommandResult r = test::run_t6(
        "train --preset tiny-t6 data='" + tmp.file("data") + "' out_dir='" + tmp.file("out") +
        "' vocab_size=16 n_layer=1 block_size=32 seq_len=16 batch_size=2 max_iters=2 "
        "eval_iters=1 threads=1 sample_tokens=12 sample_prompt=cab");
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const std::string head = "sample (greedy, 12 tokens, tokenizer char):\n";
    const size_t at = r.out.find(head);
    ASSERT_NE(at, std::string::npos) << r.out;
    const std::string sample = r.out.substr(at + head.size());
    ASSERT_EQ(sample.rfind("cab", 0), 0u) << sample;
    // The 12 sampled characters (the log line ends with a newline of its own).
    int chars = 0;
    for (size_t i = 3; i < sample.size() && chars < 12; i++, chars++)
        EXPECT_NE(std::string("abc .!\n").find(sample[i]), std::string::npos)
            << "character " << int(sample[i]) << " in " << sample;
    EXPECT_EQ(chars, 12) << sample;
}

}  // namespace train_sample_cli
