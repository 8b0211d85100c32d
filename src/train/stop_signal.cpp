#include "train/stop_signal.h"

#include <signal.h>

namespace t6 {

namespace {

volatile sig_atomic_t g_signal = 0;

void on_signal(int sig) {
    if (g_signal == 0) g_signal = sig;
}

}  // namespace

void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    // SA_RESTART: system calls in progress (file reads, MPI) continue; SA_RESETHAND: a second
    // signal gets the default action and ends the process at once.
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() {
    return int(g_signal);
}

void set_stop_signal(int sig) {
    g_signal = sig;
}

}  // namespace t6
