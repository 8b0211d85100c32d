#include "core/stop_signal.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace t6 {

namespace {

std::atomic<int> g_signal{0};
// Read and written from a signal handler in the fallback path: must not take a lock.
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<bool> g_graceful{false};
std::atomic<bool> g_routed{false};

sigset_t stop_set() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}

// Ends the process by `sig`'s default action, from the watcher thread (the only one in which the
// stop signals are then unblocked, so the re-raised signal is delivered here).
[[noreturn]] void die_by(int sig) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    const sigset_t set = stop_set();
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    raise(sig);
    _exit(128 + sig);  // not reached: the default action of SIGINT/SIGTERM ends the process
}

void watch(sigset_t set) {
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        int none = 0;
        if (g_graceful.load() && g_signal.compare_exchange_strong(none, sig)) continue;
        die_by(sig);
    }
}

// Fallback for a process without the watcher: records the first signal, and SA_RESETHAND gives
// the second one the default action.
void on_signal(int sig) {
    int none = 0;
    g_signal.compare_exchange_strong(none, sig);
}

}  // namespace

void route_stop_signals() {
    static std::once_flag once;
    std::call_once(once, [] {
        const sigset_t set = stop_set();
        if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return;
        std::thread(watch, set).detach();
        g_routed = true;
    });
}

void enable_graceful_stop() {
    g_graceful = true;
    if (g_routed.load()) return;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    // SA_RESTART: system calls in progress (file reads, MPI) continue.
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() {
    return g_signal.load();
}

void set_stop_signal(int sig) {
    g_signal = sig;
}

}  // namespace t6
