// End-to-end `t6 convert` and recovery with distillation: an MHA checkpoint converts to a T6
// checkpoint with a --json report, the converted model trains with distill_from=the source, and
// bad input gives one-line errors.
#include <gtest/gtest.h>

#include <fstream>

#include "test_cli_util.h"

namespace t6::test {
namespace {

std::string write_text(const TempDir& dir) {
    const std::string path = dir.file("calib.txt");
    std::ofstream f(path);
    for (int i = 0; i < 40; i++)
        f << "To be, or not to be, that is the question " << i << ": whether 'tis nobler.\n";
    return path;
}

TEST(CliConvert, ConvertsReportsAndRecoversWithDistillation) {
    TempDir dir;
    const std::string src =
        write_tiny_checkpoint(dir, "mha.safetensors", AttentionKind::mha, 32, 5);
    const std::string text = write_text(dir), out = dir.file("t6.safetensors");
    auto r = run_t6("convert " + src + " --to tpa --rank-q 3 --rank-k 2 --rank-v 2 --calib " +
                    text + " --calib-seq 32 --als-iters 2 --out " + out + " --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = last_json(r.out);
    EXPECT_EQ(j["from"], "mha");
    EXPECT_EQ(j["to"], "tpa");
    ASSERT_EQ(j["layers"].size(), 2u);
    for (const auto& l : j["layers"]) {
        EXPECT_LE(l["k_rel_error"].get<double>(), l["k_rel_error_init"].get<double>());
        EXPECT_LE(l["q_rel_error"].get<double>(), l["q_rel_error_init"].get<double>());
    }
    // MHA caches 2 h d_h = 64 numbers per layer; T6 (2+2)(2+16) = 72: the report says so.
    EXPECT_EQ(j["src_cache_bytes_per_token_f32"], 4 * 64 * 2);
    EXPECT_EQ(j["cache_bytes_per_token_f32"], 4 * 72 * 2);
    r = run_t6("info --model " + out);
    EXPECT_EQ(r.status, 0) << r.err;

    // Recovery: a few steps from the converted weights, distilling from the source.
    const std::string data = dir.file("data");
    r = run_t6("prepare " + text + " --tokenizer char --out " + data + " --quiet");
    ASSERT_EQ(r.status, 0) << r.err;
    r = run_t6("train init_from=" + out + " data=" + data + " out_dir=" + dir.file("run") +
               " max_iters=2 batch_size=2 seq_len=16 eval_iters=1 eval_interval=2 threads=1 "
               "distill_from=" +
               src + " distill_weight=0.5 distill_temperature=2");
    ASSERT_EQ(r.status, 0) << r.err;
    std::ifstream m(dir.file("run/metrics.jsonl"));
    const std::string metrics((std::istreambuf_iterator<char>(m)),
                              std::istreambuf_iterator<char>());
    EXPECT_NE(metrics.find("distill_kl"), std::string::npos) << metrics;
}

TEST(CliConvert, BadInputIsAOneLineError) {
    TempDir dir;
    const std::string tpa = write_tiny_checkpoint(dir, "tpa.safetensors", AttentionKind::tpa);
    const std::string mha = write_tiny_checkpoint(dir, "mha.safetensors", AttentionKind::mha);
    const std::string out = " --out " + dir.file("o.safetensors");
    expect_one_line_error(run_t6("convert " + tpa + out), "not mha/gqa/mqa");
    expect_one_line_error(run_t6("convert " + mha + " --rank-k 0" + out), "out of range");
    expect_one_line_error(run_t6("convert " + mha + " --rank-q 99" + out), "out of range");
    expect_one_line_error(run_t6("convert " + mha + " --to mla" + out), "--to 'mla'");
    expect_one_line_error(run_t6("convert " + mha), "--out FILE is required");
    expect_one_line_error(run_t6("convert " + mha + " --calib " + dir.file("none") + out),
                          "does not exist");
    expect_one_line_error(run_t6("convert " + dir.file("missing.safetensors") + out), "missing");
    expect_one_line_error(
        run_t6("train init_from=" + mha + " data=" + dir.path() + " distill_temperature=0"),
        "distill_temperature");
    EXPECT_FALSE(std::filesystem::exists(dir.file("o.safetensors")));
    const auto h = run_t6("convert --help");
    EXPECT_EQ(h.status, 0);
    EXPECT_NE(h.out.find("--rank-q"), std::string::npos);
}

}  // namespace
}  // namespace t6::test
