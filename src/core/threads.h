// Thread control: t6 uses OpenMP for its own loops and the OpenMP build of OpenBLAS, so one pool
// serves both.
//
// The pool spins briefly, then sleeps (GOMP_SPINCOUNT=1000 unless the user chose a policy or a
// spin count): an idle worker spins about 20 us after each parallel region, then sleeps on a
// futex. A decoding step of several sequences is many short parallel regions a few microseconds
// apart (small-t6, 8 sequences, q8: 85), which the brief spin covers (a step of one sequence is
// one region, its loops jobs of a team: core/team.h); waking a sleeping thread costs 22-166 us in
// the VMs t6 is developed on.
// libgomp's default (OMP_WAIT_POLICY unset: 300,000 spins, milliseconds) lets two OpenMP
// processes on the same cores steal each other's time slices; OMP_WAIT_POLICY=PASSIVE (no spin,
// t6's setting until session 40) pays a wake-up per region. Measured 2026-12-05 on a 2-core Zen 5
// (docs/decode-bench.md, session 40): small-t6 and small-mha batch-1 steps took 1.26-1.57x as
// long passive as with the brief spin and 1.33-1.69x as with the default (q8 weights, 1K and 4K);
// 32 clients of a `t6 serve` next to a `t6 train` saw a p99 latency of 16.4-16.5 s with the brief
// spin, 16.1-16.3 passive and 40.3 with the default (quiet: 10.6-11.3, passive 11.1-11.7).
// libgomp reads its environment once, when it is loaded, so the policy can only be set by
// re-executing the process (ensure_wait_policy). `t6 bench` keeps the runtime's default (a quiet
// machine's best); T6_OMP_ACTIVE=1 does so for any command.
#pragma once
#include <string>

namespace t6 {

// Sets the number of threads for t6 loops and GEMMs. n == 0: leave the OpenMP default; any
// other n is checked with check_thread_count first.
void set_num_threads(int n);
int num_threads();

// CPUs this process may run on (its affinity mask; at least 1).
int available_cpus();

// The shared validator of every --threads / threads= value: n must be 1..available_cpus()
// (0 too when zero_means_all). Fails with "<what> = N: ..." otherwise; returns n.
long long check_thread_count(long long n, const std::string& what, bool zero_means_all = false);

// The spin count t6 sets (kBriefSpinCount spins of libgomp's wait loop, each a `pause`).
constexpr int kBriefSpinCount = 1000;

// Called first thing in main(): if neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, sets
// GOMP_SPINCOUNT=kBriefSpinCount and re-executes the binary (same pid, same arguments) so the
// OpenMP runtime starts with it. T6_OMP_ACTIVE=1 opts out. Returns normally when nothing is to do
// or the exec failed.
void ensure_wait_policy(char** argv);

// The OpenMP wait policy in force, for logs: OMP_WAIT_POLICY lower-cased ("passive", "active")
// where set, else "spin N then sleep" where GOMP_SPINCOUNT=N is set, else "default".
std::string omp_wait_policy();

}  // namespace t6
