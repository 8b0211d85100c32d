#include "train/dist.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/fatal.h"

#ifdef T6_HAVE_MPI
#include <mpi.h>
#endif

namespace t6::dist {

namespace {

bool g_tried = false;                     // init() ran
[[maybe_unused]] bool g_started = false;  // init() started MPI
// BucketReducer progresses its all-reduces from a thread while backward computes (MPI
// implementations progress non-blocking collectives only inside MPI calls).
[[maybe_unused]] bool g_progress_thread = false;
int g_rank = 0, g_size = 1;
double g_timeout = 300.0;

using Clock = std::chrono::steady_clock;

const char* env(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? v : nullptr;
}

// MPI counts are int: larger buffers go in pieces of at most this many elements.
[[maybe_unused]] constexpr size_t kMaxCount = size_t(1) << 30;

#ifdef T6_HAVE_MPI
// Waits for n requests, letting MPI progress them; past the deadline the job is stopped. A wait
// longer than a few milliseconds (a peer is busy, e.g. rank 0 writing a checkpoint) polls with
// short sleeps so the waiting rank leaves the cores to the others.
void wait_all(MPI_Request* reqs, int n, const char* what) {
    const auto t0 = Clock::now();
    for (long spins = 1;; spins++) {
        int done = 0;
        MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE);
        if (done) return;
        if (spins % 256 == 0) {
            const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
            if (waited > g_timeout)
                report_fatal(cat("no answer from the other ranks for ", g_timeout, " s in ", what,
                                 " (a rank died, was stopped or hangs; the limit is the training "
                                 "key dist_timeout); stopping the job"));
            if (waited > 0.005) std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }
}

int checked_int(size_t n, const char* what) {
    if (n > size_t(INT_MAX)) fail(what, ": ", n, " elements exceed MPI's int count");
    return int(n);
}

// Per-rank element counts and displacements of a buffer split at offsets (size ranks + 1), as the
// int arrays the v-collectives take.
struct PartCounts {
    std::vector<int> counts, displs;
};
PartCounts part_counts(const std::vector<size_t>& offsets, const char* what) {
    checked_int(offsets.back(), what);
    PartCounts pc{std::vector<int>(size_t(g_size)), std::vector<int>(size_t(g_size))};
    for (int r = 0; r < g_size; r++) {
        pc.counts[size_t(r)] = int(offsets[size_t(r) + 1] - offsets[size_t(r)]);
        pc.displs[size_t(r)] = int(offsets[size_t(r)]);
    }
    return pc;
}
#endif

}  // namespace

bool mpi_enabled() {
#ifdef T6_HAVE_MPI
    return true;
#else
    return false;
#endif
}

bool launched() {
    return env("OMPI_COMM_WORLD_SIZE") || env("PMIX_RANK") || env("PMI_RANK") || env("PMI_SIZE");
}

namespace {
// After report_fatal has printed: stop every rank of the group.
void abort_group() {
#ifdef T6_HAVE_MPI
    if (g_started && g_size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
#endif
}
}  // namespace

void init() {
    set_fatal_handler({&rank_prefix, &abort_group});
    if (g_tried) return;
    g_tried = true;
    const char* force = env("T6_MPI");
    if (force && std::strcmp(force, "0") != 0 && std::strcmp(force, "1") != 0)
        fail("T6_MPI='", force, "' must be 0 (never start MPI) or 1 (always start it)");
    const bool want = force ? std::strcmp(force, "1") == 0 : launched();
    if (!want) return;
#ifdef T6_HAVE_MPI
    int provided = 0;
    // OpenMP threads never call MPI. BucketReducer's progress thread does, one call at a time
    // with the main thread (a mutex): MPI_THREAD_SERIALIZED.
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        fail("MPI_Init_thread failed");
    const char* pt = env("T6_MPI_PROGRESS_THREAD");
    g_progress_thread = provided >= MPI_THREAD_SERIALIZED && !(pt && std::strcmp(pt, "0") == 0);
    g_started = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
#else
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
        if (env(v) && std::atoi(env(v)) > 1)
            fail("started as one of ", env(v), " ranks (", v,
                 "), but this t6 was built without MPI (install libopenmpi-dev and rebuild, "
                 "or cmake -DT6_MPI=ON)");
#endif
}

void finalize() {
#ifdef T6_HAVE_MPI
    if (g_started) {
        g_started = false;
        MPI_Finalize();
    }
#endif
}

int rank() {
    return g_rank;
}
int size() {
    return g_size;
}

std::string rank_prefix() {
    return g_size > 1 ? cat("rank ", g_rank, " of ", g_size, ": ") : std::string();
}

void set_timeout(double seconds) {
    if (!(seconds > 0)) fail("dist_timeout must be positive, not ", seconds);
    g_timeout = seconds;
}
double timeout() {
    return g_timeout;
}

std::vector<size_t> split_evenly(size_t n, int parts) {
    std::vector<size_t> off(size_t(parts) + 1);
    for (int r = 0; r <= parts; r++) off[size_t(r)] = n * size_t(r) / size_t(parts);
    return off;
}

#ifdef T6_HAVE_MPI

void allreduce_sum(double* v, int n, const char* what) {
    if (g_size <= 1) return;
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &r);
    wait_all(&r, 1, what);
}

void allreduce_sum(float* v, size_t n, const char* what) {
    if (g_size <= 1) return;
    for (size_t i = 0; i < n; i += kMaxCount) {
        MPI_Request r;
        MPI_Iallreduce(MPI_IN_PLACE, v + i, int(std::min(kMaxCount, n - i)), MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &r);
        wait_all(&r, 1, what);
    }
}

void broadcast(float* v, size_t n, int root, const char* what) {
    if (g_size <= 1) return;
    for (size_t i = 0; i < n; i += kMaxCount) {
        MPI_Request r;
        MPI_Ibcast(v + i, int(std::min(kMaxCount, n - i)), MPI_FLOAT, root, MPI_COMM_WORLD, &r);
        wait_all(&r, 1, what);
    }
}

void broadcast(std::string& s, int root, const char* what) {
    if (g_size <= 1) return;
    double len = double(s.size());
    if (g_rank != root) len = 0;
    allreduce_sum(&len, 1, what);  // only root contributes: everyone learns the length
    s.resize(size_t(len));
    if (s.empty()) return;
    MPI_Request r;
    MPI_Ibcast(s.data(), checked_int(s.size(), what), MPI_CHAR, root, MPI_COMM_WORLD, &r);
    wait_all(&r, 1, what);
}

void allreduce_minmax(uint64_t v, uint64_t& lo, uint64_t& hi, const char* what) {
    lo = hi = v;
    if (g_size <= 1) return;
    MPI_Request r[2];
    MPI_Iallreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD, &r[0]);
    MPI_Iallreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD, &r[1]);
    wait_all(r, 2, what);
}

void allgather_parts(float* buf, const std::vector<size_t>& offsets, const char* what) {
    if (g_size <= 1) return;
    const PartCounts pc = part_counts(offsets, what);
    MPI_Request r;
    MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, pc.counts.data(), pc.displs.data(),
                    MPI_FLOAT, MPI_COMM_WORLD, &r);
    wait_all(&r, 1, what);
}

void gather_parts(const float* part, float* all, const std::vector<size_t>& offsets, int root,
                  const char* what) {
    const size_t mine = offsets[size_t(g_rank) + 1] - offsets[size_t(g_rank)];
    if (g_size <= 1) {
        std::memcpy(all, part, mine * sizeof(float));
        return;
    }
    const PartCounts pc = part_counts(offsets, what);
    MPI_Request r;
    MPI_Igatherv(part, int(mine), MPI_FLOAT, all, pc.counts.data(), pc.displs.data(), MPI_FLOAT,
                 root, MPI_COMM_WORLD, &r);
    wait_all(&r, 1, what);
}

struct BucketReducer::Requests {
    std::vector<MPI_Request> v;
    // The progress thread (g_progress_thread): tests the outstanding requests every few tens of
    // microseconds until finish(). `mu` makes every MPI call of the two threads one at a time.
    std::mutex mu;
    std::thread thread;
    std::atomic<bool> stop{false};

    void progress_loop() {
        while (!stop.load(std::memory_order_relaxed)) {
            {
                std::lock_guard<std::mutex> lock(mu);
                int done = 0;
                if (!v.empty()) MPI_Testall(int(v.size()), v.data(), &done, MPI_STATUSES_IGNORE);
            }
            std::this_thread::sleep_for(std::chrono::microseconds(20));
        }
    }
    void stop_thread() {
        if (!thread.joinable()) return;
        stop = true;
        thread.join();
        stop = false;
    }
};

BucketReducer::BucketReducer() : reqs_(std::make_unique<Requests>()) {}

BucketReducer::~BucketReducer() {
    // Outstanding requests only remain if an exception left backward early; the job is being
    // stopped then, so they are not waited for.
    reqs_->stop_thread();
}

void BucketReducer::start(float* data, size_t count) {
    if (g_size <= 1) return;
    const auto t0 = Clock::now();
    {
        std::lock_guard<std::mutex> lock(reqs_->mu);
        for (size_t i = 0; i < count; i += kMaxCount) {
            MPI_Request r;
            MPI_Iallreduce(MPI_IN_PLACE, data + i, int(std::min(kMaxCount, count - i)), MPI_FLOAT,
                           MPI_SUM, MPI_COMM_WORLD, &r);
            reqs_->v.push_back(r);
        }
    }
    if (g_progress_thread && !reqs_->thread.joinable())
        reqs_->thread = std::thread([this] { reqs_->progress_loop(); });
    call_s_ += std::chrono::duration<double>(Clock::now() - t0).count();
}

void BucketReducer::gather(const void* send, void* recv, size_t bytes) {
    if (g_size <= 1) {
        std::memcpy(recv, send, bytes);
        return;
    }
    const auto t0 = Clock::now();
    std::lock_guard<std::mutex> lock(reqs_->mu);
    MPI_Request r;
    MPI_Iallgather(send, checked_int(bytes, "an all-gather"), MPI_BYTE, recv, int(bytes), MPI_BYTE,
                   MPI_COMM_WORLD, &r);
    reqs_->v.push_back(r);
    call_s_ += std::chrono::duration<double>(Clock::now() - t0).count();
}

void BucketReducer::poke() {
    if (reqs_->v.empty() || reqs_->thread.joinable()) return;  // the thread does it
    const auto t0 = Clock::now();
    int done = 0;
    MPI_Testall(int(reqs_->v.size()), reqs_->v.data(), &done, MPI_STATUSES_IGNORE);
    call_s_ += std::chrono::duration<double>(Clock::now() - t0).count();
}

double BucketReducer::finish() {
    const auto t0 = Clock::now();
    reqs_->stop_thread();
    if (!reqs_->v.empty())
        wait_all(reqs_->v.data(), int(reqs_->v.size()), "the gradient all-reduce");
    reqs_->v.clear();
    call_s_ = 0;
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

#else  // without MPI: a group of one

void allreduce_sum(double*, int, const char*) {}
void allreduce_sum(float*, size_t, const char*) {}
void broadcast(float*, size_t, int, const char*) {}
void broadcast(std::string&, int, const char*) {}
void allreduce_minmax(uint64_t v, uint64_t& lo, uint64_t& hi, const char*) {
    lo = hi = v;
}
void allgather_parts(float*, const std::vector<size_t>&, const char*) {}
void gather_parts(const float* part, float* all, const std::vector<size_t>& offsets, int,
                  const char*) {
    std::memcpy(all, part, (offsets[1] - offsets[0]) * sizeof(float));
}

struct BucketReducer::Requests {};
BucketReducer::BucketReducer() : reqs_(std::make_unique<Requests>()) {}
BucketReducer::~BucketReducer() {}
void BucketReducer::start(float*, size_t) {}
void BucketReducer::gather(const void* send, void* recv, size_t bytes) {
    std::memcpy(recv, send, bytes);
}
void BucketReducer::poke() {}
double BucketReducer::finish() {
    call_s_ = 0;
    return 0;
}

#endif

}  // namespace t6::dist
