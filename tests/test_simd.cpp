// The run-time SIMD target choice (src/core/simd.h): names, the cap, and that Highway's dynamic
// dispatch follows it.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/simd.h"

using namespace t6;

TEST(Simd, TargetNamesRoundTripAndBadNamesFailWithOneLine) {
    for (SimdTarget t : simd_arch_targets())
        EXPECT_EQ(parse_simd_target(simd_target_name(t), "x"), t);
#if defined(__aarch64__)
    const char* expected = "(expected scalar, neon, sve or sve2)";
    const char* foreign = "avx2";  // another architecture's target
#else
    const char* expected = "(expected scalar, avx2, avx512 or avx512bf16)";
    const char* foreign = "neon";
#endif
    for (const char* bad : {"avx1024", foreign}) {
        try {
            parse_simd_target(bad, "T6_SIMD");
            FAIL() << "no error for " << bad;
        } catch (const Error& e) {
            EXPECT_EQ(std::string(e.what()),
                      std::string("T6_SIMD: unknown SIMD target '") + bad + "' " + expected);
        }
    }
}

TEST(Simd, AvailableTargetsRunFromScalarToTheCpuBest) {
    const auto ts = simd_available_targets();
    ASSERT_FALSE(ts.empty());
    EXPECT_EQ(ts.front(), SimdTarget::scalar);
    EXPECT_EQ(ts.back(), simd_cpu_best());
    for (size_t i = 1; i < ts.size(); i++) EXPECT_LT(int(ts[i - 1]), int(ts[i]));
}

TEST(Simd, CapClampsToTheCpuAndHighwayDispatchFollowsIt) {
    const SimdTarget before = simd_target();
    {
        ScopedSimdTarget cap(SimdTarget::scalar);
        EXPECT_EQ(simd_target(), SimdTarget::scalar);
        EXPECT_EQ(simd_highway_target_name(), "SCALAR");
        EXPECT_FALSE(simd_native_bf16());
    }
    EXPECT_EQ(simd_target(), before);
    for (SimdTarget t : simd_available_targets()) {
        ScopedSimdTarget cap(t);
        EXPECT_EQ(simd_target(), t);
        EXPECT_EQ(simd_highway_target_name(), simd_highway_name_of(t)) << simd_target_name(t);
        EXPECT_EQ(simd_native_bf16(), t == SimdTarget::avx512bf16);
    }
    // Asking for more than the CPU has gives the CPU's best.
    ScopedSimdTarget cap(simd_arch_targets().back());
    EXPECT_EQ(simd_target(), simd_cpu_best());
}

TEST(Simd, HighwayNamesOfThisArchitecturesTargets) {
#if defined(__aarch64__)
    EXPECT_STREQ(simd_highway_name_of(SimdTarget::scalar), "SCALAR");
    EXPECT_STREQ(simd_highway_name_of(SimdTarget::neon), "NEON");
    EXPECT_STREQ(simd_highway_name_of(SimdTarget::sve2), "SVE2");
#else
    EXPECT_STREQ(simd_highway_name_of(SimdTarget::scalar), "SCALAR");
    EXPECT_STREQ(simd_highway_name_of(SimdTarget::avx2), "AVX2");
    EXPECT_STREQ(simd_highway_name_of(SimdTarget::avx512), "AVX3");
    EXPECT_STREQ(simd_highway_name_of(SimdTarget::avx512bf16), "AVX3");
#endif
}

TEST(Simd, CpuDescriptionIsNotEmpty) {
    EXPECT_FALSE(cpu_model_name().empty());
    EXPECT_FALSE(cpu_simd_features().empty());
}
