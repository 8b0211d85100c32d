// End-to-end: `t6 train` never saves garbage and never leaves a mess (issue #17, items 5-9 and
// 12): a diverged run stops before writing a checkpoint; one run per out_dir (a lock); SIGTERM
// finishes the step and saves; a failed checkpoint write leaves no temporary folder; a FIFO as
// token data is an error, not a hang; generate/eval/info check the COMPLETE checksums and refuse
// NaN weights; a broken meta.json, max_iters=1e400 and resume warnings are handled.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/file_util.h"
#include "test_cli_util.h"
#include "test_train_util.h"
#include "test_util.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace t6;

namespace {

using RunResult = test::CommandResult;

std::string q(const std::string& s) {
    return "'" + s + "'";
}

// A byte-level tiny model (so that generate can use the bytes tokenizer), its data, a config.
std::string setup_run(const test::TempDir& tmp, int max_iters, int eval_interval) {
    fs::create_directory(tmp.file("data"));
    test::write_repetitive_dataset(tmp.file("data"), 256, 4000, 1000);
    nlohmann::json cfg = {{"model", test::tiny_train_model(256).to_json()},
                          {"data", tmp.file("data")},
                          {"out_dir", tmp.file("out")},
                          {"batch_size", 2},
                          {"seq_len", 16},
                          {"max_iters", max_iters},
                          {"eval_interval", eval_interval},
                          {"eval_iters", 1},
                          {"log_interval", 1},
                          {"warmup_iters", 0},
                          {"threads", 1}};
    const std::string path = tmp.file("train.json");
    write_file_atomic(path, cfg.dump(2));
    return path;
}

bool one_line_error(const RunResult& r) {
    return r.err.rfind("t6: error: ", 0) == 0 && std::count(r.err.begin(), r.err.end(), '\n') == 1;
}

// Every folder name in `dir` that starts with `prefix`.
std::vector<std::string> entries(const std::string& dir, const std::string& prefix) {
    std::vector<std::string> v;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind(prefix, 0) == 0) v.push_back(n);
    }
    return v;
}

// `t6 <args>` in the background (stdout/stderr to files); returns its pid.
pid_t spawn_t6(const std::string& args, const std::string& out, const std::string& err) {
    const std::string cmd =
        std::string("exec ") + q(T6_BINARY) + " " + args + " >" + q(out) + " 2>" + q(err);
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    pid_t pid = -1;
    if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
        return -1;
    return pid;
}

// Waits (up to two minutes, a guard against a hang, not a timing check) until `path` holds
// `text`.
bool wait_for_text(const std::string& path, const std::string& text) {
    for (int i = 0; i < 1200; i++) {
        std::ifstream in(path);
        std::stringstream ss;
        ss << in.rdbuf();
        if (ss.str().find(text) != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

// Item 5: a learning rate that blows the weights up on the last step. Before: the NaN evaluation
// was saved as the final checkpoint and the run exited 0.
TEST(CliTrainSafety, DivergedRunFailsWithoutWritingACheckpoint) {
    test::TempDir tmp;
    const std::string cfg = setup_run(tmp, 1, 1);
    RunResult r = test::run_t6("train --config " + q(cfg) + " learning_rate=1e30");
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(one_line_error(r)) << r.err;
    EXPECT_NE(r.err.find("diverged"), std::string::npos) << r.err;
    EXPECT_TRUE(entries(tmp.file("out"), "ckpt_").empty());
    EXPECT_TRUE(entries(tmp.file("out"), ".tmp_").empty());
}

// Item 6 and the SIGTERM part of item 12: a second run (new or --resume) into a busy out_dir
// fails at once naming the holder; SIGTERM makes the first one finish its step, save, say so and
// exit 143; the run then resumes from that checkpoint.
TEST(CliTrainSafety, OutDirLockAndGracefulSigterm) {
    test::TempDir tmp;
    const std::string cfg = setup_run(tmp, 1000000, 1000000);
    const pid_t pid = spawn_t6("train --config " + q(cfg), tmp.file("a.out"), tmp.file("a.err"));
    ASSERT_GT(pid, 0);
    const bool started = wait_for_text(tmp.file("out/metrics.jsonl"), "\"kind\":\"train\"");
    // Short runs: without the lock (before the fix) they ran too, mixing metrics.jsonl.
    RunResult second = test::run_t6("train --config " + q(cfg) + " max_iters=3");
    RunResult resume = test::run_t6("train --resume " + q(tmp.file("out")) + " max_iters=4");
    ::kill(pid, SIGTERM);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(started) << slurp(tmp.file("a.err"));

    for (const RunResult* r : {&second, &resume}) {
        EXPECT_EQ(r->status, 1) << r->err;
        EXPECT_TRUE(one_line_error(*r)) << r->err;
        EXPECT_NE(r->err.find("in use by another training"), std::string::npos) << r->err;
        EXPECT_NE(r->err.find("pid " + std::to_string(pid)), std::string::npos) << r->err;
    }

    ASSERT_TRUE(WIFEXITED(status))
        << "killed by signal " << WTERMSIG(status) << ": " << slurp(tmp.file("a.err"));
    EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
    const std::string err = slurp(tmp.file("a.err"));
    EXPECT_NE(err.find("stopped by SIGTERM after step "), std::string::npos) << err;
    const auto ckpts = entries(tmp.file("out"), "ckpt_");
    ASSERT_EQ(ckpts.size(), 1u);
    EXPECT_TRUE(fs::exists(tmp.file("out/" + ckpts[0] + "/COMPLETE")));
    EXPECT_NE(err.find(ckpts[0]), std::string::npos) << err;
    const long long step = std::stoll(ckpts[0].substr(5));
    EXPECT_GE(step, 1);

    RunResult r = test::run_t6("train --resume " + q(tmp.file("out")) +
                               " max_iters=" + std::to_string(step + 2));
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("resuming from"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("done: " + std::to_string(step + 2) + " steps"), std::string::npos)
        << r.out;
}

// Item 7: generate, eval and info check the COMPLETE checksums of a checkpoint folder, and
// refuse NaN weights (in a folder or a lone .safetensors file).
TEST(CliTrainSafety, LoadersVerifyChecksumsAndRefuseNonFiniteWeights) {
    test::TempDir tmp;
    const std::string cfg = setup_run(tmp, 2, 2);
    RunResult r = test::run_t6("train --config " + q(cfg));
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    const std::string ck = tmp.file("out/ckpt_000002");
    const std::string lone = tmp.file("lone.safetensors");
    fs::copy_file(ck + "/model.safetensors", lone);
    // The intact checkpoint loads.
    r = test::run_t6("info " + q(ck));
    EXPECT_EQ(r.status, 0) << r.err;
    r = test::run_t6("generate --model " + q(ck) + " --tokenizer bytes --prompt ab " +
                     "--max-new-tokens 2");
    EXPECT_EQ(r.status, 0) << r.err;

    // Flip 1000 bytes near the end of the weights (tensor data, not the header).
    {
        std::fstream f(ck + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-2000, std::ios::end);
        const std::string junk(1000, '\x01');
        f.write(junk.data(), std::streamsize(junk.size()));
    }
    for (const std::string& args :
         {"info " + q(ck), "generate --model " + q(ck) + " --tokenizer bytes --prompt ab",
          "eval ppl --model " + q(ck) + " --data " + q(tmp.file("data")),
          // serve fails before it listens (`timeout` only bounds the old behaviour: serving)
          "serve --model " + q(ck) + " --port 0 --threads 1"}) {
        r = test::run_command("timeout 30 " + q(T6_BINARY) + " " + args);
        EXPECT_EQ(r.status, 1) << args << ": " << r.out << r.err;
        EXPECT_TRUE(one_line_error(r)) << args << ": " << r.err;
        EXPECT_NE(r.err.find("checksum"), std::string::npos) << args << ": " << r.err;
    }

    // A NaN in the lone weights file (no marker to check against).
    {
        std::fstream f(lone, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-400, std::ios::end);
        const uint32_t nan_bits[4] = {0x7fc00000u, 0x7fc00000u, 0x7f800000u, 0xff800000u};
        f.write(reinterpret_cast<const char*>(nan_bits), sizeof nan_bits);
    }
    for (const std::string& args :
         {"info " + q(lone), "generate --model " + q(lone) + " --tokenizer bytes --prompt ab"}) {
        r = test::run_t6(args);
        EXPECT_EQ(r.status, 1) << args << ": " << r.out << r.err;
        EXPECT_TRUE(one_line_error(r)) << args << ": " << r.err;
        EXPECT_NE(r.err.find("holds nan"), std::string::npos) << args << ": " << r.err;
    }
}

// Item 8: a checkpoint write that fails (here: the file-size limit, as a full disk) leaves no
// temporary folder; one left by an earlier run is removed at the start.
TEST(CliTrainSafety, FailedCheckpointWriteLeavesNoTemporaryFolder) {
    test::TempDir tmp;
    const std::string cfg = setup_run(tmp, 2, 2);
    fs::create_directories(tmp.file("out/.tmp_ckpt_000001.99999"));
    // SIGXFSZ ignored: a write past the limit fails with EFBIG, as on a full disk.
    RunResult r = test::run_command("trap '' XFSZ; ulimit -f 200; exec " + q(T6_BINARY) +
                                    " train --config " + q(cfg));
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("t6: error: "), std::string::npos) << r.err;
    EXPECT_TRUE(entries(tmp.file("out"), ".tmp_").empty());
    EXPECT_TRUE(entries(tmp.file("out"), "ckpt_").empty());
}

// Item 9: a FIFO as train.bin is refused at once (before: open() waited for a writer forever).
TEST(CliTrainSafety, FifoAsTokenDataIsAnError) {
    test::TempDir tmp;
    const std::string cfg = setup_run(tmp, 2, 2);
    fs::remove(tmp.file("data/train.bin"));
    ASSERT_EQ(::mkfifo(tmp.file("data/train.bin").c_str(), 0600), 0);
    // `timeout` only guards the test against the old hang.
    RunResult r = test::run_command("timeout 60 " + q(T6_BINARY) + " train --config " + q(cfg));
    EXPECT_EQ(r.status, 1) << r.out << r.err;
    EXPECT_TRUE(one_line_error(r)) << r.err;
    EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

// Item 12 (training and CLI parts): max_iters=1e400 names the key; a broken meta.json is an
// error; resume warnings go to stderr; an unknown command exits 1 as the README says.
TEST(CliTrainSafety, SmallErrorPaths) {
    test::TempDir tmp;
    const std::string cfg = setup_run(tmp, 2, 2);
    RunResult r = test::run_t6("train --config " + q(cfg) + " max_iters=1e400");
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(one_line_error(r)) << r.err;
    EXPECT_NE(r.err.find("'max_iters'"), std::string::npos) << r.err;
    r = test::run_t6("train --config " + q(cfg) + " n_layer=1e400");  // a model key
    EXPECT_TRUE(one_line_error(r)) << r.err;
    EXPECT_NE(r.err.find("'n_layer'"), std::string::npos) << r.err;

    write_file_atomic(tmp.file("data/meta.json"), std::string("{\"dtype\": \"uint16\", "));
    r = test::run_t6("train --config " + q(cfg));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_TRUE(one_line_error(r)) << r.err;
    EXPECT_NE(r.err.find("meta.json"), std::string::npos) << r.err;
    fs::remove(tmp.file("data/meta.json"));

    r = test::run_t6("train --config " + q(cfg));
    ASSERT_EQ(r.status, 0) << r.err;
    // A different thread count on resume: the warning goes to stderr, not into the log.
    r = test::run_t6("train --resume " + q(tmp.file("out")) + " threads=2 max_iters=3");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.err.find("warning: the run used 1 threads"), std::string::npos) << r.err;
    EXPECT_EQ(r.out.find("warning"), std::string::npos) << r.out;

    r = test::run_t6("no-such-command");
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(one_line_error(r)) << r.err;
}
