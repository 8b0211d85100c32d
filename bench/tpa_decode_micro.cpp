// Micro-benchmark of FlashTPA decoding alone (kernels/flash_decode.h flash_tpa_decode), f32 cache,
// small-t6 shapes (H=34, D=64, R_Q=6, R_K=R_V=2): `layers` synthetic caches of `ctx` records each,
// one decode query per cache per sweep, like one decode step of a model with that many layers.
// Prints the best and median sweep (ms), ns per cached token and layer, and an output checksum.
// A loaded machine inflates the median; the best of many sweeps is the load-robust figure.
// Not part of the default build:
//   g++ -O2 -std=c++20 -fopenmp -Isrc bench/tpa_decode_micro.cpp build/libt6core.a -lhwy -o
//   /tmp/tpa_micro /tmp/tpa_micro CTX LAYERS THREADS SWEEPS      (T6_SIMD=avx2 caps the target)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/flash_decode.h"

int main(int argc, char** argv) {
    const int ctx = argc > 1 ? std::atoi(argv[1]) : 65536;
    const int layers = argc > 2 ? std::atoi(argv[2]) : 12;
    const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
    const int sweeps = argc > 4 ? std::atoi(argv[4]) : 5;
    omp_set_num_threads(threads);
    t6::TpaCacheDims dm;
    dm.H = 34, dm.Rk = 2, dm.Rv = 2, dm.D = 64;
    const int Rq = 6;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<std::vector<float>> caches(layers, std::vector<float>(size_t(ctx) * dm.rec()));
    for (auto& c : caches)
        for (auto& x : c) x = 0.5f * nd(rng);
    std::vector<float> A(size_t(dm.H) * Rq), B(size_t(Rq) * dm.D), out(size_t(dm.H) * dm.D);
    for (auto& x : A) x = nd(rng);
    for (auto& x : B) x = nd(rng);
    t6::TpaQuery q{A.data(), B.data(), Rq};
    std::vector<double> ms;
    double check = 0.0;
    for (int s = 0; s < sweeps; s++) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int l = 0; l < layers; l++) {
            const float* c = caches[l].data();
            float* o = out.data();
            t6::flash_tpa_decode<float>(&o, &q, &c, &ctx, 1, dm, 0.125f);
            if (s == 0)
                for (float v : out) check += v;
        }
        ms.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count());
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    const double best = sorted[0], med = sorted[sorted.size() / 2];
    std::printf(
        "ctx %d layers %d threads %d: best %.2f ms median %.2f ms  best %.2f ns/token-layer  "
        "checksum %.9g\n",
        ctx, layers, threads, best, med, best * 1e6 / (double(ctx) * layers), check);
    return 0;
}
