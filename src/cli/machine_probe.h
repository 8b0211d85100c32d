// This machine's speed, measured now, for the rooflines of the benchmarks: streaming read
// bandwidth (a vectorised sum over a large buffer, all threads, each reading its share as one or
// several sequential streams; fma_probe.cpp) and the fp32 FMA peak of the SIMD
// target in force (fma_probe.cpp: independent chains of fused multiply-adds on the target's
// widest vectors, all threads), beside the GEMM rate of gemm_probe.h. The shared machine's speed
// drifts within minutes, so benchmarks probe in the same run as they measure.
#pragma once
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

#include "core/buffer.h"

namespace t6::cli {

// fp32 FLOP/s of the SIMD target in force (simd_target(); scalar: one lane): every thread runs
// `iters` rounds of 12 independent vector FMAs (2 FLOPs per lane each); best of `reps`.
double measure_fma_peak(int reps = 3, long iters = 1L << 21);
// float lanes of the widest vector of the target in force (what measure_fma_peak uses).
int fma_probe_lanes();
// bf16 dot-product FLOP/s (vdpbf16ps: 4 FLOPs per float32 lane, the rate of the decoding kernels'
// native bf16 paths) when the target in force has AVX-512 BF16 (simd_native_bf16), else 0: every
// thread runs `iters` rounds of 12 independent 512-bit vdpbf16ps; best of `reps`.
double measure_bf16_dot_peak(int reps = 3, long iters = 1L << 21);

// Streaming read bandwidth (bytes/s) over a buffer of `bytes`, all threads: the best of `reps`
// rounds of 4 patterns (each thread's share read as 1, 4, 8 or 16 streams side by side, on the
// SIMD target in force); the buffer is kept so that the probe can run again cheaply. The buffer
// is allocated as the streamed model buffers are (core/buffer.h: 64-byte aligned, on huge
// pages), and every stream starts on a cache line, so that no load of the sum straddles two
// lines: from a std::vector (16 bytes past a line) the 512-bit loads all straddle, and on Zen 5
// the AVX-512 probe then read 58-64 GB/s where the aligned one reads 84-90 (session 52).
class ReadBandwidthProbe {
  public:
    explicit ReadBandwidthProbe(size_t bytes = size_t(256) << 20);
    double measure(int reps = 3);

  private:
    AlignedArray<float> a_;
};

// The SIMD target in force and the Highway target its kernels dispatch to, e.g.
// "avx512 (Highway AVX3)", for the first lines of a benchmark.
std::string simd_summary();
// Adds simd_target and simd_highway_target to a benchmark's JSON object.
void add_simd_fields(nlohmann::json& j);

}  // namespace t6::cli
