#include "core/fatal.h"

#include <cstdio>

namespace t6 {

namespace {
FatalHandler g_handler;
}  // namespace

void set_fatal_handler(const FatalHandler& handler) {
    g_handler = handler;
}

void report_fatal(const std::string& message) {
    const std::string context = g_handler.context ? g_handler.context() : std::string();
    std::fprintf(stderr, "t6: error: %s%s\n", context.c_str(), message.c_str());
    std::fflush(stderr);
    if (g_handler.stop) g_handler.stop();
}

}  // namespace t6
