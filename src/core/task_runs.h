// Runs of tasks, one run per thread, with work stealing: the owner takes its run's tasks front to
// back (so it streams one contiguous range of data, prefetching across its tasks), and a thread
// whose runs are empty takes the last task left in the run with the most left. A task is claimed
// by one compare-and-swap on its run's (front, back) pair, so each runs exactly once whatever the
// number of threads and whoever is preempted. Used by the decoding attention's split
// (kernels/flash_decode_common.h run_split) and, through parallel_unit_runs, the float32 and bf16
// few-row linear layers of decoding (kernels/linear_bf16.cpp).
#pragma once
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/team.h"

namespace t6 {

class TaskRuns {
  public:
    TaskRuns() = default;
    // Run r holds tasks [first[r], first[r + 1]).
    explicit TaskRuns(const std::vector<int>& first) { reset(first); }
    // The same for new runs, keeping the counters' memory (no allocation where it suffices).
    void reset(const std::vector<int>& first) {
        if (left_.size() < first.size()) left_ = std::vector<Left>(first.size());
        runs_ = first.empty() ? 0 : int(first.size()) - 1;
        for (size_t r = 0; r + 1 < first.size(); r++)
            left_[r].v.store(uint64_t(uint32_t(first[r])) << 32 | uint32_t(first[r + 1]),
                             std::memory_order_relaxed);
    }
    int runs() const { return runs_; }

    // The calling thread's next task (-1: none left anywhere). `own` is the thread's cursor over
    // its runs (its thread number t, then t + threads, ...), starting at t; `stolen` tells whether
    // the task came from the back of another run.
    int next(int threads, int& own, bool& stolen) {
        stolen = false;
        int k = -1;
        while (own < runs() && (k = claim(own, false)) < 0) own += threads;
        if (k >= 0) return k;
        stolen = true;
        for (;;) {
            int best = -1;
            long most = 0;
            for (int r = 0; r < runs(); r++) {
                const uint64_t v = left_[size_t(r)].v.load(std::memory_order_relaxed);
                const long n = long(uint32_t(v)) - long(v >> 32);
                if (n > most) most = n, best = r;
            }
            if (best < 0) return -1;
            if ((k = claim(best, true)) >= 0) return k;  // else taken meanwhile: look again
        }
    }

  private:
    // Run r's front task (steal: its back task); -1 when the run is empty.
    int claim(int r, bool steal) {
        std::atomic<uint64_t>& w = left_[size_t(r)].v;
        uint64_t v = w.load(std::memory_order_relaxed);
        for (;;) {
            const int f = int(v >> 32), b = int(uint32_t(v));
            if (f >= b) return -1;
            const uint64_t nv =
                steal ? uint64_t(f) << 32 | uint32_t(b - 1) : uint64_t(f + 1) << 32 | uint32_t(b);
            if (w.compare_exchange_weak(v, nv, std::memory_order_acq_rel)) return steal ? b - 1 : f;
        }
    }

    // Run r's tasks not yet claimed, front << 32 | back; a cache line each, so that a thread
    // claiming its own tasks does not take the line from the others.
    struct alignas(64) Left {
        std::atomic<uint64_t> v{0};
    };
    std::vector<Left> left_;  // at least runs_ of them
    int runs_ = 0;
};

// Appends the tasks of one thread's units [u0, u1): the front three quarters in up to three
// pieces, then the last quarter in halving pieces down to min_units, so that a thread done first
// takes small pieces from the back and leaves the other at most one small piece in flight.
inline void cut_unit_run(std::vector<std::pair<int, int>>& tasks, int u0, int u1, int min_units) {
    const int len = u1 - u0, tail = len >= 4 * min_units ? len / 4 : 0, front = len - tail;
    const int pieces = std::max(1, std::min(3, front / (2 * min_units)));
    for (int k = 0; k < pieces; k++)
        tasks.push_back({u0 + front * k / pieces, u0 + front * (k + 1) / pieces});
    for (int at = u1 - tail, left = tail; left > 0;) {
        const int piece = left >= 2 * min_units ? (left + 1) / 2 : left;
        tasks.push_back({at, at + piece});
        at += piece;
        left -= piece;
    }
}

// Tasks of at least kMinTaskUnits units (but where a share is smaller): 32 rows of the linear
// layers' units of 16.
constexpr int kMinTaskUnits = 2;

// fn(u0, u1) over units [0, units) (e.g. groups of 16 rows of a matrix), in parallel where
// `parallel`: each thread owns one contiguous share, cut into a run of tasks (cut_unit_run) that
// it takes front to back, so that it streams its share in order, and a thread done first takes
// the others' last tasks. Where fn's result for a unit does not depend on the task it falls in,
// the output is the same whoever runs what.
template <typename Fn>
void parallel_unit_runs(int units, bool parallel, Fn&& fn) {
    const int nt = parallel ? parallel_threads() : 1;
    if (nt <= 1 || units <= 1) {
        if (units > 0) fn(0, units);
        return;
    }
    // The plan is kept by the calling thread from call to call (a decoding step makes a few
    // hundred calls); the threads use it through the pointers below, not the thread_local names,
    // which would name each thread's own.
    thread_local std::vector<std::pair<int, int>> tasks;
    thread_local std::vector<int> first;
    thread_local TaskRuns kept;
    tasks.clear();
    first.assign(1, 0);
    for (int r = 0; r < nt; r++) {
        cut_unit_run(tasks, int(long(units) * r / nt), int(long(units) * (r + 1) / nt),
                     kMinTaskUnits);
        first.push_back(int(tasks.size()));
    }
    kept.reset(first);
    TaskRuns* const runs = &kept;
    const std::pair<int, int>* const task = tasks.data();
    parallel_run([&](int me, int threads) {
        bool stolen = false;
        for (int own = me;;) {
            const int k = runs->next(threads, own, stolen);
            if (k < 0) break;
            if (task[k].first < task[k].second) fn(task[k].first, task[k].second);
        }
    });
}

}  // namespace t6
