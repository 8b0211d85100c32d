// Every command and every subcommand answers --help with its usage, exit status 0. The lists are
// read from t6's own help (`t6 --help`, then each command's), so a new command is covered the day
// it is added to the command table.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "test_cli_util.h"

using namespace t6;

namespace {

// The first word of each line indented by two spaces after a line ending in ':' (e.g.
// "commands:", "benchmarks:"), or, without such a heading, of every such line.
std::vector<std::string> listed_words(const std::string& help, bool after_heading) {
    std::vector<std::string> out;
    std::istringstream in(help);
    std::string line;
    bool in_list = !after_heading;
    static const std::regex entry("^  ([a-z][a-z0-9-]*)\\s+\\S.*");
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == ':' && line[0] != ' ') {
            in_list = true;
            continue;
        }
        std::smatch m;
        if (in_list && std::regex_match(line, m, entry)) out.push_back(m[1]);
    }
    return out;
}

// Subcommands of `t6 cmd`, from its usage line: "t6 cmd <a|b>" or "t6 cmd a|b" name them; "t6
// cmd <word>" (no '|') lists them as indented entries below.
std::vector<std::string> subcommands(const std::string& cmd, const std::string& help) {
    const std::string first = help.substr(0, help.find('\n'));
    std::smatch m;
    const std::regex alt("^usage: t6 " + cmd + " <?([a-z]+(\\|[a-z]+)+)>?");
    if (std::regex_search(first, m, alt)) {
        std::vector<std::string> out;
        std::istringstream in(m[1].str());
        for (std::string w; std::getline(in, w, '|');) out.push_back(w);
        return out;
    }
    if (std::regex_search(first, std::regex("^usage: t6 " + cmd + " <[a-z]+>")))
        return listed_words(help, true);
    return {};
}

TEST(CliHelp, EveryCommandAndSubcommandHasHelp) {
    const auto top = test::run_t6("--help");
    ASSERT_EQ(top.status, 0) << top.err;
    const auto commands = listed_words(top.out, true);
    ASSERT_GE(commands.size(), 12u) << top.out;
    int subs = 0;
    for (const auto& c : commands) {
        const auto r = test::run_t6(c + " --help");
        EXPECT_EQ(r.status, 0) << c << ": " << r.err;
        EXPECT_EQ(r.out.rfind("usage: t6 " + c, 0), 0u) << c << ":\n" << r.out;
        for (const auto& s : subcommands(c, r.out)) {
            const auto rs = test::run_t6(c + " " + s + " --help");
            EXPECT_EQ(rs.status, 0) << c << " " << s << ": " << rs.err;
            EXPECT_EQ(rs.out.rfind("usage: t6 " + c + " " + s, 0), 0u) << c << " " << s << ":\n"
                                                                       << rs.out;
            subs++;
        }
    }
    // bench (step, train, decode, kernels), eval (ppl, mc), tokenizer (train, info) at least.
    EXPECT_GE(subs, 8);
}

TEST(CliHelp, AnUnknownCommandIsAOneLineError) {
    const auto r = test::run_t6("no-such-command");
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("no-such-command"), std::string::npos) << r.err;
}

}  // namespace

// ---- merged from test_cli_threads.cpp (one program fewer to build and link in CI):
// --threads / threads= is checked against the machine by one validator (core/threads.h) for
// every command that takes it: out of range is a one-line error with status 1, never a crash
// inside libgomp (100000) nor a silently ignored value (-1). (The pool's wait policy is checked by
// test_cli_serve.)
namespace threads_cli {

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

}  // namespace threads_cli
