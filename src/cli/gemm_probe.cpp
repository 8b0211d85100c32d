#include "cli/gemm_probe.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "cli/format.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/timing.h"

namespace t6::cli {

double measure_gemm_gflops(MatmulPrecision precision, int reps, int M, bool best) {
    const int N = 3072, K = 768;
    T6_CHECK(reps > 0 && M > 0);
    FloatBuffer a(size_t(M) * K), b(size_t(N) * K), c(size_t(M) * N);
    for (size_t i = 0; i < a.size(); i++) a[i] = float(i % 13) * 0.01f;
    for (size_t i = 0; i < b.size(); i++) b[i] = float(i % 7) * 0.02f;
    const ScopedMatmulPrecision scope(precision);
    // Untimed calls first, for at least a quarter of a second: they warm caches and JIT, and
    // oneDNN's sgemm needs about ten calls to reach its rate (gemm_backend.h); a probe taken
    // cold would understate the rate the steps it is compared with run at.
    const auto warm = std::chrono::steady_clock::now();
    do {
        gemm(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
    } while (seconds_since(warm) < 0.25);
    std::vector<double> secs;
    for (int r = 0; r < reps; r++) {
        const auto t0 = std::chrono::steady_clock::now();
        gemm(false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
        secs.push_back(seconds_since(t0));
    }
    const double t = best ? *std::min_element(secs.begin(), secs.end()) : median(secs);
    return 2.0 * M * N * K / t / 1e9;
}

std::vector<MatmulPrecision> parse_precision_list(const std::string& s, const std::string& where) {
    std::vector<MatmulPrecision> out;
    for (const std::string& item : split_list(s)) {
        const MatmulPrecision p = parse_matmul_precision(item, where);
        bool seen = false;
        for (MatmulPrecision q : out) seen |= q == p;
        if (!seen) out.push_back(p);
    }
    return out;
}

void GemmProbes::take(MatmulPrecision precision) {
    f32.push_back(measure_gemm_gflops(MatmulPrecision::f32));
    if (precision == MatmulPrecision::bf16) bf16.push_back(measure_gemm_gflops(precision));
}

void add_measured_gemm_rates(nlohmann::json& row, MatmulPrecision precision,
                             const GemmProbes& probes) {
    const double achieved = row.at("achieved_gflops").get<double>();
    const double f32 =
        probes.f32.empty() ? measure_gemm_gflops(MatmulPrecision::f32) : median(probes.f32);
    row["gemm_gflops_measured_f32"] = f32;
    row["mfu_vs_measured_f32_gemm"] = achieved / f32;
    if (!probes.f32.empty()) {
        row["gemm_probes"] = probes.f32.size();
        row["gemm_gflops_measured_f32_min"] =
            *std::min_element(probes.f32.begin(), probes.f32.end());
        row["gemm_gflops_measured_f32_max"] =
            *std::max_element(probes.f32.begin(), probes.f32.end());
    }
    if (precision == MatmulPrecision::bf16) {
        const double bf16 =
            probes.bf16.empty() ? measure_gemm_gflops(precision) : median(probes.bf16);
        row["gemm_gflops_measured_bf16"] = bf16;
        row["mfu_vs_measured_bf16_gemm"] = achieved / bf16;
    }
}

void print_gemm_header(double peak_gflops, const std::vector<MatmulPrecision>& precisions,
                       const char* when) {
    std::printf("GEMM: %s, threads: %d (OpenMP wait policy %s)\n", gemm_kernel_name().c_str(),
                num_threads(), omp_wait_policy().c_str());
    for (MatmulPrecision mp : precisions)
        if (mp == MatmulPrecision::bf16)
            std::printf("bf16 GEMM: %s\n", gemm_bf16_kernel_name().c_str());
    std::printf(
        "MFU: against %.0f GFLOP/s (nominal fp32) and, as MFU_now, against the fp32 GEMM rate "
        "measured %s\n",
        peak_gflops, when);
}

}  // namespace t6::cli
