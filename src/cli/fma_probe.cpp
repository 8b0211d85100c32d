// The fp32 FMA peak probe (machine_probe.h) and the read bandwidth probe. The FMA loop is written
// once against Google Highway and compiled per target (foreach_target.h, as src/core/simd.cpp), so
// that under set_simd_target / T6_SIMD it runs the widest vectors of the target in force.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "cli/fma_probe.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace t6::cli::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// 12 independent FMA chains (enough to cover an FMA latency of 4-6 cycles on two pipes) for
// `iters` rounds; the sum of the lanes keeps the work alive. c <- c * a + b with a just below 1
// stays finite and normal.
float FmaChains(int64_t iters, float seed) {
    const hn::ScalableTag<float> d;
    const auto a = hn::Set(d, 0.99999994f), b = hn::Set(d, 1e-7f);
    auto c0 = hn::Set(d, seed), c1 = hn::Set(d, seed + 1), c2 = hn::Set(d, seed + 2);
    auto c3 = hn::Set(d, seed + 3), c4 = hn::Set(d, seed + 4), c5 = hn::Set(d, seed + 5);
    auto c6 = hn::Set(d, seed + 6), c7 = hn::Set(d, seed + 7), c8 = hn::Set(d, seed + 8);
    auto c9 = hn::Set(d, seed + 9), c10 = hn::Set(d, seed + 10), c11 = hn::Set(d, seed + 11);
    for (int64_t i = 0; i < iters; i++) {
        c0 = hn::MulAdd(c0, a, b);
        c1 = hn::MulAdd(c1, a, b);
        c2 = hn::MulAdd(c2, a, b);
        c3 = hn::MulAdd(c3, a, b);
        c4 = hn::MulAdd(c4, a, b);
        c5 = hn::MulAdd(c5, a, b);
        c6 = hn::MulAdd(c6, a, b);
        c7 = hn::MulAdd(c7, a, b);
        c8 = hn::MulAdd(c8, a, b);
        c9 = hn::MulAdd(c9, a, b);
        c10 = hn::MulAdd(c10, a, b);
        c11 = hn::MulAdd(c11, a, b);
    }
    const auto s = hn::Add(hn::Add(hn::Add(c0, c1), hn::Add(c2, c3)),
                           hn::Add(hn::Add(hn::Add(c4, c5), hn::Add(c6, c7)),
                                   hn::Add(hn::Add(c8, c9), hn::Add(c10, c11))));
    return hn::GetLane(hn::SumOfLanes(d, s));
}

// The read bandwidth probe's loop: the sum of `streams` sequential streams read side by side,
// stream q being a[q * len, (q + 1) * len); each round reads 4 vectors of every stream into 4
// accumulators. One stream read alone leaves the cores' bandwidth unused on some CPUs (a Xeon
// here: 12.7 GB/s per core from one stream, 14.5 from four, however wide the loads), and a single
// chain of vector adds is bound by the add's latency rather than by memory. `len` is a multiple
// of 4 vectors (the caller rounds it to 128 floats).
float SumStreams(const float* HWY_RESTRICT a, int64_t len, int64_t streams) {
    const hn::ScalableTag<float> d;
    const int64_t N = int64_t(hn::Lanes(d));
    auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
    for (int64_t i = 0; i < len; i += 4 * N) {
        for (int64_t q = 0; q < streams; q++) {
            const float* p = a + q * len + i;
            s0 = hn::Add(s0, hn::LoadU(d, p));
            s1 = hn::Add(s1, hn::LoadU(d, p + N));
            s2 = hn::Add(s2, hn::LoadU(d, p + 2 * N));
            s3 = hn::Add(s3, hn::LoadU(d, p + 3 * N));
        }
    }
    return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
}

int64_t FloatLanes() {
    return int64_t(hn::Lanes(hn::ScalableTag<float>()));
}

// The same 12 chains of vdpbf16ps (AVX-512 BF16: per float32 lane, the sum of two bf16 products
// added to the lane, 4 FLOPs), c <- c + a . b with a and b small bf16 pairs; 0 on other targets
// (the caller checks simd_native_bf16 first).
#if HWY_TARGET == HWY_AVX3
__attribute__((target(HWY_TARGET_STR ",avx512bf16"))) float Bf16DotChains(int64_t iters,
                                                                          float seed) {
    const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(1e-4f));
    __m512 c[12];
    for (int i = 0; i < 12; i++) c[i] = _mm512_set1_ps(seed + float(i));
    for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < 12; k++) c[k] = _mm512_dpbf16_ps(c[k], a, b);
    }
    __m512 s = c[0];
    for (int k = 1; k < 12; k++) s = _mm512_add_ps(s, c[k]);
    return _mm512_reduce_add_ps(s);
}
#else
float Bf16DotChains(int64_t, float) {
    return 0.0f;
}
#endif

}  // namespace t6::cli::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/machine_probe.h"
#include "core/simd.h"
#include "core/timing.h"

namespace t6::cli {

HWY_EXPORT(FmaChains);
HWY_EXPORT(FloatLanes);
HWY_EXPORT(Bf16DotChains);
HWY_EXPORT(SumStreams);

namespace {
constexpr int kChains = 12;

// Work per second of `chains` (one call per thread with the thread's number, `work_per_thread`
// FLOPs or bytes each, all threads at once): best of `reps`.
template <class Chains>
double best_parallel_rate(int reps, double work_per_thread, Chains chains) {
    double best = 0;
    for (int r = 0; r < reps; r++) {
        float sink = 0;
        int threads = 1;
        const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : sink)
        {
#pragma omp single
            threads = omp_get_num_threads();
            sink += chains(omp_get_thread_num());
        }
        const double s = seconds_since(t0);
        if (sink == 12345.678f) std::printf("?");  // keeps the sums alive
        best = std::max(best, work_per_thread * threads / s);
    }
    return best;
}
}  // namespace

int fma_probe_lanes() {
    return int(HWY_DYNAMIC_DISPATCH(FloatLanes)());
}

double measure_fma_peak(int reps, long iters) {
    const double lanes = fma_probe_lanes();
    return best_parallel_rate(reps, 2.0 * kChains * lanes * double(iters), [&](int thread) {
        return HWY_DYNAMIC_DISPATCH(FmaChains)(iters, float(thread));
    });
}

double measure_bf16_dot_peak(int reps, long iters) {
    if (!simd_native_bf16()) return 0.0;
    // 16 float32 lanes per vdpbf16ps, two multiply-adds each.
    return best_parallel_rate(reps, 4.0 * kChains * 16 * double(iters), [&](int thread) {
        return HWY_DYNAMIC_DISPATCH(Bf16DotChains)(iters, float(thread));
    });
}

ReadBandwidthProbe::ReadBandwidthProbe(size_t bytes) {
    a_.resize(std::max<size_t>(bytes / 4, 1024), /*huge_pages=*/true);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < a_.size(); i++) a_[i] = float(i & 7);
}

double ReadBandwidthProbe::measure(int reps) {
    // Every thread reads its contiguous share of the buffer as 1, 4, 8 or 16 streams, each a run
    // of whole 128-float rounds (the tail of a share is not read); the rate is the best of the
    // four patterns and of `reps` rounds (the floor of a benchmark must be a rate that some code
    // reaches, never above what the machine can read).
    constexpr int64_t kStreams[] = {1, 4, 8, 16};
    // Shares of whole cache lines (16 floats), so that every thread's streams start on a line.
    const int64_t share = int64_t(a_.size()) / std::max(1, omp_get_max_threads()) / 16 * 16;
    double best = 0;
    for (int rep = 0; rep < reps; rep++) {
        for (const int64_t streams : kStreams) {
            const int64_t run = share / streams / 128 * 128;
            if (run == 0) continue;
            const double bytes = 4.0 * double(streams * run);
            best = std::max(best, best_parallel_rate(1, bytes, [&](int thread) {
                                return HWY_DYNAMIC_DISPATCH(SumStreams)(a_.data() + share * thread,
                                                                        run, streams);
                            }));
        }
    }
    return best;
}

std::string simd_summary() {
    return std::string(simd_target_name(simd_target())) + " (Highway " +
           simd_highway_target_name() + ")";
}

void add_simd_fields(nlohmann::json& j) {
    j["simd_target"] = simd_target_name(simd_target());
    j["simd_highway_target"] = simd_highway_target_name();
}

}  // namespace t6::cli
#endif  // HWY_ONCE
