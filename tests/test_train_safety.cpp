// Units behind `t6 train`'s safety (issue #17): a checkpoint of non-finite weights is refused and
// nothing is left behind; the out_dir lock excludes a second holder and is released with its
// owner; stale temporary checkpoint folders are removed; load_weights refuses NaN weights and a
// checkpoint whose bytes differ from its COMPLETE checksum; a stop signal ends Trainer::run after
// the step with a checkpoint.
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include "core/error.h"
#include "core/stop_signal.h"
#include "model/checkpoint.h"

#include <chrono>
#include <thread>

#include "test_train_util.h"
#include "test_util.h"
#include "train/run_lock.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace t6;

namespace {

template <typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST(TrainSafety, CheckpointOfNonFiniteWeightsIsRefusedAndLeavesNothing) {
    test::TempDir tmp;
    Model model(test::tiny_train_model());
    model.init_weights(1);
    AdamW opt(model.num_params(), AdamWConfig{});
    TrainState st;
    st.step = 7;
    st.model = model.config();
    model.params()[5] = std::numeric_limits<float>::quiet_NaN();
    const std::string e = error_of([&] { save_train_checkpoint(tmp.path(), model, opt, st); });
    EXPECT_NE(e.find("step 7: the weights hold NaN"), std::string::npos) << e;
    EXPECT_TRUE(fs::is_empty(tmp.path()));

    // A good one saves and loads; NaN moments are refused too.
    model.params()[5] = 0.5f;
    const std::string dir = save_train_checkpoint(tmp.path(), model, opt, st);
    EXPECT_TRUE(fs::exists(dir + "/COMPLETE"));
    opt.exp_avg_sq()[3] = std::numeric_limits<float>::infinity();
    st.step = 8;
    EXPECT_NE(error_of([&] {
                  save_train_checkpoint(tmp.path(), model, opt, st);
              }).find("optimizer moments"),
              std::string::npos);
    EXPECT_EQ(list_complete_checkpoints(tmp.path()).size(), 1u);
}

TEST(TrainSafety, LoadWeightsChecksTheMarkerAndRefusesNaN) {
    test::TempDir tmp;
    Model model(test::tiny_train_model());
    model.init_weights(2);
    AdamW opt(model.num_params(), AdamWConfig{});
    TrainState st;
    st.step = 1;
    st.model = model.config();
    const std::string dir = save_train_checkpoint(tmp.path(), model, opt, st);
    EXPECT_NO_THROW(load_model(dir));
    {
        std::fstream f(dir + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-100, std::ios::end);
        f.put('\x55');
    }
    EXPECT_NE(error_of([&] { load_model(dir); }).find("checksum differs"), std::string::npos);

    save_weights(tmp.file("w.safetensors"), model);
    EXPECT_NO_THROW(load_model(tmp.file("w.safetensors")));
    model.params()[model.num_params() - 1] = -std::numeric_limits<float>::infinity();
    save_weights(tmp.file("w.safetensors"), model);
    EXPECT_NE(error_of([&] { load_model(tmp.file("w.safetensors")); }).find("holds -inf"),
              std::string::npos);
}

TEST(TrainSafety, OutDirLockIsExclusiveAndReleasedWithItsOwner) {
    test::TempDir tmp;
    const std::string out = tmp.file("out");
    {
        RunLock a(out);
        // flock locks belong to the open file: a second open, even in this process, is refused.
        const std::string e = error_of([&] { RunLock b(out); });
        EXPECT_NE(e.find("in use by another training"), std::string::npos) << e;
        EXPECT_NE(e.find("pid " + std::to_string(::getpid())), std::string::npos) << e;
    }
    EXPECT_NO_THROW(RunLock c(out));
}

TEST(TrainSafety, StaleTemporaryCheckpointFoldersAreRemoved) {
    test::TempDir tmp;
    fs::create_directories(tmp.file(".tmp_ckpt_000003.123/x"));
    fs::create_directories(tmp.file(".tmp_ckpt_000004.456"));
    fs::create_directories(tmp.file("ckpt_000002"));
    EXPECT_EQ(remove_temporary_checkpoints(tmp.path()), 2);
    EXPECT_FALSE(fs::exists(tmp.file(".tmp_ckpt_000003.123")));
    EXPECT_TRUE(fs::exists(tmp.file("ckpt_000002")));
}

TEST(TrainSafety, StopSignalEndsTheRunAfterTheStepWithACheckpoint) {
    test::TempDir tmp;
    test::write_repetitive_dataset(tmp.path(), 64);
    TrainSetup s = test::tiny_setup(tmp.path(), tmp.file("out"));
    s.train.max_iters = 50;
    s.train.eval_interval = 1000;
    Trainer tr(s, nullptr);
    set_stop_signal(SIGINT);  // as if Ctrl-C had come during the first step
    const TrainResult r = tr.run();
    set_stop_signal(0);
    EXPECT_EQ(r.stopped_by, SIGINT);
    EXPECT_EQ(r.end_step, 1);
    ASSERT_EQ(list_complete_checkpoints(tmp.file("out")).size(), 1u);
    EXPECT_EQ(list_complete_checkpoints(tmp.file("out"))[0].step, 1);
}

namespace {

bool stop_signals_blocked_here() {
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, nullptr, &cur);
    return sigismember(&cur, SIGTERM) == 1 && sigismember(&cur, SIGINT) == 1;
}

// In a fresh process (the death test re-runs the binary): route, enable, then two SIGTERMs.
void route_and_signal_twice() {
    route_stop_signals();
    enable_graceful_stop();
    if (!stop_signals_blocked_here()) _exit(2);
    bool blocked_in_thread = false;
    std::thread([&] { blocked_in_thread = stop_signals_blocked_here(); }).join();
    if (!blocked_in_thread) _exit(3);
    ::kill(::getpid(), SIGTERM);
    for (int i = 0; i < 1000 && stop_signal() == 0; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a guard, not a timing check
    if (stop_signal() != SIGTERM) _exit(4);
    std::fprintf(stderr, "first SIGTERM recorded\n");
    ::kill(::getpid(), SIGTERM);  // the second one ends the process by SIGTERM
    std::this_thread::sleep_for(std::chrono::seconds(60));
    _exit(5);
}

}  // namespace

// SIGINT/SIGTERM reach one watcher thread and never a compute thread: threads started after
// route_stop_signals() have them blocked, so no signal frame is pushed inside oneDNN's JIT sgemm
// (which moves RSP into the heap: before, `t6 train` died of heap corruption on ~5% of SIGTERMs).
// The first signal is recorded, the second ends the process.
TEST(StopSignal, RoutedToAWatcherThreadAndASecondOneEndsTheProcess) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(route_and_signal_twice(), testing::KilledBySignal(SIGTERM),
                "first SIGTERM recorded");
}
