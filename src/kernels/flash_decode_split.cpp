// The split of decoding work into tasks across threads (flash_decode_common.h).
#include <omp.h>

#include "kernels/flash_decode_common.h"

namespace t6::flash_detail {

constexpr int kMinSplitTokens = 256;  // do not split a sequence finer than this

// Splits every sequence's cache into ranges so that all threads have work: about 8 tasks per
// thread in all, in proportion to each sequence's length (several tasks per thread, handed out
// dynamically, keep both threads busy when the shared machine preempts one of them).
std::vector<Task> make_tasks(const int* lens, int nseq) {
    const int threads = omp_get_max_threads();
    long total = 0;
    for (int i = 0; i < nseq; i++) total += lens[i];
    std::vector<Task> tasks;
    for (int i = 0; i < nseq; i++) {
        const long want = total > 0 ? (long(lens[i]) * 8 * threads + total - 1) / total : 1;
        int splits = int(std::max(1L, std::min(want, long(lens[i] / kMinSplitTokens))));
        for (int k = 0; k < splits; k++) {
            int a = int(long(lens[i]) * k / splits), b = int(long(lens[i]) * (k + 1) / splits);
            tasks.push_back({i, a, b});
        }
    }
    return tasks;
}

}  // namespace t6::flash_detail
