// The run-time SIMD target choice (src/core/simd.h): names, the cap, and that Highway's dynamic
// dispatch follows it.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/simd.h"

using namespace t6;

TEST(Simd, TargetNamesRoundTripAndBadNamesFailWithOneLine) {
    for (SimdTarget t :
         {SimdTarget::scalar, SimdTarget::avx2, SimdTarget::avx512, SimdTarget::avx512bf16})
        EXPECT_EQ(parse_simd_target(simd_target_name(t), "x"), t);
    try {
        parse_simd_target("avx1024", "T6_SIMD");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "T6_SIMD: unknown SIMD target 'avx1024' (expected scalar, avx2, avx512 or "
                  "avx512bf16)");
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
        const char* hwy = t == SimdTarget::scalar ? "SCALAR"
                          : t == SimdTarget::avx2 ? "AVX2"
                                                  : "AVX3";
        EXPECT_EQ(simd_highway_target_name(), hwy) << simd_target_name(t);
        EXPECT_EQ(simd_native_bf16(), t == SimdTarget::avx512bf16);
    }
    // Asking for more than the CPU has gives the CPU's best.
    ScopedSimdTarget cap(SimdTarget::avx512bf16);
    EXPECT_EQ(simd_target(), simd_cpu_best());
}

TEST(Simd, CpuDescriptionIsNotEmpty) {
    EXPECT_FALSE(cpu_model_name().empty());
    EXPECT_FALSE(cpu_simd_features().empty());
}
