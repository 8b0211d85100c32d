// Target-independent pieces shared by the decoding kernels (flash_tpa_decode.cpp,
// flash_kv_decode.cpp, flash_mla_decode.cpp): the online-softmax partial of one task, portable
// helpers for the plain-loop fallbacks, and the split of every sequence's cache into tasks across
// threads with the final log-sum-exp merge (flash-decoding): with partials (m_k, l_k, acc_k) of
// the tasks k of one sequence, o = sum_k e^{m_k - M} acc_k / sum_k e^{m_k - M} l_k, M = max_k m_k.
// The per-target (Google Highway) vector code is in flash_decode-inl.h. Internal to src/kernels.
#pragma once
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/task_runs.h"
#include "kernels/bf16.h"
#include "kernels/flash_decode.h"
#include "kernels/q8_cache.h"
#include "kernels/vec_math.h"

namespace t6::flash_detail {

constexpr int kBlock = 32;  // cache tokens per online-softmax block

// Online-softmax partial result of one task: per head running max m, sum l and output acc.
struct Partial {
    float* m;
    float* l;
    float* acc;  // (H, Dv)
};

// Records [j0, j0+n) as float: the cache itself when it is float, else converted into buf.
template <typename T>
const float* records_f32(const T* cache, long rec, int j0, int n, std::vector<float>& buf) {
    if constexpr (std::is_same_v<T, float>) {
        (void)buf;
        return cache + long(j0) * rec;
    } else {
        const size_t count = size_t(n) * rec;
        if (buf.size() < count) buf.resize(count);
        const T* src = cache + long(j0) * rec;
#pragma omp simd
        for (size_t i = 0; i < count; i++) buf[i] = bf16_to_float(src[i]);
        return buf.data();
    }
}

using detail::axpy;  // kernels/vec_math.h: the row helpers of the plain-loop code
using detail::dot;

// Online softmax step for one head: scores s[0..n) become probabilities relative to the new
// running max; acc is rescaled. Returns nothing; updates m, l.
// Portable (plain loops) for the fallback kernels; the Highway kernels do this lane-wise.
inline void softmax_update(float* s, int n, float& m, float& l, float* acc, int Dv) {
    float mb = -INFINITY;
    for (int j = 0; j < n; j++) mb = std::max(mb, s[j]);
    const float mnew = std::max(m, mb);
    const float alpha = std::exp(m - mnew);  // m = -inf on the first block: alpha = 0
    float sum = 0.0f;
    for (int j = 0; j < n; j++) sum += (s[j] = std::exp(s[j] - mnew));
    l = l * alpha + sum;
    if (alpha != 1.0f)
        for (int d = 0; d < Dv; d++) acc[d] *= alpha;
    m = mnew;
}

// p rounded up to the next 64-byte boundary: scratch that vector stores fill, so that no store
// straddles two cache lines (a straddling store costs two; std::vector memory is only 16-byte
// aligned). Callers allocate 64 bytes of slack.
template <typename T>
inline T* align64(T* p) {
    return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// flash_prefetch_l1() (flash_decode.h): set once while the program starts (AMD: true) and by
// set_flash_prefetch_l1; the kernels read it where it applies (float32 caches of FlashTPA, and of
// the flash K/V kernel with a head per KV head) into LineShare::to_l1 and NextBlock::to_l1.
extern std::atomic<bool> prefetch_to_l1;

// Cache lines [l0, l1) of each of the next block's n records (base, rec_bytes apart), prefetched
// while a value tile runs (flash_decode-inl.h), so the next block streams in during the
// arithmetic (into L1 where to_l1, else L2).
struct NextBlock {
    const char* base = nullptr;
    long rec_bytes = 0;
    int n = 0, l0 = 0, l1 = 0;
    bool to_l1 = false;
};

// Two bf16 numbers in one 32-bit lane, for vdpbf16ps: the lower half the even row's, the upper
// half the odd row's.
struct Bf16Pair {
    uint32_t bits;
};

// A task: the query of sequence `seq` over its cache records [j0, j1). The records up to `ahead`
// (>= j1) are the same thread's next tasks, which the kernel may prefetch into while it runs;
// `cont` (set when the task runs): the same thread's previous task ended at j0, so the kernel's
// prefetch has those records in flight already.
struct Task {
    int seq, j0, j1;
    int ahead = 0;
    bool cont = false;
};

// The tasks in runs, one per thread: run r is tasks [first[r], first[r + 1]).
struct TaskPlan {
    std::vector<Task> tasks;
    std::vector<int> first;
};

// An 8-bit cache (q8_cache.h) is read in place, a chunk of records at a time: the chunk's codes
// are dequantized with vector loads (int8 -> int32 -> float32 times the row scale) into a float
// scratch small enough to stay in L2 (at most 256 KB: 16..256 records, a multiple of 64 from 64
// on, so the kernels' blocks of 16/32/64 records fit whole; never across a cache block), and
// `f32(view, n)` runs the float kernel on those n records as a contiguous cache (large chunks:
// the kernels' per-call setup, e.g. transposing the query, is paid once per chunk).
// The online-softmax partial carries over from chunk to chunk, so the result is the float
// kernel's over the dequantized records (up to the order of float sums).
template <class F>
void q8_chunks(const CacheBlocks<int8_t>& cache, int j0, int j1, const Q8Layout& L, F&& f32) {
    thread_local std::vector<float> deq;
    int chunk = std::clamp(int(65536 / std::max(1L, L.numbers)) / 16 * 16, 16, 256);
    if (chunk >= 64) chunk = chunk / 64 * 64;
    for (int b0 = j0, n = 0; b0 < j1; b0 += n) {
        n = cache.block(b0, j1, chunk);
        if (deq.size() < size_t(n) * L.numbers) deq.resize(size_t(n) * L.numbers);
        q8_dequantize_records(deq.data(), cache.at(b0, L.bytes), n, L);
        f32(CacheBlocks<float>::contiguous(deq.data()), n);
    }
}

// Contiguous views (CacheBlocks::contiguous) of per-sequence cache pointers.
template <typename T>
std::vector<CacheBlocks<T>> contiguous_views(const T* const* cache, int nseq) {
    std::vector<CacheBlocks<T>> v(size_t(nseq > 0 ? nseq : 0));
    for (int i = 0; i < nseq; i++) v[size_t(i)] = CacheBlocks<T>::contiguous(cache[i]);
    return v;
}

// Splits the sequences' caches into one run of tasks per thread (flash_decode_split.cpp). Every
// task starts at a multiple of `align` records (FlashTPA over B_K grouped: 16) and ends at one
// or at its sequence's end.
TaskPlan make_tasks(const int* lens, int nseq, int threads, int align = 1);

// Runs range(task, partial, buf, scores) for every task in parallel, then merges the partials of
// each sequence into out[seq] (H, Dv). Each thread takes its own run's tasks from the front; a
// thread whose run is empty takes the last task left in the run with the most left (work
// stealing). A task is claimed by one compare-and-swap on its run's (front, back) pair, so each
// runs exactly once whatever the number of threads (core/task_runs.h).
// Each task has a partial of its own, merged in task order, so the result does not depend on
// which thread ran which task (a thread's tasks of one sequence sharing one partial, fewer to
// merge, measured faster: with the halving tail 0.933-0.974 of FlashTPA's time at 1K-64K records
// against 0.970-0.998 with the tail alone, AVX-512; but it made the last bits depend on the
// stealing: docs/decode-bench.md, session 41). The partials live in a buffer kept by the calling
// thread from call to call (the plan with a fresh zeroed one per call took 6.5-11.2 us of a
// 4K-record FlashTPA call), and the merge runs task by task over all heads.
template <typename RangeFn>
void run_split(float* const* out, const int* lens, int nseq, int H, int Dv, RangeFn range,
               int align = 1) {
    const TaskPlan plan = make_tasks(lens, nseq, parallel_threads(), align);
    const std::vector<Task>& tasks = plan.tasks;
    const size_t per = size_t(H) * (2 + Dv);
    // Task k's partial at parts + k * per. (The pointer, not the thread_local vector, is what the
    // threads use: each thread has its own.)
    thread_local std::vector<float> kept;
    if (kept.size() < tasks.size() * per) kept.resize(tasks.size() * per);
    float* const parts = kept.data();
    TaskRuns runs(plan.first);
    parallel_run([&](int me, int threads) {
        std::vector<float> buf, sc;
        int last = -1;  // the task this thread ran last
        bool stolen = false;
        for (int own = me;;) {
            // Own runs first (runs me, me + threads, ...), then steal from the fullest.
            const int k = runs.next(threads, own, stolen);
            if (k < 0) break;
            Task t = tasks[size_t(k)];
            t.cont =
                last >= 0 && tasks[size_t(last)].seq == t.seq && tasks[size_t(last)].j1 == t.j0;
            if (stolen) t.ahead = t.j1;  // the owner streams toward it from the front
            last = k;
            float* base = parts + size_t(k) * per;
            Partial p{base, base + H, base + 2 * H};
            std::fill(p.m, p.m + H, -INFINITY);
            std::fill(p.l, p.l + H, 0.0f);
            std::fill(p.acc, p.acc + size_t(H) * Dv, 0.0f);
            if (t.j1 > t.j0) range(t, p, buf, sc);
        }
    });
    // Combine: o_h = sum_k e^{m_k - M} acc_k / sum_k e^{m_k - M} l_k over the sequence's tasks k in
    // task order (for each number the same operations in the same order as head by head).
    std::vector<float> M(static_cast<size_t>(H)), L(static_cast<size_t>(H));
    for (int i = 0; i < nseq; i++) {
        float* o = out[i];
        std::fill(o, o + size_t(H) * Dv, 0.0f);
        std::fill(M.begin(), M.end(), -INFINITY);
        std::fill(L.begin(), L.end(), 0.0f);
        for (size_t k = 0; k < tasks.size(); k++)
            if (tasks[k].seq == i)
                for (int h = 0; h < H; h++)
                    M[size_t(h)] = std::max(M[size_t(h)], parts[k * per + size_t(h)]);
        for (size_t k = 0; k < tasks.size(); k++) {
            if (tasks[k].seq != i) continue;
            const float* base = parts + k * per;
            for (int h = 0; h < H; h++) {
                if (M[size_t(h)] == -INFINITY) continue;  // empty cache: output 0
                const float w = std::exp(base[h] - M[size_t(h)]);
                L[size_t(h)] += w * base[H + h];
                axpy(o + size_t(h) * Dv, w, base + 2 * H + size_t(h) * Dv, Dv);
            }
        }
        for (int h = 0; h < H; h++) {
            if (M[size_t(h)] == -INFINITY) continue;
            const float inv = 1.0f / L[size_t(h)];
            for (int d = 0; d < Dv; d++) o[size_t(h) * Dv + d] *= inv;
        }
    }
}

}  // namespace t6::flash_detail
