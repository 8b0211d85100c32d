// Thread control: t6 uses OpenMP for its own loops and the OpenMP build of OpenBLAS, so one pool
// serves both.
//
// The pool waits passively (OMP_WAIT_POLICY=PASSIVE unless the user chose a policy): an idle
// worker sleeps on a futex instead of spinning for ~0.3 s after each parallel region, which with
// libgomp's default lets two OpenMP processes on the same cores steal each other's time slices
// (a `t6 serve` next to a `t6 train` ran ~5x slower). libgomp reads its environment once, when
// it is loaded, so the policy can only be set by re-executing the process (ensure_passive_wait).
// The cost on a quiet machine (measured 2026-12-01, 2-core Xeon, small presets): decode steps
// ~20% and training steps ~5% slower than the default policy; the gain next to another OpenMP
// job: a served load's p99 latency went from 4.3x its quiet value to 1.04x. `t6 bench` keeps the
// default policy (it measures a quiet machine's best); T6_OMP_ACTIVE=1 does so for any command.
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

// Called first thing in main(): if neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, sets
// OMP_WAIT_POLICY=PASSIVE and re-executes the binary (same pid, same arguments) so the OpenMP
// runtime starts with it. T6_OMP_ACTIVE=1 opts out. Returns normally when nothing is to do
// or the exec failed.
void ensure_passive_wait(char** argv);

// The OpenMP wait policy in force, for logs: "passive", "active", or "default".
std::string omp_wait_policy();

}  // namespace t6
