// --threads / threads= is checked against the machine by one validator (core/threads.h) for
// every command that takes it: out of range is a one-line error with status 1, never a crash
// inside libgomp (100000) nor a silently ignored value (-1). (That the pool waits passively is
// checked by test_cli_serve.)
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "test_cli_util.h"

using namespace t6;

namespace {

void expect_threads_error(const std::string& args, const std::string& name) {
    const auto r = test::run_t6(args);
    EXPECT_EQ(r.status, 1) << args << "\n" << r.err;
    EXPECT_EQ(r.err.rfind("t6: error: ", 0), 0u) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(name), std::string::npos) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("must be between 1 and"), std::string::npos) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
}

TEST(CliThreads, OutOfRangeThreadCountsAreOneLineErrors) {
    for (const char* n : {"100000", "-1"}) {
        const std::string v = n;
        expect_threads_error("generate --preset tiny-t6 --max-new-tokens 1 --threads " + v,
                             "--threads = " + v);
        expect_threads_error("serve --preset tiny-t6 --port 0 --threads " + v, "--threads = " + v);
        expect_threads_error("train --preset tiny-t6 max_iters=1 threads=" + v, "threads = " + v);
    }
    // One thread is always fine.
    const auto r =
        test::run_t6("generate --preset tiny-t6 --max-new-tokens 2 --threads 1 --prompt hi");
    EXPECT_EQ(r.status, 0) << r.err;
}

}  // namespace
