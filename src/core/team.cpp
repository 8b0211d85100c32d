#include "core/team.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace t6 {

namespace team_detail {

struct Team {
    int nt = 1;
    // Jobs: thread 0 writes call and ctx, clears done, then bumps gen; each other thread runs the
    // job when it sees gen change and then bumps done. quit: the body returned.
    std::atomic<unsigned> gen{0};
    std::atomic<int> done{0};
    std::atomic<int> sleepers{0};
    std::atomic<bool> quit{false};
    void (*call)(void*, int, int) = nullptr;
    void* ctx = nullptr;
};

namespace {

thread_local Team* tls_team = nullptr;  // the team this thread opened (thread 0)
thread_local bool tls_in_job = false;   // thread 0 is running its share of a job

// How long a waiting thread spins before it sleeps on a futex (the team's threads) or yields
// its core (thread 0 waiting for the others): about libgomp's brief spin that t6 sets
// (core/threads.h), long enough for the serial stretches of a decoding step, short enough that a
// preempted thread's core is handed back when the machine is oversubscribed (ctest -j2).
constexpr auto kSpin = std::chrono::microseconds(50);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Spins until done() holds; after kSpin of spinning, calls idle() between checks instead. (A
// pause is about 20 ns on Zen 5, reading the clock 28 ns.)
template <typename Done, typename Idle>
void spin_until(Done&& done, Idle&& idle) {
    if (done()) return;
    const auto start = std::chrono::steady_clock::now();
    for (unsigned k = 1; !done(); k++) {
        cpu_relax();
        if (k % 32 == 0 && std::chrono::steady_clock::now() - start > kSpin) {
            while (!done()) idle();
            return;
        }
    }
}

void wait_for_others(Team& team) {
    spin_until([&] { return team.done.load(std::memory_order_acquire) >= team.nt - 1; },
               [] { std::this_thread::yield(); });
}

// Thread t (>= 1) of the region: runs each job it is handed until quit.
void serve(Team& team, int t) {
    unsigned seen = 0;  // the generation before any job (not a fresh load: a job may be out)
    for (;;) {
        spin_until([&] { return team.gen.load(std::memory_order_acquire) != seen; },
                   [&] {
                       team.sleepers.fetch_add(1, std::memory_order_seq_cst);
                       if (team.gen.load(std::memory_order_seq_cst) == seen)
                           team.gen.wait(seen, std::memory_order_seq_cst);
                       team.sleepers.fetch_sub(1, std::memory_order_seq_cst);
                   });
        seen = team.gen.load(std::memory_order_acquire);
        if (team.quit.load(std::memory_order_acquire)) return;
        team.call(team.ctx, t, team.nt);
        team.done.fetch_add(1, std::memory_order_release);
    }
}

// Hands the others the job (or quit) published before this call.
void publish(Team& team) {
    team.gen.fetch_add(1, std::memory_order_seq_cst);
    if (team.sleepers.load(std::memory_order_seq_cst) > 0) team.gen.notify_all();
}

}  // namespace

Team* current() {
    return tls_in_job ? nullptr : tls_team;
}

void run(Team* team, void (*call)(void*, int, int), void* ctx) {
    team->call = call;
    team->ctx = ctx;
    team->done.store(0, std::memory_order_relaxed);
    publish(*team);
    // Thread 0's share; then, also when it throws, the end of the job and the others' shares.
    struct Share {
        Team& team;
        explicit Share(Team& t) : team(t) { tls_in_job = true; }
        ~Share() {
            tls_in_job = false;
            wait_for_others(team);
        }
    } share(*team);
    call(ctx, 0, team->nt);
}

}  // namespace team_detail

int parallel_threads() {
    if (const team_detail::Team* team = team_detail::current()) return team->nt;
    return omp_get_max_threads();
}

void with_team(const std::function<void()>& body) {
    using team_detail::Team;
    if (team_detail::tls_team || omp_in_parallel() || omp_get_max_threads() < 2) {
        body();
        return;
    }
    Team team;
    std::exception_ptr error;
#pragma omp parallel
    {
        const int t = omp_get_thread_num();
        if (t == 0) {
            team.nt = omp_get_num_threads();
            // (The others read nt only after a job's or quit's publish, which orders it.)
            team_detail::tls_team = &team;
            try {
                body();
            } catch (...) {
                error = std::current_exception();
            }
            team_detail::tls_team = nullptr;
            team.quit.store(true, std::memory_order_release);
            team_detail::publish(team);
        } else {
            team_detail::serve(team, t);
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace t6
