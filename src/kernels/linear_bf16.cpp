// Few-row linear layers (the decoding GEMV): out[n,o] = beta * out[n,o] + sum_c inp[n,c] W[o,c],
// W float32 or bf16 (widened exactly to float32: bits << 16), float32 accumulation.
//
// Written once against Google Highway and compiled per target (foreach_target.h); the best target
// allowed by simd_target() runs (HWY_DYNAMIC_DISPATCH). The register tiling is
// linear_tiling-inl.h's (shared with the q8 / q4 layers of quant_linear.cpp); this file gives it
// the dense weight rows: one vector of L weights per load, one cache line of the next tile's rows
// prefetched per 64 bytes read. HWY_SCALAR runs the plain scalar loop: the reference. Work is
// split over OpenMP threads in groups of 64 outputs.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/bf16.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/linear_bf16.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/linear_tiling-inl.h"

HWY_BEFORE_NAMESPACE();
namespace t6::HWY_NAMESPACE {
namespace {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int kGroup = 64;  // outputs per parallel work item (a multiple of every OR)

inline float WeightValue(float w) {
    return w;
}
inline float WeightValue(uint16_t w) {
    return bf16_to_float(w);
}

// Dense rows of WT (float or bf16 bits), C columns each: the weight source of the tiling.
template <typename WT>
struct DenseSrc {
    using Row = const WT*;
    const WT* W;
    int C;
    Row RowAt(int o) const { return W + size_t(o) * C; }
    static int Step(int L) { return L; }
    static float At(Row w, int c) { return WeightValue(w[c]); }
#if HWY_TARGET != HWY_SCALAR
    static HWY_INLINE tiling::VF Load(tiling::DF d, Row w, int c) {
        if constexpr (sizeof(WT) == 4) {
            return hn::LoadU(d, w + c);
        } else {
            const hn::Rebind<uint16_t, tiling::DF> d16;
            const hn::RebindToUnsigned<tiling::DF> du;
            return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, w + c))));
        }
    }
    // One cache line of the next tile's row per 64 bytes of this one's.
    static HWY_INLINE void Prefetch(Row w, int c) {
        if ((c * sizeof(WT)) % 64 == 0) __builtin_prefetch(w + c);
    }
#endif
};

template <typename WT>
void FewRows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta) {
    if (N <= 0 || OC <= 0) return;
    const int groups = (OC + kGroup - 1) / kGroup;
    const DenseSrc<WT> src{W, C};
#pragma omp parallel for schedule(dynamic, 2)
    for (int g = 0; g < groups; g++) {
        const int o0 = g * kGroup, o1 = std::min(OC, o0 + kGroup);
        tiling::GroupRows(src, out, inp, N, C, OC, beta, o0, o1);
    }
}

}  // namespace

void LinearBf16(float* out, const float* inp, const uint16_t* W, int N, int C, int OC, float beta) {
    FewRows(out, inp, W, N, C, OC, beta);
}
void LinearF32FewRows(float* out, const float* inp, const float* W, int N, int C, int OC,
                      float beta) {
    FewRows(out, inp, W, N, C, OC, beta);
}

}  // namespace t6::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/linear_bf16.h"

namespace t6 {

HWY_EXPORT(LinearBf16);
HWY_EXPORT(LinearF32FewRows);

void linear_bf16(float* out, const float* inp, const uint16_t* W, int N, int C, int OC,
                 float beta) {
    HWY_DYNAMIC_DISPATCH(LinearBf16)(out, inp, W, N, C, OC, beta);
}

void linear_f32_few_rows(float* out, const float* inp, const float* W, int N, int C, int OC,
                         float beta) {
    HWY_DYNAMIC_DISPATCH(LinearF32FewRows)(out, inp, W, N, C, OC, beta);
}

}  // namespace t6
#endif  // HWY_ONCE
