// The helpers every command shares: the tokenizer resolver's precedence (argument > checkpoint >
// data meta.json > default from the vocabulary size), the one meta.json reader, the peer-figures
// file of the training benchmarks, fatal-error reporting, the portable RNG, and the team of
// threads of a decoding step.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/fatal.h"
#include "core/file_util.h"
#include "core/parallel_items.h"
#include "core/rng.h"
#include "core/team.h"
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

// ---------------------------------------------------------------------------------------------
// The team of a decoding step (core/team.h) and parallel_items (core/parallel_items.h), on three
// threads whatever the machine has.

namespace {

struct ThreeThreads {
    int before = omp_get_max_threads();
    ThreeThreads() { omp_set_num_threads(3); }
    ~ThreeThreads() { omp_set_num_threads(before); }
};

// One job: every thread writes its slot; returns the slots' sum as thread 0 sees it afterwards.
long one_job(int job, std::vector<long>& slot) {
    parallel_run([&](int t, int nt) {
        EXPECT_EQ(nt, 3);
        slot[size_t(t)] = long(job) * 10 + t;
    });
    return slot[0] + slot[1] + slot[2];
}

}  // namespace

TEST(Team, EveryJobRunsOnEveryThreadAndFinishesBeforeItReturns) {
    ThreeThreads three;
    std::vector<long> slot(3, -1);
    with_team([&] {
        EXPECT_EQ(parallel_threads(), 3);
        for (int job = 0; job < 3000; job++) ASSERT_EQ(one_job(job, slot), job * 30L + 3) << job;
        // The threads fall asleep between jobs far apart, and the next job wakes them.
        for (int job = 0; job < 5; job++) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
            ASSERT_EQ(one_job(job, slot), job * 30L + 3) << job;
        }
    });
    // Outside a team a job is an OpenMP region.
    EXPECT_EQ(one_job(7, slot), 7 * 30L + 3);
}

TEST(Team, ItemsRunOnceEachAndNestedCallsRunOnTheCallingThread) {
    ThreeThreads three;
    std::vector<int> count(1001, 0);
    with_team([&] {
        parallel_items(1001, [&](long i) { count[size_t(i)]++; });
        parallel_items(1, [&](long i) { count[size_t(i)]++; });
        parallel_run([&](int t, int) {
            if (t != 0) return;
            parallel_run([&](int u, int nu) {  // inside a job: this thread alone
                EXPECT_EQ(u, 0);
                EXPECT_EQ(nu, 1);
            });
        });
        with_team([&] { EXPECT_EQ(parallel_threads(), 3); });  // inside a team: the same team
    });
    EXPECT_EQ(count[0], 2);
    for (size_t i = 1; i < count.size(); i++) ASSERT_EQ(count[i], 1) << i;
}

TEST(Team, AnExceptionLeavesTheTeamAfterTheOtherThreadsAreDone) {
    ThreeThreads three;
    std::atomic<int> others{0};
    EXPECT_THROW(with_team([&] {
                     parallel_run([&](int t, int) {
                         if (t == 0) {
                             std::this_thread::sleep_for(std::chrono::milliseconds(1));
                             throw std::runtime_error("share 0");
                         }
                         std::this_thread::sleep_for(std::chrono::milliseconds(5));
                         others++;
                     });
                 }),
                 std::runtime_error);
    EXPECT_EQ(others.load(), 2);  // both other shares ran to their end first
    EXPECT_THROW(with_team([] { fail("body"); }), Error);
    std::vector<long> slot(3, -1);  // and the next team starts afresh
    with_team([&] { EXPECT_EQ(one_job(1, slot), 33L); });
}
