// fn(i) for every work item i in [0, n): across the OpenMP threads where there are at least two
// items, on the calling thread where there is one. A decoding step at batch 1 gives the norms,
// RoPE, SwiGLU and the embedding one item each (one token's row), about 60 calls per step of
// small-t6, and an OpenMP region costs more than such an item: libgomp wakes the team and
// futex-wakes at each barrier whether or not a thread sleeps, two system calls per region.
// Measured 2026-12-07 on the 2-core Zen 5 VM: an empty `#pragma omp parallel` region 3.2 us
// (two futex calls in strace), one with `if (0)` still 1.2 us (one futex call); rmsnorm of a row
// of 768 takes about 0.1 us. Each item runs the same code either way, so the results are the same.
// Inside a team (core/team.h) the items are the team's job, shared out in contiguous runs as
// schedule(static) shares them. parallel = false: every item on the calling thread (work too small
// for a region whatever the count).
#pragma once

#include "core/team.h"

namespace t6 {

template <typename Fn>
void parallel_items(long n, Fn&& fn, bool parallel = true) {
    if (n <= 1 || !parallel) {
        for (long i = 0; i < n; i++) fn(i);
        return;
    }
    if (team_detail::current()) {
        parallel_run([&](int t, int nt) {
            for (long i = n * t / nt, end = n * (t + 1) / nt; i < end; i++) fn(i);
        });
        return;
    }
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) fn(i);
}

}  // namespace t6
