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
#include <cstring>
#include <fstream>
#include <mutex>
#if HWY_ARCH_ARM_A64 && defined(__linux__)
#include <sys/auxv.h>
#endif
#if HWY_ARCH_X86
#include <cpuid.h>
#endif

#include "core/error.h"

namespace t6 {

HWY_EXPORT(CurrentHighwayTarget);

namespace {

// The Highway targets t6 dispatches between (the build disables the others, see CMakeLists.txt).
constexpr int64_t kHwyScalar = HWY_SCALAR;

// Highway's target bit for each t6 target (avx512bf16 shares avx512's).
int64_t highway_bit(SimdTarget t) {
    switch (t) {
        case SimdTarget::scalar:
            return HWY_SCALAR;
        case SimdTarget::avx2:
            return HWY_AVX2;
        case SimdTarget::avx512:
        case SimdTarget::avx512bf16:
            return HWY_AVX3;
        case SimdTarget::neon:
            return HWY_NEON;
        case SimdTarget::sve:
            return HWY_SVE;
        case SimdTarget::sve2:
            return HWY_SVE2;
    }
    return kHwyScalar;
}

// The Highway targets that t6 target t allows: its own and those of the targets below it.
int64_t highway_mask(SimdTarget t) {
    int64_t m = kHwyScalar;
    for (SimdTarget a : simd_arch_targets())
        if (a <= t) m |= highway_bit(a);
    return m;
}

// The best target of this CPU and build, from Highway's detection.
SimdTarget detect_best(int64_t real_targets) {
#if HWY_ARCH_X86
    if ((real_targets & HWY_AVX3) != 0)
        return __builtin_cpu_supports("avx512bf16") ? SimdTarget::avx512bf16 : SimdTarget::avx512;
    if ((real_targets & HWY_AVX2) != 0) return SimdTarget::avx2;
    return SimdTarget::scalar;
#else
    SimdTarget best = SimdTarget::scalar;
    for (SimdTarget t : simd_arch_targets())
        if ((real_targets & highway_bit(t)) != 0) best = t;
    return best;
#endif
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
        st->best = detect_best(st->real_targets);
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

}  // namespace

bool simd_apply_env() {
    state();  // reads T6_SIMD and sets Highway's targets on first use
    return true;
}

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
        case SimdTarget::neon:
            return "neon";
        case SimdTarget::sve:
            return "sve";
        case SimdTarget::sve2:
            return "sve2";
    }
    return "?";
}

const std::vector<SimdTarget>& simd_arch_targets() {
#if HWY_ARCH_ARM_A64
    static const std::vector<SimdTarget> ts = {SimdTarget::scalar, SimdTarget::neon,
                                               SimdTarget::sve, SimdTarget::sve2};
#else
    static const std::vector<SimdTarget> ts = {SimdTarget::scalar, SimdTarget::avx2,
                                               SimdTarget::avx512, SimdTarget::avx512bf16};
#endif
    return ts;
}

const char* simd_highway_name_of(SimdTarget t) {
    return hwy::TargetName(highway_bit(t));
}

SimdTarget parse_simd_target(const std::string& s, const std::string& where) {
    const auto& ts = simd_arch_targets();
    for (SimdTarget t : ts)
        if (s == simd_target_name(t)) return t;
    // "(expected a, b, c or d)"
    std::string expected;
    for (size_t i = 0; i < ts.size(); i++)
        expected += std::string(i == 0               ? ""
                                : i + 1 == ts.size() ? " or "
                                                     : ", ") +
                    simd_target_name(ts[i]);
    fail(where, ": unknown SIMD target '", s, "' (expected ", expected, ")");
}

SimdTarget simd_cpu_best() {
    return state().best;
}

std::vector<SimdTarget> simd_available_targets() {
    std::vector<SimdTarget> out;
    const State& st = state();
    for (SimdTarget t : simd_arch_targets()) {
        if (t > st.best) break;
        // A native build has no kernels below its baseline: leave out targets whose Highway
        // target was not compiled (avx512bf16 shares avx512's).
        if ((st.real_targets & highway_bit(t)) != 0) out.push_back(t);
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

Bf16DotDecode parse_bf16_dot_decode(const std::string& s, const std::string& where) {
    if (s == "auto") return Bf16DotDecode::automatic;
    if (s == "on") return Bf16DotDecode::on;
    if (s == "off") return Bf16DotDecode::off;
    fail(where, ": '", s, "' is not auto, on or off");
}

namespace {
struct DotState {
    std::atomic<int> mode{int(Bf16DotDecode::automatic)};
    std::string env_error;  // a bad T6_BF16_DOT, reported when the setting is read
};
DotState& dot_state() {
    static DotState* s = [] {
        auto* st = new DotState;
        if (const char* env = std::getenv("T6_BF16_DOT"); env != nullptr && *env != '\0') {
            try {
                st->mode.store(int(parse_bf16_dot_decode(env, "T6_BF16_DOT")));
            } catch (const Error& e) {
                st->env_error = e.what();
            }
        }
        return st;
    }();
    return *s;
}
}  // namespace

Bf16DotDecode bf16_dot_decode_setting() {
    DotState& st = dot_state();
    if (!st.env_error.empty()) throw Error(st.env_error);
    return Bf16DotDecode(st.mode.load());
}

Bf16DotDecode set_bf16_dot_decode(Bf16DotDecode m) {
    return Bf16DotDecode(dot_state().mode.exchange(int(m)));
}

bool simd_bf16_dot_decode() {
    const Bf16DotDecode m = bf16_dot_decode_setting();  // a bad T6_BF16_DOT fails on every CPU
    if (!simd_native_bf16()) return false;
    if (m != Bf16DotDecode::automatic) return m == Bf16DotDecode::on;
    static const bool amd = cpu_signature().vendor == "AuthenticAMD";
    return amd;
}

void simd_check_env() {
    simd_target();
    bf16_dot_decode_setting();
}

std::string simd_highway_target_name() {
    return hwy::TargetName(HWY_DYNAMIC_DISPATCH(CurrentHighwayTarget)());
}

std::string cpu_model_name() {
    std::ifstream f("/proc/cpuinfo");
    std::string line, implementer, part;
    // The value after "key<tabs>: ", or "" for another key.
    auto value = [&](const char* key) -> std::string {
        if (line.rfind(key, 0) != 0) return "";
        const size_t c = line.find(':');
        if (c == std::string::npos) return "";
        const size_t v = line.find_first_not_of(" \t", c + 1);
        return v == std::string::npos ? "" : line.substr(v);
    };
    while (std::getline(f, line)) {
        if (std::string m = value("model name"); !m.empty()) return m;
        // ARM's /proc/cpuinfo has no model name: its implementer and part numbers name the core
        // (e.g. 0x41 0xd0c: Arm Neoverse N1).
        if (std::string v = value("CPU implementer"); !v.empty() && implementer.empty())
            implementer = v;
        if (std::string v = value("CPU part"); !v.empty() && part.empty()) part = v;
    }
    if (!implementer.empty()) return "ARM CPU implementer " + implementer + " part " + part;
    return "unknown";
}

std::string cpu_simd_features() {
    std::string out;
    auto add = [&](const char* name, bool has) {
        if (!has) return;
        if (!out.empty()) out += ' ';
        out += name;
    };
#if HWY_ARCH_X86
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
#elif HWY_ARCH_ARM_A64 && defined(__linux__)
    // The kernel's hwcaps (the bits of Linux's arch/arm64/include/uapi/asm/hwcap.h, spelled out so
    // that older headers do not matter), named as /proc/cpuinfo's "Features" line names them.
    const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    add("asimd", (hw & (1UL << 1)) != 0);      // HWCAP_ASIMD
    add("aes", (hw & (1UL << 3)) != 0);        // HWCAP_AES (Highway's NEON target needs it)
    add("asimdhp", (hw & (1UL << 10)) != 0);   // HWCAP_ASIMDHP: fp16 arithmetic
    add("asimddp", (hw & (1UL << 20)) != 0);   // HWCAP_ASIMDDP: int8 dot product
    add("bf16", (hw2 & (1UL << 14)) != 0);     // HWCAP2_BF16: BFDOT/BFMMLA
    add("i8mm", (hw2 & (1UL << 13)) != 0);     // HWCAP2_I8MM
    add("sve", (hw & (1UL << 22)) != 0);       // HWCAP_SVE
    add("sve2", (hw2 & (1UL << 1)) != 0);      // HWCAP2_SVE2
    add("svebf16", (hw2 & (1UL << 12)) != 0);  // HWCAP2_SVEBF16
#endif
    return out.empty() ? "none" : out;
}

CpuSignature cpu_signature() {
    CpuSignature s;
#if HWY_ARCH_X86
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        char v[13];
        std::memcpy(v, &b, 4);
        std::memcpy(v + 4, &d, 4);
        std::memcpy(v + 8, &c, 4);
        v[12] = '\0';
        s.vendor = v;
    }
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        // Display family and model (Intel SDM vol. 2A, CPUID leaf 1; AMD's the same): the
        // extended family is added for base family 15, the extended model prepended for 6 and 15.
        const int family = int((a >> 8) & 0xf), model = int((a >> 4) & 0xf);
        s.family = family == 0xf ? family + int((a >> 20) & 0xff) : family;
        s.model = family == 0x6 || family == 0xf ? (int((a >> 16) & 0xf) << 4) | model : model;
    }
#endif
    return s;
}

bool cpu_has_avx512_vnni() {
#if HWY_ARCH_X86
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512vnni") != 0;
    }();
    return has;
#else
    return false;
#endif
}

}  // namespace t6
#endif  // HWY_ONCE
