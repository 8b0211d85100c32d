// The helpers every command shares: the tokenizer resolver's precedence (argument > checkpoint >
// data meta.json > default from the vocabulary size), the one meta.json reader, the peer-figures
// file of the training benchmarks, fatal-error reporting and the portable RNG.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "core/error.h"
#include "core/fatal.h"
#include "core/file_util.h"
#include "core/rng.h"
#include "study/peer_figures.h"
#include "test_util.h"
#include "text/data_meta.h"
#include "text/resolve_tokenizer.h"

using namespace t6;

namespace {

const char* kCharSpec = R"({"format": "t6-char", "version": 1, "vocab_size": 3, "chars": "abc"})";

void write_text(const std::string& path, const std::string& text) {
    std::FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr) << path;
    std::fputs(text.c_str(), f);
    std::fclose(f);
}

template <typename F>
void expect_error(F&& f, const std::string& part) {
    try {
        f();
        ADD_FAILURE() << "no error; expected one containing '" << part << "'";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
}

}  // namespace

TEST(TokenizerResolver, ArgumentThenCheckpointThenDataThenDefault) {
    test::TempDir tmp;
    write_text(tmp.file("meta.json"), std::string(R"({"tokenizer": )") + kCharSpec + "}");
    TokenizerSources s;
    s.vocab_size = 256;
    s.data_dir = tmp.path();
    s.checkpoint = "model.safetensors";
    s.checkpoint_spec = R"({"kind": "bytes"})";
    s.name = "bytes";
    EXPECT_EQ(resolve_tokenizer(s)->kind(), "bytes");  // the argument
    s.name.clear();
    s.checkpoint_spec = kCharSpec;
    EXPECT_EQ(resolve_tokenizer(s)->kind(), "char");  // the checkpoint's
    s.checkpoint_spec.clear();
    EXPECT_EQ(resolve_tokenizer(s)->kind(), "char");  // the data's meta.json
    s.data_dir = tmp.file("no-such-folder");
    EXPECT_EQ(resolve_tokenizer(s)->kind(), "bytes");  // vocabulary 256: bytes
    s.vocab_size = 1000;
    expect_error([&] { resolve_tokenizer(s); }, "pass --tokenizer");
}

TEST(TokenizerResolver, NamedSourcesMustRecordOneAndFitTheModel) {
    test::TempDir tmp;
    TokenizerSources s;
    s.sources_required = true;
    s.checkpoint = "model.safetensors";
    expect_error([&] { resolve_tokenizer(s); }, "model.safetensors: the checkpoint records no");
    s.checkpoint_spec = "{not json";
    expect_error([&] { resolve_tokenizer(s); }, "'tokenizer' metadata is not valid JSON");
    s = TokenizerSources{};
    s.sources_required = true;
    s.data_dir = tmp.path();
    expect_error([&] { resolve_tokenizer(s); }, "no meta.json");
    s = TokenizerSources{};
    s.name = "bytes";
    s.vocab_size = 100;
    expect_error([&] { resolve_tokenizer(s); }, "the model's vocabulary has 100");
}

TEST(DataMeta, NullWithoutOneAndAOneLineErrorWhenBroken) {
    test::TempDir tmp;
    EXPECT_TRUE(read_data_meta(tmp.path()).is_null());
    write_text(tmp.file("meta.json"), R"({"vocab_size": 65, "dtype": "uint16"})");
    EXPECT_EQ(read_data_meta(tmp.path())["vocab_size"], 65);
    write_text(tmp.file("meta.json"), "[1, 2]");
    expect_error([&] { read_data_meta(tmp.path()); }, "meta.json: not a JSON object");
    write_text(tmp.file("meta.json"), "{");
    expect_error([&] { read_data_meta(tmp.path()); }, "meta.json: not valid JSON");
}

TEST(PeerFigures, ReadsOneBenchmarkAndNamesABrokenEntry) {
    test::TempDir tmp;
    const std::string f = tmp.file("peers.json");
    write_text(f, R"({"about": "x", "step": [{"preset": "tiny-t6", "batch": 8, "seq": 256,
                      "tokens_per_s": 387.0}], "train": []})");
    const auto step = study::read_peer_figures(f, "step");
    ASSERT_EQ(step.size(), 1u);
    EXPECT_EQ(step[0].preset, "tiny-t6");
    EXPECT_EQ(step[0].batch, 8);
    EXPECT_EQ(step[0].seq, 256);
    EXPECT_DOUBLE_EQ(step[0].tokens_per_s, 387.0);
    EXPECT_TRUE(study::read_peer_figures(f, "train").empty());
    EXPECT_TRUE(study::read_peer_figures(f, "decode").empty());
    write_text(f, R"({"step": [{"preset": "tiny-t6", "batch": 8}]})");
    expect_error([&] { study::read_peer_figures(f, "step"); }, "step[0]: needs preset");
    expect_error([&] { study::read_peer_figures(tmp.file("none.json"), "step"); }, "not found");
}

// The repository's own file parses, and lists the four presets the benchmarks run by default.
TEST(PeerFigures, TheRepositoryFileIsValid) {
    const std::string f = std::string(T6_SOURCE_DIR) + "/bench/official-pytorch-cpu.json";
    for (const char* b : {"step", "train"}) {
        std::set<std::string> presets;
        for (const auto& p : study::read_peer_figures(f, b)) presets.insert(p.preset);
        EXPECT_EQ(presets, (std::set<std::string>{"tiny-t6", "tiny-mha", "small-t6", "small-mha"}))
            << b;
    }
}

TEST(Fatal, PrintsOneLineWithTheHandlersContextThenStops) {
    static int stops = 0;
    set_fatal_handler({[] { return std::string("rank 1 of 2: "); }, [] { stops++; }});
    testing::internal::CaptureStderr();
    report_fatal("disk full");
    const std::string err = testing::internal::GetCapturedStderr();
    set_fatal_handler({});
    EXPECT_EQ(err, "t6: error: rank 1 of 2: disk full\n");
    EXPECT_EQ(stops, 1);
    testing::internal::CaptureStderr();
    report_fatal("plain");
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "t6: error: plain\n");
}

TEST(Rng, TheSeedDecidesTheStream) {
    Rng a(42), b(42), c(43);
    int same = 0, differ = 0;
    for (int i = 0; i < 64; i++) {
        const uint64_t x = a.next();
        same += x == b.next();
        differ += x != c.next();
    }
    EXPECT_EQ(same, 64);
    EXPECT_GE(differ, 63);
}
