// The split of decoding work into tasks across threads, and where the kernels prefetch
// (prefetch_to_l1) (flash_decode_common.h).
#include <algorithm>

#include "core/simd.h"
#include "kernels/flash_decode_common.h"

namespace t6::flash_detail {

std::atomic<bool> prefetch_to_l1{cpu_signature().vendor == "AuthenticAMD"};

constexpr int kMinSplitTokens = 256;  // do not split a sequence finer than this, but for the tail
constexpr int kMinTailTokens = 128;   // the tail's last tasks
constexpr long kTasksPerRun = 8;
constexpr long kTailPart = 8;  // the tail: the last eighth of a run

// The cache positions of all sequences, laid end to end, are cut into `threads` equal shares, one
// run per thread; within a share each sequence's segment is cut into equal tasks, about
// kTasksPerRun per share in all (none under kMinSplitTokens). The owner takes its run front to
// back, so it streams one contiguous range of records (the kernels prefetch across its tasks,
// Task::ahead); the tasks at the back are what another thread steals when it is done first
// (run_split), which keeps both threads busy when the shared machine preempts one of them. A task
// is the most of a share another thread cannot take over: 1/8 of it here (tasks of halving
// length all through would leave half a share in one first task).
// The run's last segment ends in a tail (its last eighth, at least kMinTailTokens) cut in halves,
// down to kMinTailTokens..2*kMinTailTokens-1 tokens: when the two threads' runs end apart, the one
// done first steals these small tasks from the back, so that the other is left with at most one
// small task in flight. With eight equal tasks the wait was up to a whole task: two threads ended
// 226-448 us apart per call over 64K records of small-t6 (tasks of 4,096 records, about 560 us),
// 58-83 us with the tail; attention 0.970-1.002 of the time, paired (docs/decode-bench.md,
// session 41).
namespace {

// Task boundaries of a sequence of seq_len records rounded down to multiples of `align` (its end
// stays); tasks left empty are dropped.
void push_task(std::vector<Task>& tasks, int seq, long j0, long j1, long ahead, long seq_len,
               int align) {
    const auto round = [&](long x) { return x >= seq_len ? seq_len : x / align * align; };
    j0 = round(j0), j1 = round(j1), ahead = round(ahead);
    if (j1 > j0) tasks.push_back({seq, int(j0), int(j1), int(ahead)});
}

void cut_segment(std::vector<Task>& tasks, int seq, long a, long len, long want, bool last_in_run,
                 long seq_len, int align) {
    const long ahead = a + len;
    long tail = last_in_run && len >= 2 * kMinTailTokens
                    ? std::max<long>(kMinTailTokens, len / kTailPart)
                    : 0;  // <= len / 2
    const long front = len - tail;
    const long pieces = std::max(1L, std::min(tail > 0 ? want - 1 : want, front / kMinSplitTokens));
    for (long k = 0; k < pieces; k++)
        push_task(tasks, seq, a + front * k / pieces, a + front * (k + 1) / pieces, ahead, seq_len,
                  align);
    for (long at = a + front; tail > 0;) {
        const long piece = tail >= 2 * kMinTailTokens ? (tail + 1) / 2 : tail;
        push_task(tasks, seq, at, at + piece, ahead, seq_len, align);
        at += piece;
        tail -= piece;
    }
}

}  // namespace

TaskPlan make_tasks(const int* lens, int nseq, int threads, int align) {
    align = std::max(1, align);
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
            cut_segment(plan.tasks, i, a - off, len, want, b == s1, lens[i], align);
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
