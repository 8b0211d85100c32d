// `t6 bench step|train --peers FILE`: the official code's figures are data (a JSON file, by
// default the repository's bench/official-pytorch-cpu.json), not code. A row gets
// official_tokens_per_s and speedup_vs_official when the file lists its preset, batch and
// sequence length (test_cli_train checks that a changed model gets none); a broken or missing
// --peers file is a one-line error.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "test_cli_util.h"

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
