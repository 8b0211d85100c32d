// SIGINT (Ctrl-C) and SIGTERM for every t6 command. They never interrupt a compute thread:
// route_stop_signals() (first thing in main) blocks them in the main thread, so every thread
// created later (the OpenMP pool, the server's workers) inherits the block, and one watcher
// thread takes them with sigwait(). Why: oneDNN 2.7's JIT sgemm (Debian 12) points RSP into a
// heap workspace while it runs, so a signal frame pushed onto that thread overwrites the heap
// (uxlfoundation/oneDNN#4845, fixed upstream in 3.x); a flag-setting handler was enough to
// crash `t6 train` on SIGTERM about one time in twenty.
//
// A command that stops gracefully (train: finish the step, save, exit 128 + signal; serve: drain)
// calls enable_graceful_stop() and polls stop_signal(). For every other command, and for a
// second signal, the watcher restores the default action and re-raises: the process ends at once
// with the usual "killed by signal" status.
#pragma once

namespace t6 {

// Blocks SIGINT/SIGTERM in the calling thread and starts the watcher thread. Call once, before
// any other thread exists (the CLI's main does); later calls do nothing.
void route_stop_signals();

// From now on the first SIGINT/SIGTERM is recorded (stop_signal()) instead of ending the process.
// If route_stop_signals() was not called (library users), it also installs a flag-setting handler
// so that the graceful stop still works.
void enable_graceful_stop();

// The signal received since enable_graceful_stop(), or 0.
int stop_signal();

// Test hook: records `sig` as if it had been received (0 clears it).
void set_stop_signal(int sig);

}  // namespace t6
