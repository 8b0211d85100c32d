// An opt-in phase profiler: T6_PROFILE_SCOPE("name") accumulates wall time per name while
// profiling is enabled (t6 bench step --profile). Costs one branch when disabled.
#pragma once
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "core/timing.h"

namespace t6::profile {

bool enabled();
void set_enabled(bool on);
void add(const char* name, double seconds);
void reset();
// (name, total seconds, calls), in order of first appearance.
struct Entry {
    std::string name;
    double seconds = 0;
    long calls = 0;
};
std::vector<Entry> entries();

class Scope {
  public:
    explicit Scope(const char* name) : name_(enabled() ? name : nullptr) {
        if (name_) t0_ = std::chrono::steady_clock::now();
    }
    ~Scope() {
        if (name_) add(name_, seconds_since(t0_));
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

  private:
    const char* name_;
    std::chrono::steady_clock::time_point t0_;
};

}  // namespace t6::profile

#define T6_PROFILE_CAT2(a, b) a##b
#define T6_PROFILE_CAT(a, b) T6_PROFILE_CAT2(a, b)
#define T6_PROFILE_SCOPE(name) ::t6::profile::Scope T6_PROFILE_CAT(t6_prof_, __LINE__)(name)
