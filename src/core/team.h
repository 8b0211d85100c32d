// A decoding step's parallel loops without an OpenMP region each.
//
// At batch 1 a step of the small presets runs about 75 parallel loops (the linear layers' GEMVs
// and each layer's attention), each a few tens of microseconds of work. As an OpenMP region each
// costs 3.2 us on the 2-core VMs t6 is developed and tested on: libgomp futex-wakes at each of a
// region's two barriers whether or not a thread sleeps, about 1.5 us per system call by that
// count there (docs/decode-bench.md, session 49). with_team(body) opens one OpenMP region for the
// whole step: body runs on thread 0, and the team's other threads wait in a spin loop for the jobs
// that parallel_run hands them (an atomic counter each way, no system call while they spin). The
// threads are OpenMP's own, so nothing else spins beside them on the cores.
//
// Outside with_team, parallel_run is an OpenMP parallel region; inside, every parallel loop that
// the body reaches must go through parallel_run (or parallel_items, core/parallel_items.h): a
// plain `#pragma omp parallel` there would be nested and run on one thread. Decoder::run opens a
// team only for steps whose every loop does (batch 1: the GEMVs, the decoding attention kernels,
// the norms and RoPE).
#pragma once

#include <omp.h>

#include <algorithm>
#include <functional>
#include <type_traits>

namespace t6 {

namespace team_detail {
struct Team;
// The team open on this thread, unless none is or a job of it is running here (a parallel_run
// inside a job runs on the calling thread alone, as a nested OpenMP region would).
Team* current();
// Runs call(ctx, t, nt) for t = 0 here and t = 1..nt-1 on the team's other threads; returns once
// all have returned.
void run(Team* team, void (*call)(void*, int, int), void* ctx);
}  // namespace team_detail

// Threads a parallel_run started here runs on (the open team's, else omp_get_max_threads()).
int parallel_threads();

// fn(t, nt) for t in [0, nt), the calling thread being t = 0; returns once every call has
// returned. fn must not throw on threads other than 0 (as in an OpenMP region, the program would
// terminate); an exception of thread 0's call is rethrown once the others are done.
// parallel = false: fn(0, 1) on the calling thread (work too small for the threads).
template <typename Fn>
void parallel_run(Fn&& fn, bool parallel = true) {
    if (!parallel) {
        fn(0, 1);
        return;
    }
    if (team_detail::Team* team = team_detail::current()) {
        using F = std::remove_reference_t<Fn>;
        team_detail::run(
            team, [](void* f, int t, int nt) { (*static_cast<F*>(f))(t, nt); },
            const_cast<void*>(static_cast<const void*>(&fn)));
        return;
    }
#pragma omp parallel
    fn(omp_get_thread_num(), omp_get_num_threads());
}

// fn(r0, r1) for one contiguous range of rows [0, rows) per thread, the ranges balanced in units
// of `align` rows (each starts at a multiple of align), so that each thread streams its rows in
// order and prefetches through its range (the batch-1 GEMVs). parallel as in parallel_run.
template <typename Fn>
void parallel_row_ranges(int rows, int align, Fn&& fn, bool parallel = true) {
    const int units = (rows + align - 1) / align;
    parallel_run(
        [&](int t, int nt) {
            const int r0 = int(long(units) * t / nt) * align;
            const int r1 = std::min(rows, int(long(units) * (t + 1) / nt) * align);
            if (r0 < r1) fn(r0, r1);
        },
        parallel);
}

// Runs body() on this thread with the other OpenMP threads (omp_get_max_threads() in all) taking
// the jobs of parallel_run until it returns. Runs body() alone where there is one thread, inside
// an OpenMP region or inside another team. An exception of body() is rethrown after the region.
void with_team(const std::function<void()>& body);

}  // namespace t6
