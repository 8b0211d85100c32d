// End-to-end data-parallel training (train/dist.h): `t6 train` under `mpirun -np 2` on this
// machine. Two ranks with micro-batch B follow one process with micro-batch 2B (plain, ZeRO-1,
// with gradient accumulation); a run resumes with a different number of ranks; a rank killed,
// stopped, or unable to read its data ends the whole job quickly with a message naming it.
// Skipped when t6 was built without MPI or mpirun is missing.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/file_util.h"
#include "test_train_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace t6;
using json = nlohmann::json;

namespace {

// Float32 tolerance of the equivalence tests, on the mean loss (about 2-4 here). The two runs
// sum the same numbers in a different order (per-rank GEMMs over B rows, the all-reduce, the
// 1/ranks scaling), so they agree to float32 rounding at step 1 and drift slowly through 20
// AdamW steps; measured here: at most 4.8e-7.
constexpr double kLossTol = 1e-4;

bool have_mpi() {
#ifdef T6_HAVE_MPI
    return std::system("command -v mpirun >/dev/null 2>&1") == 0;
#else
    return false;
#endif
}

#define T6_REQUIRE_MPI() \
    if (!have_mpi()) T6_SKIP_UNLESS_CI("t6 built without MPI or mpirun not found")

// mpirun as root (CI), several ranks on 2 cores, one thread each, shared memory only.
std::string mpirun(int np) {
    return "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
           "mpirun --oversubscribe --bind-to none --mca btl self,vader -np " +
           std::to_string(np) + " ";
}

std::string t6_bin() {
    return std::string("'") + T6_BINARY + "'";
}

struct RunResult {
    int status = -1;
    std::string out, err;
};

// Runs a shell command with a 120 s limit, capturing stdout and stderr.
RunResult sh(const std::string& cmd, const test::TempDir& tmp) {
    const std::string o = tmp.file("stdout.txt"), e = tmp.file("stderr.txt");
    write_file_atomic(tmp.file("cmd.sh"), cmd + "\n");
    const int rc = std::system(
        ("timeout 120 sh '" + tmp.file("cmd.sh") + "' </dev/null >'" + o + "' 2>'" + e + "'")
            .c_str());
    RunResult r;
    r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    r.out = read_file_text(o);
    r.err = read_file_text(e);
    return r;
}

// The tiny model on `data`, 20 steps, every step logged, evaluation + checkpoint every 10.
std::string write_config(const test::TempDir& tmp, const std::string& name, const std::string& out,
                         int batch, json extra = json::object()) {
    json cfg = {{"model", test::tiny_train_model().to_json()},
                {"data", tmp.file("data")},
                {"out_dir", out},
                {"batch_size", batch},
                {"seq_len", 32},
                {"max_iters", 20},
                {"lr_decay_iters", 20},
                {"warmup_iters", 3},
                {"learning_rate", 3e-3},
                {"min_lr", 3e-4},
                {"eval_interval", 10},
                {"eval_iters", 2},
                {"log_interval", 1},
                {"threads", 1}};
    for (auto& [k, v] : extra.items()) cfg[k] = v;
    const std::string path = tmp.file(name);
    write_file_atomic(path, cfg.dump(2));
    return path;
}

// step -> train loss (kind "train") and step -> val loss (kind "eval") of out/metrics.jsonl.
struct Curve {
    std::map<long long, double> loss, val;
};
Curve read_curve(const std::string& out_dir) {
    Curve c;
    std::ifstream in(out_dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        const json j = json::parse(line);
        if (j["kind"] == "train") c.loss[j["step"].get<long long>()] = j["loss"].get<double>();
        if (j["kind"] == "eval") c.val[j["step"].get<long long>()] = j["val_loss"].get<double>();
    }
    return c;
}

// The two curves agree within kLossTol at every step of `a` from `from` on (and val losses at
// common evaluation steps); returns the largest difference.
double expect_same_curve(const Curve& a, const Curve& b, long long from, long long to) {
    double worst = 0;
    for (long long s = from; s <= to; s++) {
        EXPECT_TRUE(a.loss.count(s) && b.loss.count(s)) << "step " << s << " missing";
        if (!a.loss.count(s) || !b.loss.count(s)) continue;
        const double d = std::fabs(a.loss.at(s) - b.loss.at(s));
        worst = std::max(worst, d);
        EXPECT_LE(d, kLossTol) << "step " << s << ": " << a.loss.at(s) << " vs " << b.loss.at(s);
    }
    for (const auto& [s, v] : a.val)
        if (s >= from && s <= to && b.val.count(s)) {
            EXPECT_LE(std::fabs(v - b.val.at(s)), kLossTol) << "val loss at step " << s;
            worst = std::max(worst, std::fabs(v - b.val.at(s)));
        }
    return worst;
}

class Dist : public ::testing::Test {
  protected:
    void SetUp() override {
        fs::create_directory(tmp.file("data"));
        test::write_repetitive_dataset(tmp.file("data"), 64);
    }
    test::TempDir tmp;
};

// 2 ranks x micro-batch 2 (x accumulation) == 1 process x micro-batch 4, for 20 steps.
void check_equivalence(Dist& t, const test::TempDir& tmp, json extra, int accum) {
    (void)t;
    extra["gradient_accumulation_steps"] = accum;
    const std::string one = write_config(tmp, "one.json", tmp.file("one"), 4, extra);
    const std::string two = write_config(tmp, "two.json", tmp.file("two"), 2, extra);
    RunResult r1 = sh(t6_bin() + " train --config " + one, tmp);
    ASSERT_EQ(r1.status, 0) << r1.out << r1.err;
    RunResult r2 = sh(mpirun(2) + t6_bin() + " train --config " + two, tmp);
    ASSERT_EQ(r2.status, 0) << r2.out << r2.err;
    // Rank 0 alone logs: one progress line per step, the global batch stated at the start.
    EXPECT_NE(r2.out.find("global batch: 2 ranks x 2 sequences x " + std::to_string(accum) +
                          " accumulation steps = " + std::to_string(4 * accum) + " sequences"),
              std::string::npos)
        << r2.out;
    EXPECT_EQ(r2.out.find("step 20/20"), r2.out.rfind("step 20/20")) << "logged twice: " << r2.out;
    const Curve a = read_curve(tmp.file("one")), b = read_curve(tmp.file("two"));
    ASSERT_EQ(a.loss.size(), 20u);
    ASSERT_EQ(b.loss.size(), 20u);
    const double worst = expect_same_curve(a, b, 1, 20);
    std::printf("max |loss difference| over 20 steps: %.3g\n", worst);
    EXPECT_LT(a.loss.at(20), a.loss.at(1) - 0.5) << "the model did not learn";
    EXPECT_TRUE(fs::exists(tmp.file("two/ckpt_000020/COMPLETE")));
}

TEST_F(Dist, TwoRanksMatchOneProcessWithTheGlobalBatch) {
    T6_REQUIRE_MPI();
    check_equivalence(*this, tmp, json::object(), 1);
}

TEST_F(Dist, TwoRanksWithZero1MatchOneProcess) {
    T6_REQUIRE_MPI();
    check_equivalence(*this, tmp, {{"zero1", true}}, 1);
}

TEST_F(Dist, TwoRanksWithAccumulationMatchOneProcess) {
    T6_REQUIRE_MPI();
    check_equivalence(*this, tmp, json::object(), 2);
}

TEST_F(Dist, TwoRanksWithAccumulationAndNoOverlapMatchOneProcess) {
    T6_REQUIRE_MPI();
    check_equivalence(*this, tmp, {{"dist_overlap", false}}, 2);
}

// 2 ranks with ZeRO-1 for 10 steps, then 1 process (batch 4) resumes to 20 (the moments were
// gathered on save); 1 process for 10 steps, then 2 ranks with ZeRO-1 resume to 20 (sharded on
// load); 2 ranks, then 2 ranks again. All follow the uninterrupted 2-rank run.
TEST_F(Dist, ResumeWithADifferentNumberOfRanks) {
    T6_REQUIRE_MPI();
    const std::string ref = write_config(tmp, "ref.json", tmp.file("ref"), 2);
    RunResult r = sh(mpirun(2) + t6_bin() + " train --config " + ref, tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;

    const std::string a = write_config(tmp, "a.json", tmp.file("a"), 2, {{"zero1", true}});
    r = sh(mpirun(2) + t6_bin() + " train --config " + a + " max_iters=10", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    ASSERT_TRUE(fs::exists(tmp.file("a/ckpt_000010/COMPLETE")));
    r = sh(t6_bin() + " train --resume " + tmp.file("a") + " max_iters=20 batch_size=4 zero1=false",
           tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("the run used 2 ranks, this one 1"), std::string::npos) << r.out;

    const std::string b = write_config(tmp, "b.json", tmp.file("b"), 4);
    r = sh(t6_bin() + " train --config " + b + " max_iters=10", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    r = sh(mpirun(2) + t6_bin() + " train --resume " + tmp.file("b") +
               " max_iters=20 batch_size=2 zero1=true",
           tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;

    // The same number of ranks: 2 ranks for 10 steps, 2 ranks resume.
    const std::string c = write_config(tmp, "c.json", tmp.file("c"), 2);
    r = sh(mpirun(2) + t6_bin() + " train --config " + c + " max_iters=10", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    r = sh(mpirun(2) + t6_bin() + " train --resume " + tmp.file("c") + " max_iters=20", tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;

    const Curve c_ref = read_curve(tmp.file("ref"));
    ASSERT_EQ(c_ref.loss.size(), 20u);
    for (const char* run : {"a", "b", "c"}) {
        SCOPED_TRACE(run);
        const Curve got = read_curve(tmp.file(run));
        ASSERT_EQ(got.loss.size(), 20u);
        expect_same_curve(c_ref, got, 1, 20);
    }
}

// A long run in the background (its own process group); returns the shell's pid.
pid_t spawn(const std::string& cmd, const test::TempDir& tmp) {
    const std::string o = tmp.file("stdout.txt"), e = tmp.file("stderr.txt");
    const std::string full = cmd + " </dev/null >'" + o + "' 2>'" + e + "'";
    const pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", full.c_str(), (char*)nullptr);
        _exit(127);
    }
    return pid;
}

// Waits up to `limit` seconds for pid; returns its exit status (-1: still running, killed).
int wait_exit(pid_t pid, double limit, double& waited) {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (waited > limit) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

// The pid of the process whose command line mentions `mark` and whose environment says it is
// MPI rank `rank` (mpirun and the shell carry no rank), or -1.
pid_t find_rank(const std::string& mark, int rank) {
    const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
    for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream c(e.path() / "cmdline", std::ios::binary),
            v(e.path() / "environ", std::ios::binary);
        std::string cmd((std::istreambuf_iterator<char>(c)), {});
        std::string env((std::istreambuf_iterator<char>(v)), {});
        if (cmd.find(mark) == std::string::npos || cmd.find("train") == std::string::npos) continue;
        size_t at = 0;
        while ((at = env.find(want, at)) != std::string::npos) {
            const bool start = at == 0 || env[at - 1] == '\0';
            const bool end = at + want.size() == env.size() || env[at + want.size()] == '\0';
            if (start && end) return pid_t(std::stol(name));
            at += want.size();
        }
    }
    return -1;
}

// Starts a long 2-rank run and returns once rank `victim`'s pid is known and training has begun.
pid_t start_long_run(const test::TempDir& tmp, const std::string& extra, pid_t& job) {
    const std::string cfg = write_config(tmp, "long.json", tmp.file("long"), 2,
                                         {{"max_iters", 1000000}, {"eval_interval", 1000000}});
    job = spawn(mpirun(2) + t6_bin() + " train --config " + cfg + " " + extra, tmp);
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
        if (file_exists(tmp.file("long/metrics.jsonl")) &&
            read_file_text(tmp.file("long/metrics.jsonl")).find("\"train\"") != std::string::npos)
            return find_rank(tmp.path(), 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
}

TEST_F(Dist, KilledRankEndsTheJobWithinSeconds) {
    T6_REQUIRE_MPI();
    pid_t job = -1;
    const pid_t victim = start_long_run(tmp, "", job);
    ASSERT_GT(victim, 0) << "the run did not start: " << read_file_text(tmp.file("stderr.txt"));
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    double waited = 0;
    const int status = wait_exit(job, 30, waited);
    const std::string out =
        read_file_text(tmp.file("stdout.txt")) + read_file_text(tmp.file("stderr.txt"));
    EXPECT_NE(status, -1) << "the job still ran 30 s after rank 1 was killed";
    EXPECT_NE(status, 0);
    EXPECT_LT(waited, 10.0) << out;
    std::printf("job ended %.2f s after rank 1 was killed\n", waited);
    EXPECT_NE(out.find("rank 1"), std::string::npos) << out;
    EXPECT_NE(out.find("signal 9"), std::string::npos) << out;
}

// A stopped rank does not exit, so the launcher does not notice: the others' collective
// deadline (dist_timeout) ends the job, naming what it waited for.
TEST_F(Dist, StoppedRankEndsTheJobAfterTheTimeout) {
    T6_REQUIRE_MPI();
    pid_t job = -1;
    const pid_t victim = start_long_run(tmp, "dist_timeout=3", job);
    ASSERT_GT(victim, 0) << "the run did not start: " << read_file_text(tmp.file("stderr.txt"));
    ASSERT_EQ(kill(victim, SIGSTOP), 0);
    double waited = 0;
    const int status = wait_exit(job, 30, waited);
    kill(victim, SIGKILL);  // in case it is still there
    const std::string err = read_file_text(tmp.file("stderr.txt"));
    EXPECT_NE(status, -1) << "the job still ran 30 s after rank 1 was stopped";
    EXPECT_NE(status, 0);
    EXPECT_LT(waited, 10.0) << err;
    std::printf("job ended %.2f s after rank 1 was stopped (timeout 3 s)\n", waited);
    EXPECT_NE(err.find("t6: error: rank 0 of 2: no answer from the other ranks for 3 s"),
              std::string::npos)
        << err;
}

// MPMD launch: rank 1 is given a data folder that does not exist, rank 0 a good one.
TEST_F(Dist, RankThatCannotReadItsDataStopsTheJob) {
    T6_REQUIRE_MPI();
    const std::string cfg = write_config(tmp, "c.json", tmp.file("c"), 2);
    const std::string base =
        "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
        "OMP_NUM_THREADS=1 mpirun --oversubscribe --bind-to none "
        "--mca btl self,vader ";
    const auto t0 = std::chrono::steady_clock::now();
    RunResult r = sh(base + "-np 1 " + t6_bin() + " train --config " + cfg + " : -np 1 " +
                         t6_bin() + " train --config " + cfg + " data=" + tmp.file("missing"),
                     tmp);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.status, 124) << "timed out";
    EXPECT_LT(s, 20.0);
    EXPECT_NE(r.err.find("t6: error: rank 1 of 2: " + tmp.file("missing")), std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(tmp.file("c/ckpt_000010")));
}

}  // namespace
