#include "core/simd.h"

// Which Highway target each t6 target allows. This file is compiled once per Highway target
// (foreach_target.h) only to name the target that dynamic dispatch selects.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
int64_t CurrentHighwayTarget() {
    return HWY_TARGET;
}
}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>

#include "core/error.h"

namespace t6 {

HWY_EXPORT(CurrentHighwayTarget);

namespace {

// The Highway targets t6 dispatches between (the build disables the others, see CMakeLists.txt).
constexpr int64_t kHwyScalar = HWY_SCALAR;
constexpr int64_t kHwyAvx2 = HWY_AVX2;
constexpr int64_t kHwyAvx3 = HWY_AVX3;

int64_t highway_mask(SimdTarget t) {
    switch (t) {
        case SimdTarget::scalar:
            return kHwyScalar;
        case SimdTarget::avx2:
            return kHwyScalar | kHwyAvx2;
        case SimdTarget::avx512:
        case SimdTarget::avx512bf16:
            return kHwyScalar | kHwyAvx2 | kHwyAvx3;
    }
    return kHwyScalar;
}

struct State {
    int64_t real_targets = 0;  // Highway's detection, before any cap
    SimdTarget best = SimdTarget::scalar;
    std::atomic<int> current{0};
    std::string env_error;  // a bad T6_SIMD, reported by simd_target()
};

State& state() {
    static State* s = [] {
        auto* st = new State;
        // Supported by the CPU and compiled into this build (HWY_TARGETS).
        st->real_targets = hwy::SupportedTargets() & (HWY_TARGETS | HWY_STATIC_TARGET);
        if ((st->real_targets & kHwyAvx3) != 0)
            st->best =
                __builtin_cpu_supports("avx512bf16") ? SimdTarget::avx512bf16 : SimdTarget::avx512;
        else if ((st->real_targets & kHwyAvx2) != 0)
            st->best = SimdTarget::avx2;
        SimdTarget t = st->best;
        if (const char* env = std::getenv("T6_SIMD"); env != nullptr && *env != '\0') {
            try {
                t = std::min(t, parse_simd_target(env, "T6_SIMD"));
            } catch (const Error& e) {
                st->env_error = e.what();
            }
        }
        st->current.store(int(t));
        hwy::SetSupportedTargetsForTest(st->real_targets & highway_mask(t));
        return st;
    }();
    return *s;
}

// Applies T6_SIMD before main(), so that no kernel runs uncapped even if nothing asks first.
[[maybe_unused]] const bool kApplied = (state(), true);

}  // namespace

const char* simd_target_name(SimdTarget t) {
    switch (t) {
        case SimdTarget::scalar:
            return "scalar";
        case SimdTarget::avx2:
            return "avx2";
        case SimdTarget::avx512:
            return "avx512";
        case SimdTarget::avx512bf16:
            return "avx512bf16";
    }
    return "?";
}

SimdTarget parse_simd_target(const std::string& s, const std::string& where) {
    for (SimdTarget t :
         {SimdTarget::scalar, SimdTarget::avx2, SimdTarget::avx512, SimdTarget::avx512bf16})
        if (s == simd_target_name(t)) return t;
    fail(where, ": unknown SIMD target '", s, "' (expected scalar, avx2, avx512 or avx512bf16)");
}

SimdTarget simd_cpu_best() {
    return state().best;
}

std::vector<SimdTarget> simd_available_targets() {
    std::vector<SimdTarget> out;
    const State& st = state();
    for (SimdTarget t :
         {SimdTarget::scalar, SimdTarget::avx2, SimdTarget::avx512, SimdTarget::avx512bf16}) {
        if (t > st.best) break;
        // A native build has no kernels below its baseline: leave out targets whose Highway
        // target was not compiled (avx512bf16 shares avx512's).
        const int64_t need = t == SimdTarget::scalar ? kHwyScalar
                             : t == SimdTarget::avx2 ? kHwyAvx2
                                                     : kHwyAvx3;
        if ((st.real_targets & need) != 0) out.push_back(t);
    }
    return out;
}

SimdTarget simd_target() {
    State& st = state();
    if (!st.env_error.empty()) fail(st.env_error);
    return SimdTarget(st.current.load(std::memory_order_relaxed));
}

SimdTarget set_simd_target(SimdTarget t) {
    State& st = state();
    t = std::min(t, st.best);
    st.current.store(int(t));
    hwy::SetSupportedTargetsForTest(st.real_targets & highway_mask(t));
    return t;
}

bool simd_native_bf16() {
    return simd_target() == SimdTarget::avx512bf16;
}

std::string simd_highway_target_name() {
    return hwy::TargetName(HWY_DYNAMIC_DISPATCH(CurrentHighwayTarget)());
}

std::string cpu_model_name() {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("model name", 0) == 0) {
            const size_t c = line.find(':');
            if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
        }
    }
    return "unknown";
}

std::string cpu_simd_features() {
    std::string out;
    auto add = [&](const char* name, bool has) {
        if (!has) return;
        if (!out.empty()) out += ' ';
        out += name;
    };
    __builtin_cpu_init();
    add("sse4.2", __builtin_cpu_supports("sse4.2"));
    add("avx", __builtin_cpu_supports("avx"));
    add("avx2", __builtin_cpu_supports("avx2"));
    add("fma", __builtin_cpu_supports("fma"));
    add("avx512f", __builtin_cpu_supports("avx512f"));
    add("avx512dq", __builtin_cpu_supports("avx512dq"));
    add("avx512bw", __builtin_cpu_supports("avx512bw"));
    add("avx512vl", __builtin_cpu_supports("avx512vl"));
    add("avx512vnni", __builtin_cpu_supports("avx512vnni"));
    add("avx512bf16", __builtin_cpu_supports("avx512bf16"));
    return out.empty() ? "none" : out;
}

}  // namespace t6
#endif  // HWY_ONCE
