// The GEMM wrapper equals a naive product for every transpose combination, including the
// one-row (matrix-vector) path used when decoding a single token.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/flash_decode.h"
#include "kernels/gemm.h"
#include "kernels/gemm_backend.h"
#include "kernels/linear_bf16.h"
#include "test_util.h"

using namespace t6;

TEST(Gemm, MatchesNaiveForAllTransposesAndOneRow) {
    for (int M : {1, 3, 17})
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                const int N = 23, K = 31, lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 3,
                          ldc = N + 1;
                auto A = test::random_vector(size_t(ta ? K : M) * lda, 1);
                auto B = test::random_vector(size_t(tb ? N : K) * ldb, 2);
                auto C = test::random_vector(size_t(M) * ldc, 3);
                std::vector<float> ref = C;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int k = 0; k < K; k++)
                            s += double(ta ? A[k * lda + i] : A[i * lda + k]) *
                                 (tb ? B[j * ldb + k] : B[k * ldb + j]);
                        ref[i * ldc + j] = float(0.5 * s + 0.25 * C[i * ldc + j]);
                    }
                gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, C.data(), ldc);
                for (int i = 0; i < M; i++)
                    EXPECT_LT(test::rel_error(&C[i * ldc], &ref[i * ldc], N), 1e-6)
                        << "M=" << M << " ta=" << ta << " tb=" << tb << " row " << i;
            }
}

// A transposed B whose row stride is a multiple of 512 floats: oneDNN gets it through a copy with
// a padded stride (gemm.cpp, pad_transposed_b), which must not change the product. Large enough
// for the copy (N K >= 2^18), with K below the stride and K equal to it, beta 0 and 1.
TEST(Gemm, TransposedBWithA2KiBMultipleRowStrideMatchesNaive) {
    const int M = 5, N = 300;
    for (int K : {1000, 1024})
        for (float beta : {0.0f, 1.0f}) {
            const int ldb = 1024, lda = K, ldc = N;
            auto A = test::random_vector(size_t(M) * lda, 7);
            auto B = test::random_vector(size_t(N) * ldb, 8);
            auto C = test::random_vector(size_t(M) * ldc, 9);
            std::vector<float> ref = C;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) s += double(A[i * lda + k]) * B[j * ldb + k];
                    ref[i * ldc + j] = float(s + beta * C[i * ldc + j]);
                }
            gemm(false, true, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
            for (int i = 0; i < M; i++)
                EXPECT_LT(test::rel_error(&C[i * ldc], &ref[i * ldc], N), 1e-5)
                    << "K=" << K << " beta=" << beta << " row " << i;
        }
}

// The float32 backend is oneDNN on a CPU with AVX-512 (its sgemm was faster on Zen 4, Zen 5 and an
// AVX-512 Xeon); elsewhere OpenBLAS, unless the kernel OpenBLAS picked lacks AVX2+FMA on a CPU that
// has them (OpenBLAS 0.3.21 gives a 5th-generation Xeon its Prescott SSE3 kernel).
TEST(GemmBackend, AutoTakesOneDnnWithAvx512OrWhenOpenBlasPickedAKernelBelowTheCpu) {
    for (const char* core : {"Haswell", "SKYLAKEX", "Cooperlake", "Zen", "SapphireRapids"}) {
        EXPECT_TRUE(openblas_core_has_fma(core)) << core;
        EXPECT_EQ(gemm_backend_auto(core, true), GemmBackend::openblas) << core;
        EXPECT_EQ(gemm_backend_auto(core, true, true), GemmBackend::onednn) << core;
    }
    for (const char* core : {"Prescott", "Nehalem", "Sandybridge", "Core2", "?", ""}) {
        EXPECT_FALSE(openblas_core_has_fma(core)) << core;
        EXPECT_EQ(gemm_backend_auto(core, true), GemmBackend::onednn) << core;
        EXPECT_EQ(gemm_backend_auto(core, true, true), GemmBackend::onednn) << core;
        EXPECT_EQ(gemm_backend_auto(core, false), GemmBackend::openblas) << core;
    }
    // The backend in force names itself in the kernel description benchmarks print.
    const std::string name = gemm_kernel_name();
    EXPECT_NE(name.find(gemm_backend() == GemmBackend::onednn ? "oneDNN" : "OpenBLAS"),
              std::string::npos)
        << name;
}

// The bf16-weight linear layer equals a double-precision product over the bf16-rounded weights
// (and the float32 few-rows kernel one over the float32 weights),
// for one, two and several rows (the three register tilings), ragged C and OC, beta 0 and 1.
TEST(LinearBf16, MatchesNaiveOverRoundedWeights) {
    for (int N : {1, 2, 3, 9})
        for (int C : {16, 37, 768})
            for (int OC : {1, 70})
                for (float beta : {0.0f, 1.0f}) {
                    auto x = test::random_vector(size_t(N) * C, 4);
                    auto w = test::random_vector(size_t(OC) * C, 5);
                    auto out = test::random_vector(size_t(N) * OC, 6);
                    std::vector<uint16_t> wb(w.size());
                    to_bf16(wb.data(), w.data(), w.size());
                    std::vector<float> ref(out.size());
                    for (int n = 0; n < N; n++)
                        for (int o = 0; o < OC; o++) {
                            double s = beta * out[n * OC + o];
                            for (int c = 0; c < C; c++)
                                s += double(x[n * C + c]) * bf16_to_float(wb[size_t(o) * C + c]);
                            ref[n * OC + o] = float(s);
                        }
                    std::vector<float> out32 = out, ref32(out.size());
                    for (int n = 0; n < N; n++)
                        for (int o = 0; o < OC; o++) {
                            double s = beta * out[n * OC + o];
                            for (int c = 0; c < C; c++)
                                s += double(x[n * C + c]) * w[size_t(o) * C + c];
                            ref32[n * OC + o] = float(s);
                        }
                    linear_bf16(out.data(), x.data(), wb.data(), N, C, OC, beta);
                    EXPECT_LT(test::rel_error(out.data(), ref.data(), ref.size()), 1e-6)
                        << "N " << N << " C " << C << " OC " << OC << " beta " << beta;
                    // The float32 kernel for a few rows, over the unrounded weights.
                    linear_f32_few_rows(out32.data(), x.data(), w.data(), N, C, OC, beta);
                    EXPECT_LT(test::rel_error(out32.data(), ref32.data(), ref32.size()), 1e-6)
                        << "f32 N " << N << " C " << C << " OC " << OC << " beta " << beta;
                    // The rounding itself: bf16 keeps 8 significant bits.
                    for (size_t i = 0; i < w.size(); i++)
                        ASSERT_LE(std::fabs(bf16_to_float(wb[i]) - w[i]), std::fabs(w[i]) / 256);
                }
}
