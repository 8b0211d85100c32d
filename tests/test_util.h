// Helpers shared by the tests: the ../shared folder, temporary folders, tensor comparison.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace t6::test {

// $T6_SHARED, else <source>/../shared. Empty string if that folder does not exist.
std::string shared_dir();

// A fresh empty folder under the system temp dir, removed by the destructor.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

// ||a - b|| / ||b|| (0 when both are zero).
double rel_error(const float* a, const float* b, size_t n);
double max_abs_diff(const float* a, const float* b, size_t n);

// Runs `cmd` with /bin/sh, capturing stdout and stderr; status is the exit code (-1 if killed).
struct CommandResult {
    int status = -1;
    std::string out, err;
};
CommandResult run_command(const std::string& cmd);

// Deterministic pseudo-random values for tests.
std::vector<float> random_vector(size_t n, unsigned seed, float scale = 1.0f);

// The conformance model folders a test runs over: the seven the official harness writes (see
// $T6_SHARED/conformance/README.md) plus any other folder there holding `file`. The list does not
// depend on the data being present, so a missing folder is a skipped (in CI: failed) test rather
// than a test that silently disappears.
std::vector<std::string> conformance_models(const std::string& file);

// True when the CI variable is set (to anything but "", "0" or "false"): missing test data or
// tools that the test script installs are then failures, not skips, so CI cannot pass vacuously.
bool ci_mode();

}  // namespace t6::test

// Skips the current test with `msg` (a stream expression) -- or fails it when ci_mode().
#define T6_SKIP_UNLESS_CI(msg)                                                        \
    do {                                                                              \
        if (::t6::test::ci_mode()) {                                                  \
            GTEST_FAIL() << msg << " -- CI is set, so this is a failure, not a skip"; \
        } else {                                                                      \
            GTEST_SKIP() << msg;                                                      \
        }                                                                             \
    } while (0)

// Skips the current test with a clear message when ../shared (or a subfolder) is absent (fails it
// in CI).
#define T6_REQUIRE_SHARED(sub)                                                         \
    std::string shared_root_ = ::t6::test::shared_dir();                               \
    if (shared_root_.empty())                                                          \
        T6_SKIP_UNLESS_CI("../shared not found (set T6_SHARED to the shared folder)"); \
    std::string shared_path_ = shared_root_ + "/" + (sub);                             \
    if (!std::filesystem::exists(shared_path_))                                        \
    T6_SKIP_UNLESS_CI(shared_path_ << " not found (set T6_SHARED to the shared folder)")
