// Few-row linear layers (the decoding GEMV): out[n,o] = beta * out[n,o] + sum_c inp[n,c] W[o,c],
// W float32 or bf16 (widened exactly to float32: bits << 16), float32 accumulation.
//
// Written once against Google Highway and compiled per target (foreach_target.h); the best target
// allowed by simd_target() runs (HWY_DYNAMIC_DISPATCH). The register tiling is
// linear_tiling-inl.h's (shared with the q8 / q4 layers of quant_linear.cpp); this file gives it
// the dense weight rows: one vector of L weights per load and, per 64 bytes read, one cache line
// of the next tile's rows prefetched into L1 and the line kFarRows rows beyond it into L2 (as the
// int8 GEMV does, int8_linear.cpp). One input row (batch-1 decoding) takes its own loop instead
// (StreamRuns): four runs of rows read side by side, each run a stream. HWY_SCALAR runs the plain
// scalar loop: the reference. Work is split over OpenMP threads in one contiguous range of outputs
// each, so that each thread streams and prefetches through its range in order, taken in tasks so
// that a thread done first can take the other's last ones (core/task_runs.h). Before (dynamic
// 64-row groups, no L2 prefetch), the linear phase of `t6 bench decode` ran at 55-67% (bf16) and
// 73-84% (float32) of its floor (the weights' bytes over the probed read bandwidth); after, 77-82%
// and 78-91% (Zen 4, docs/decode-bench.md, session 17); with StreamOneRow, 91-95% (float32, Xeon
// with AVX-512, session 32: one run); the four runs, session 37 (on the Zen 5 machine, where a
// plain read with one stream per core got 80-92% of four streams' rate, and the one-stream GEMV
// 60-79%).

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <omp.h>

#include "core/simd.h"  // the T6_SIMD cap (kSimdCapApplied)
#include "core/task_runs.h"
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

constexpr int kAlign = 16;    // threads' ranges start at multiples of this (and of every OR)
constexpr int kFarRows = 16;  // rows beyond the next tile's prefetched into L2 (int8_linear.cpp's)

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
    ptrdiff_t far = 0;        // numbers beyond the next tile's line also prefetched (into L2)
    const WT* end = nullptr;  // the end of this thread's rows: no far prefetch past it
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
    // One cache line of the next tile's row per 64 bytes of this one's (into L1), and the line
    // `far` numbers beyond it (kFarRows rows on, into L2) while that is inside the range.
    HWY_INLINE void Prefetch(Row w, int c) const {
        if ((c * sizeof(WT)) % 64 != 0) return;
        __builtin_prefetch(w + c);
        if (end - (w + c) > far) __builtin_prefetch(w + c + far, 0, 2);  // (no pointer past end)
    }
#endif
};

#if HWY_TARGET != HWY_SCALAR
// One input row (a batch-1 decoding step), as it was read until session 36 (StreamRuns<1>): the
// thread's weight rows [o0, o1) one contiguous run of memory, read in order one row at a time (U
// vector accumulators, a horizontal sum per row) with every line prefetched into L1 kStreamAhead
// bytes before it is read. The register tiling reads 16 rows side by side (16 streams) and
// prefetches the next tile's rows into L1 (48 KiB on at C = 768: L1's size). On a Xeon with AVX-512
// (48 KiB L1, 2 MiB L2 per core), two threads, small-t6's 61 matrices of a decoding step (497 MB
// float32, 249 MB bf16), medians of 25 passes, 3 alternating runs, ms: float32 AVX3 17.45-18.32
// -> 15.28-15.71 (28 -> 32 GB/s; the read probe: 33-35), AVX2 17.02-17.26 -> 14.86-15.03; bf16
// AVX3 8.84-9.05 -> 7.99-8.31, AVX2 8.79-9.43 -> 7.63-7.76. Prefetch distance (float32): AVX3 2
// KiB 15.2-15.5, 3 KiB 15.5-15.9; AVX2 2 KiB 15.3-15.9, 3 KiB 14.3-15.1; 4 KiB worse on both (4 KiB
// on is the same L1 set). Without the prefetch, one row at a time read 25-26 GB/s, below the tiling
// (docs/decode-bench.md, session 32).
constexpr ptrdiff_t kStreamAhead = HWY_TARGET == HWY_AVX2 ? 3072 : 2048;

// Vectors per row and step: at least one 64-byte line of weights (AVX2 bf16: 4), and 2.
template <typename WT>
constexpr int StepVectors() {
    constexpr int L = int(hn::MaxLanes(tiling::DF()));
    return 64 / int(L * sizeof(WT)) > 2 ? 64 / int(L * sizeof(WT)) : 2;
}

// One input row over K streams: the thread's rows [o0, o1) cut into K runs of `per` rows, row i
// of every run read side by side (K rows at once, their vectors interleaved), each run prefetched
// into L1 kStreamAhead bytes before it is read; the last (o1 - o0) % K rows as one run. A row's
// sum does not depend on K (U accumulators, then a horizontal sum), so the outputs are bit for
// bit those of one run, the loop of sessions 32-36 ("StreamOneRow"). One stream per core left
// memory bandwidth unused on the Zen 5 machine: small-t6's 61 matrices of a decoding step, two
// threads, passes alternating with a plain read of the same bytes (1 stream per thread 34-47
// GB/s, 4 streams 41-56): one run read float32 at 30-40 GB/s. Per pass, paired, 4 runs took
// 0.69-0.73 of one run's time on AVX3 and 0.84-0.85 on AVX2 (float32), 0.58-0.61 and 0.76-0.78
// (bf16); a first version with one accumulator per row took 0.76 and 0.86 with 8 runs (float32),
// 0.80 and 0.77-0.81 with 4, 0.88 and 0.94 with 2. The q8 / q4 tiles (quant_linear.cpp) read 8
// (AVX2: 4) neighbouring rows at once already and took 1.01-1.13 times as long when their rows
// came from 4 runs (docs/decode-bench.md, session 37); since session 53 one q8 input row is read
// as here, a row of each of four runs at a time (quant_linear.cpp, Q8StreamRuns), which measured
// faster than the tiles. Without the prefetches float32 rows read 2-10% faster on the Zen 5
// machine in a throw-away copy (session 53) but not in the decoding benchmark: kept.
template <int K, typename WT>
void StreamRuns(float* out, const float* x, const WT* W, int C, float beta, int o0, int o1) {
    const tiling::DF d;
    constexpr int L = int(hn::MaxLanes(tiling::DF()));
    constexpr int U = StepVectors<WT>();
    constexpr int kStepBytes = U * L * int(sizeof(WT));
    const int per = (o1 - o0) / K;
    // Prefetches stop at the end of the thread's rows (addresses compared as integers).
    const uintptr_t end = reinterpret_cast<uintptr_t>(W + size_t(o1) * C);
    for (int i = 0; i < per; i++) {
        const WT* w[K];
        tiling::VF a[K][U];
#pragma GCC unroll 8
        for (int k = 0; k < K; k++) {
            w[k] = W + size_t(o0 + k * per + i) * C;
#pragma GCC unroll 8
            for (int u = 0; u < U; u++) a[k][u] = hn::Zero(d);
        }
        int c = 0;
        for (; c + U * L <= C; c += U * L) {
            // This step reads kStepBytes (64 or 128) of each row: the lines kStreamAhead bytes on.
#pragma GCC unroll 8
            for (int k = 0; k < K; k++) {
                const uintptr_t p = reinterpret_cast<uintptr_t>(w[k] + c) + kStreamAhead;
                for (int b = 0; b < kStepBytes; b += 64)
                    if (p + b < end) __builtin_prefetch(reinterpret_cast<const void*>(p + b));
            }
#pragma GCC unroll 8
            for (int u = 0; u < U; u++) {
                const tiling::VF xv = hn::LoadU(d, x + c + u * L);
#pragma GCC unroll 8
                for (int k = 0; k < K; k++)
                    a[k][u] = hn::MulAdd(xv, DenseSrc<WT>::Load(d, w[k], c + u * L), a[k][u]);
            }
        }
        for (; c + L <= C; c += L) {
            const tiling::VF xv = hn::LoadU(d, x + c);
#pragma GCC unroll 8
            for (int k = 0; k < K; k++)
                a[k][0] = hn::MulAdd(xv, DenseSrc<WT>::Load(d, w[k], c), a[k][0]);
        }
#pragma GCC unroll 8
        for (int k = 0; k < K; k++) {
#pragma GCC unroll 8
            for (int u = 1; u < U; u++) a[k][0] = hn::Add(a[k][0], a[k][u]);
            float s = hn::GetLane(hn::SumOfLanes(d, a[k][0]));
            for (int cc = c; cc < C; cc++) s += x[cc] * DenseSrc<WT>::At(w[k], cc);
            const int o = o0 + k * per + i;
            out[o] = (beta != 0.0f ? beta * out[o] : 0.0f) + s;
        }
    }
    if constexpr (K > 1)
        if (per * K < o1 - o0) StreamRuns<1>(out, x, W, C, beta, o0 + per * K, o1);
}
#endif

// Outputs [o0, o1) of one thread: one input row as four streams, more on the register tiling.
template <typename WT>
void ThreadRows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta, int o0,
                int o1) {
#if HWY_TARGET != HWY_SCALAR
    // 8 accumulators: 4 runs of 2 (AVX2 bf16: 2 runs of 4).
    if (N == 1) return StreamRuns<8 / StepVectors<WT>()>(out, inp, W, C, beta, o0, o1);
#endif
    const DenseSrc<WT> src{W, C, ptrdiff_t(kFarRows) * C, W + size_t(o1) * C};
    tiling::GroupRows(src, out, inp, N, C, OC, beta, o0, o1);
}

template <typename WT>
void FewRows(float* out, const float* inp, const WT* W, int N, int C, int OC, float beta) {
    if (N <= 0 || OC <= 0) return;
    // One contiguous range of outputs per thread, balanced in units of kAlign rows, so that each
    // thread streams its rows in order and prefetches through its whole range.
    const int units = (OC + kAlign - 1) / kAlign;
    const bool parallel = size_t(OC) * C >= (size_t(1) << 16);  // small: one thread
    // Each thread's range is a run of tasks taken front to back, and a thread done first takes
    // the other's last tasks (core/task_runs.h). A row's sum does not depend on the rows read
    // beside it (StreamRuns; the tiles start at multiples of kAlign rows), so the outputs are the
    // same whoever runs them. The two threads' halves of the same rows took 8.3 and 9.0 ms per
    // pass of 49 small-model matrices (equal bytes; which thread was slower changed from run to
    // run), and the fixed split waited for the slower one (docs/decode-bench.md, session 44). (The
    // q8 / q4 layers keep one range per thread: with these tasks their linear phase took 1.02-1.06
    // of the time, session 44.)
    parallel_unit_runs(units, parallel, [&](int u0, int u1) {
        const int o0 = u0 * kAlign, o1 = std::min(OC, u1 * kAlign);
        if (o0 < o1) ThreadRows(out, inp, W, N, C, OC, beta, o0, o1);
    });
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
