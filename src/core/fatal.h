// Fatal-error reporting: how an error that ends a command reaches the user. report_fatal prints
// one line, "t6: error: <context><message>", on stderr. A process that is one of a group (a
// data-parallel run, train/dist.h) installs a handler that puts "rank R of N: " in front and then
// stops the whole group, so that no other process waits for this one; without one it only prints.
#pragma once
#include <string>

namespace t6 {

struct FatalHandler {
    std::string (*context)() = nullptr;  // text put in front of the message ("" when null)
    void (*stop)() = nullptr;            // called after printing (may not return)
};

void set_fatal_handler(const FatalHandler& handler);

// Prints the line, flushes stderr and calls the handler's stop, if any. Returns when it does.
void report_fatal(const std::string& message);

}  // namespace t6
