// For the end-to-end tests (test_cli_*.cpp, which CMake gives T6_BINARY, the t6 program under
// test): run `t6 <args>` through the shell.
#pragma once
#include <string>

#include "test_util.h"

namespace t6::test {

inline CommandResult run_t6(const std::string& args) {
    return run_command(std::string("'") + T6_BINARY + "' " + args);
}

}  // namespace t6::test
