// Graceful stop of `t6 train` on SIGINT (Ctrl-C) or SIGTERM: the handler only records the signal;
// the training loop finishes the step it is in, writes a checkpoint, says so and ends (the CLI
// then exits with status 128 + the signal number: 130 for SIGINT, 143 for SIGTERM). The handler
// is installed once (SA_RESETHAND), so a second signal ends the process at once.
#pragma once

namespace t6 {

// Installs the handlers for SIGINT and SIGTERM (the CLI calls this; library users need not).
void install_stop_handlers();

// The signal received since install_stop_handlers(), or 0.
int stop_signal();

// Test hook: records `sig` as if it had been received (0 clears it).
void set_stop_signal(int sig);

}  // namespace t6
