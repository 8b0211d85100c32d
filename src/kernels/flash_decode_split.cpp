// The split of decoding work into tasks across threads, and where the kernels prefetch
// (prefetch_to_l1) (flash_decode_common.h).
#include <algorithm>

#include "core/simd.h"
#include "kernels/flash_decode_common.h"

namespace t6::flash_detail {

std::atomic<bool> prefetch_to_l1{cpu_signature().vendor == "AuthenticAMD"};

constexpr int kMinSplitTokens = 256;  // do not split a sequence finer than this
constexpr long kTasksPerRun = 8;

// The cache positions of all sequences, laid end to end, are cut into `threads` equal shares, one
// run per thread; within a share each sequence's segment is cut into equal tasks, about
// kTasksPerRun per share in all (none under kMinSplitTokens). The owner takes its run front to
// back, so it streams one contiguous range of records (the kernels prefetch across its tasks,
// Task::ahead); the tasks at the back are what another thread steals when it is done first
// (run_split), which keeps both threads busy when the shared machine preempts one of them. A task
// is the most of a share another thread cannot take over: 1/8 of it here (tasks of halving
// length, measured as fast, would leave half a share in one first task).
TaskPlan make_tasks(const int* lens, int nseq, int threads) {
    threads = std::max(1, threads);
    long total = 0;
    for (int i = 0; i < nseq; i++) total += std::max(0, lens[i]);
    TaskPlan plan;
    plan.first.push_back(0);
    // Empty sequences still get a task (its partial gives the output 0), in the first run.
    for (int i = 0; i < nseq; i++)
        if (lens[i] <= 0) plan.tasks.push_back({i, 0, 0, 0});
    for (int r = 0; r < threads; r++) {
        const long s0 = total * r / threads, s1 = total * (r + 1) / threads;
        long off = 0;  // start of sequence i in the laid-out positions
        for (int i = 0; i < nseq; off += std::max(0, lens[i]), i++) {
            const long a = std::max(s0, off), b = std::min(s1, off + std::max(0, lens[i]));
            if (a >= b) continue;
            const long len = b - a, want = (len * kTasksPerRun + (s1 - s0) - 1) / (s1 - s0);
            const long pieces = std::max(1L, std::min(want, len / kMinSplitTokens));
            for (long k = 0; k < pieces; k++)
                plan.tasks.push_back({i, int(a - off + len * k / pieces),
                                      int(a - off + len * (k + 1) / pieces), int(b - off)});
        }
        plan.first.push_back(int(plan.tasks.size()));
    }
    return plan;
}

}  // namespace t6::flash_detail

namespace t6 {

bool flash_prefetch_l1() {
    return flash_detail::prefetch_to_l1.load(std::memory_order_relaxed);
}

bool set_flash_prefetch_l1(bool l1) {
    return flash_detail::prefetch_to_l1.exchange(l1, std::memory_order_relaxed);
}

}  // namespace t6
