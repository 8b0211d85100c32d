// The GEMM wrapper equals a naive product for every transpose combination, including the
// one-row (matrix-vector) path used when decoding a single token.
#include <gtest/gtest.h>

#include "kernels/gemm.h"
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
