// Errors: every user-facing failure is a t6::Error whose message is one line naming what is wrong
// and where (file, key, argument). The CLI prints it as "t6: error: <message>" and exits 1.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace t6 {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Concatenates its arguments with operator<< (GCC 12 has no <format>).
template <typename... Args>
std::string cat(Args&&... args) {
    std::ostringstream os;
    (os << ... << std::forward<Args>(args));
    return os.str();
}

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
    throw Error(cat(std::forward<Args>(args)...));
}

// Internal invariant (a bug in t6, not bad input).
#define T6_CHECK(cond, ...)                                                                 \
    do {                                                                                    \
        if (!(cond))                                                                        \
            ::t6::fail("internal check failed: " #cond " (", __FILE__, ":", __LINE__, ") ", \
                       ##__VA_ARGS__);                                                      \
    } while (0)

}  // namespace t6
