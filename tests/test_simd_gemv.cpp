// The Highway kernels of the decoding GEMV, bf16 conversion and the bf16 GEMM fallback, on every
// SIMD target this CPU runs (simd_available_targets(), each forced with ScopedSimdTarget):
//   - linear_bf16 / linear_f32_few_rows equal a double-precision product (over the bf16 weights'
//     exact float32 values) to float32 rounding, for the one-row stream (N = 1) and the register
//     tilings (N = 2, 3+), C not a multiple of any vector length, odd OC, beta 0 and 1;
//   - the few-row layers (float32, bf16, q8, q4, int8 activations) give the same bits on several
//     threads as on one, whichever thread takes which rows (float32 and bf16: work stealing,
//     core/task_runs.h);
//   - rows_axpy / rows_dot (absorbed MLA's per-head products) equal double-precision sums;
//   - to_bf16 / round_to_bf16 / bf16_to_float_serial give exactly float_to_bf16's bits, ties,
//     NaN, infinities, denormals and overflow included;
//   - bf16 matmul precision computes the product of the rounded inputs on every target, by oneDNN
//     only where native bf16 is in force and by the OpenBLAS fallback elsewhere.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/simd.h"
#include "core/threads.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/head_rows.h"
#include "kernels/int8_linear.h"
#include "kernels/linear_bf16.h"
#include "kernels/quant.h"
#include "test_util.h"

using namespace t6;

namespace {

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// out = beta * out + x W^T in double, W given as float32 values.
std::vector<float> gemv_reference(const std::vector<float>& x, const std::vector<float>& W, int N,
                                  int C, int OC, float beta, const std::vector<float>& out) {
    std::vector<float> ref(out.size());
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = double(beta) * out[size_t(n) * OC + o];
            for (int c = 0; c < C; c++) s += double(x[size_t(n) * C + c]) * W[size_t(o) * C + c];
            ref[size_t(n) * OC + o] = float(s);
        }
    return ref;
}

// Values that exercise every branch of the rounding: ties to even and to odd, NaNs (quiet,
// signalling, negative), infinities, denormals (including ties), the largest finite values
// (which round to inf) and random bits.
std::vector<float> conversion_inputs() {
    std::vector<float> v;
    for (uint32_t u :
         {0x00000000u, 0x80000000u, 0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u,
          0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffc00001u, 0x7fffffffu,
          0x7f80ffffu, 0x00000001u, 0x00008000u, 0x00018000u, 0x00017fffu, 0x807fffffu,
          0x007f8000u, 0x7f7fffffu, 0xff7fffffu, 0x7f7f8000u, 0x7f7f7fffu, 0x00800000u})
        v.push_back(from_bits(u));
    std::mt19937 rng(17);
    for (int i = 0; i < 5000; i++) v.push_back(from_bits(uint32_t(rng())));
    // Every low-half pattern around a tie, on an even and an odd bf16.
    for (uint32_t lo = 0x7ff0; lo <= 0x8010; lo++) {
        v.push_back(from_bits(0x40000000u | lo));
        v.push_back(from_bits(0x40010000u | lo));
    }
    return v;
}

std::string target_label(SimdTarget t) {
    return std::string(simd_target_name(t)) + " (Highway " + simd_highway_target_name() + ")";
}

}  // namespace

TEST(SimdGemv, EveryTargetIsAvailableAndSelectable) {
    const auto targets = simd_available_targets();
    ASSERT_FALSE(targets.empty());
    EXPECT_EQ(targets.back(), simd_cpu_best());
    for (SimdTarget t : targets) {
        const ScopedSimdTarget scope(t);
        EXPECT_EQ(simd_target(), t);
        const std::string hwy = simd_highway_target_name();
        EXPECT_EQ(hwy, simd_highway_name_of(t));
    }
}

TEST(SimdGemv, LinearMatchesDoubleReferenceOnEveryTarget) {
    for (SimdTarget t : simd_available_targets()) {
        const ScopedSimdTarget scope(t);
        for (int N : {1, 2, 3, 5, 8})
            for (int C : {7, 37, 768})
                for (int OC : {1, 17, 129, 1000})  // 1000: several tiles per thread
                    for (float beta : {0.0f, 1.0f}) {
                        const auto x = test::random_vector(size_t(N) * C, 31);
                        const auto w = test::random_vector(size_t(OC) * C, 32);
                        const auto out0 = test::random_vector(size_t(N) * OC, 33);
                        std::vector<uint16_t> wb(w.size());
                        for (size_t i = 0; i < w.size(); i++) wb[i] = float_to_bf16(w[i]);
                        std::vector<float> wr(w.size());
                        for (size_t i = 0; i < w.size(); i++) wr[i] = bf16_to_float(wb[i]);

                        std::vector<float> out = out0;
                        linear_f32_few_rows(out.data(), x.data(), w.data(), N, C, OC, beta);
                        const auto ref = gemv_reference(x, w, N, C, OC, beta, out0);
                        EXPECT_LE(test::rel_error(out.data(), ref.data(), ref.size()), 1e-5)
                            << "f32 " << target_label(t) << " N " << N << " C " << C << " OC " << OC
                            << " beta " << beta;

                        out = out0;
                        linear_bf16(out.data(), x.data(), wb.data(), N, C, OC, beta);
                        const auto refb = gemv_reference(x, wr, N, C, OC, beta, out0);
                        EXPECT_LE(test::rel_error(out.data(), refb.data(), refb.size()), 1e-5)
                            << "bf16 " << target_label(t) << " N " << N << " C " << C << " OC "
                            << OC << " beta " << beta;
                    }
    }
}

// rows_axpy / rows_dot (absorbed MLA's per-head products) equal double-precision sums on every
// target: row lengths below, at and past the register blocks (AVX-512 holds 256 columns), odd
// row counts, rows further apart than their length (the heads' blocks of kv_b_proj).
TEST(SimdGemv, HeadRowProductsMatchDoubleReferenceOnEveryTarget) {
    for (SimdTarget t : simd_available_targets()) {
        const ScopedSimdTarget scope(t);
        for (int n : {1, 7, 64, 128, 200, 256, 300})
            for (int rows : {1, 3, 5, 64}) {
                const long ldx = n + 9;
                const auto X = test::random_vector(size_t(rows) * ldx, 51);
                const auto a = test::random_vector(size_t(rows), 52);
                const auto v = test::random_vector(size_t(n), 53);
                std::vector<float> y(size_t(n) + 1, 7.0f), ref_y(static_cast<size_t>(n));
                for (int c = 0; c < n; c++) {
                    double s = 0;
                    for (int r = 0; r < rows; r++) s += double(a[r]) * X[size_t(r) * ldx + c];
                    ref_y[c] = float(s);
                }
                rows_axpy(y.data(), a.data(), X.data(), ldx, rows, n);
                EXPECT_LE(test::rel_error(y.data(), ref_y.data(), ref_y.size()), 1e-5)
                    << "rows_axpy " << target_label(t) << " n " << n << " rows " << rows;
                EXPECT_EQ(y[size_t(n)], 7.0f) << "rows_axpy wrote past n";
                std::vector<float> out(size_t(rows) + 1, 7.0f), ref_o(static_cast<size_t>(rows));
                for (int r = 0; r < rows; r++) {
                    double s = 0;
                    for (int c = 0; c < n; c++) s += double(X[size_t(r) * ldx + c]) * v[c];
                    ref_o[r] = float(s);
                }
                rows_dot(out.data(), X.data(), ldx, rows, v.data(), n);
                EXPECT_LE(test::rel_error(out.data(), ref_o.data(), ref_o.size()), 1e-5)
                    << "rows_dot " << target_label(t) << " n " << n << " rows " << rows;
                EXPECT_EQ(out[size_t(rows)], 7.0f) << "rows_dot wrote past rows";
            }
    }
}

// The few-row linear layers over several threads. Float32 (and bf16): each thread's rows are a
// run of tasks, and a thread done first takes the other's last tasks (core/task_runs.h); q8 / q4:
// one range of rows per thread. Every row is computed exactly once and does not depend on which
// thread took it: the outputs equal one thread's bit for bit, call after call (the stealing
// differs between calls), each output NaN beforehand so that a row left out shows. Float32 (one
// row: the streams; three: the tiles), bf16, q8 and q4 weights, and q8 / q4 weights times int8
// activations; sizes cut into tasks with halving tails of several lengths.
TEST(SimdGemv, FewRowOutputsAreTheSameWhicheverThreadTakesThem) {
    const int threads = num_threads(), many = std::min(std::max(2, threads), available_cpus());
    if (many < 2) GTEST_SKIP() << "one CPU: no second thread to take rows";
    for (SimdTarget t : simd_available_targets()) {
        const ScopedSimdTarget scope(t);
        for (int OC : {1000, 2304, 4099})
            for (int N : {1, 3}) {
                const int C = 96;
                const auto x = test::random_vector(size_t(N) * C, 51);
                const auto w = test::random_vector(size_t(OC) * C, 52);
                std::vector<uint16_t> wb(w.size());
                for (size_t i = 0; i < w.size(); i++) wb[i] = float_to_bf16(w[i]);
                QuantMatrix q8, q4;
                quantize_matrix(q8, w.data(), OC, C, QuantScheme::q8);
                quantize_matrix(q4, w.data(), OC, C, QuantScheme::q4);
                using Layer = std::function<void(float*)>;
                const std::vector<Layer> layers = {
                    [&](float* y) { linear_f32_few_rows(y, x.data(), w.data(), N, C, OC, 0.0f); },
                    [&](float* y) { linear_bf16(y, x.data(), wb.data(), N, C, OC, 0.0f); },
                    [&](float* y) { linear_quant_few_rows(y, x.data(), q8, N, 0.0f); },
                    [&](float* y) { linear_quant_few_rows(y, x.data(), q4, N, 0.0f); },
                    [&](float* y) { linear_a8(y, x.data(), q8, N, 0.0f); },
                    [&](float* y) { linear_a8(y, x.data(), q4, N, 0.0f); }};
                int kind = 0;
                for (const auto& layer : layers) {
                    const size_t n_out = size_t(N) * OC;
                    set_num_threads(1);
                    std::vector<float> one(n_out);
                    layer(one.data());
                    set_num_threads(many);
                    for (int call = 0; call < 10; call++) {
                        std::vector<float> out(n_out, std::numeric_limits<float>::quiet_NaN());
                        layer(out.data());
                        for (size_t o = 0; o < n_out; o++)
                            ASSERT_EQ(bits(out[o]), bits(one[o]))
                                << target_label(t) << " layer " << kind << " N " << N << " OC "
                                << OC << " output " << o << " call " << call;
                    }
                    kind++;
                }
            }
    }
    set_num_threads(threads);
}

TEST(SimdGemv, LinearWithBetaZeroIgnoresNaNInTheOutput) {
    for (SimdTarget t : simd_available_targets()) {
        const ScopedSimdTarget scope(t);
        // N = 1: the one-row streaming path; N = 3: the register tiling.
        for (int N : {1, 3}) {
            const int C = 40, OC = 21;
            const auto x = test::random_vector(size_t(N) * C, 41);
            const auto w = test::random_vector(size_t(OC) * C, 42);
            std::vector<float> out(size_t(N) * OC, std::numeric_limits<float>::quiet_NaN());
            linear_f32_few_rows(out.data(), x.data(), w.data(), N, C, OC, 0.0f);
            for (float y : out) ASSERT_TRUE(std::isfinite(y)) << target_label(t) << " N " << N;
        }
    }
}

TEST(SimdGemv, Bf16ConversionIsBitExactOnEveryTarget) {
    const auto in = conversion_inputs();
    for (SimdTarget t : simd_available_targets()) {
        const ScopedSimdTarget scope(t);
        // Every start offset and length near a vector, so each value takes the vector path.
        for (size_t off : {size_t(0), size_t(1), size_t(5)}) {
            const size_t n = in.size() - off;
            std::vector<uint16_t> h(n), h_serial(n);
            to_bf16(h.data(), in.data() + off, n);
            to_bf16_serial(h_serial.data(), in.data() + off, n);
            std::vector<float> r(n), widened(n);
            round_to_bf16(r.data(), in.data() + off, n);
            bf16_to_float_serial(widened.data(), h.data(), n);
            for (size_t i = 0; i < n; i++) {
                const float f = in[off + i];
                const uint16_t want = float_to_bf16(f);
                ASSERT_EQ(h[i], want) << target_label(t) << " input bits 0x" << std::hex << bits(f);
                ASSERT_EQ(h_serial[i], want)
                    << target_label(t) << " serial 0x" << std::hex << bits(f);
                ASSERT_EQ(bits(r[i]), uint32_t(want) << 16)
                    << target_label(t) << " round_to_bf16 0x" << std::hex << bits(f);
                ASSERT_EQ(bits(widened[i]), uint32_t(want) << 16) << target_label(t);
            }
        }
        // round_to_bf16 in place.
        std::vector<float> r(in);
        round_to_bf16(r.data(), r.data(), r.size());
        for (size_t i = 0; i < r.size(); i++)
            ASSERT_EQ(bits(r[i]), uint32_t(float_to_bf16(in[i])) << 16) << target_label(t);
    }
    // Spot checks of float_to_bf16 itself: ties to even, NaN stays quiet NaN, denormals kept.
    EXPECT_EQ(float_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie, even below
    EXPECT_EQ(float_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, odd below: up
    EXPECT_EQ(float_to_bf16(from_bits(0x7f800001u)), 0x7fc0);  // signalling NaN made quiet
    EXPECT_EQ(float_to_bf16(from_bits(0x00018000u)), 0x0002);  // denormal tie rounds to even
    EXPECT_EQ(float_to_bf16(from_bits(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
}

TEST(SimdGemv, Bf16GemmIsTheProductOfRoundedInputsOnEveryTarget) {
    const int M = 96, N = 80, K = 600;  // M*N*K above the size where bf16 takes over
    for (SimdTarget t : simd_available_targets()) {
        const ScopedSimdTarget scope(t);
        const std::string kernel = gemm_bf16_kernel_name();
        if (simd_native_bf16())
            EXPECT_NE(kernel.find("matmul, bf16 inputs"), std::string::npos) << kernel;
        else
            EXPECT_NE(kernel.find("bf16-rounded inputs"), std::string::npos) << kernel;
        for (bool ta : {false, true})
            for (bool tb : {false, true}) {
                const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
                const auto A = test::random_vector(size_t(ta ? K : M) * lda, 51);
                const auto B = test::random_vector(size_t(tb ? N : K) * ldb, 52);
                const auto C0 = test::random_vector(size_t(M) * ldc, 53);
                std::vector<float> Ar(A.size()), Br(B.size());
                for (size_t i = 0; i < A.size(); i++) Ar[i] = bf16_to_float(float_to_bf16(A[i]));
                for (size_t i = 0; i < B.size(); i++) Br[i] = bf16_to_float(float_to_bf16(B[i]));
                std::vector<float> ref = C0, ref32 = C0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0, s32 = 0;
                        for (int k = 0; k < K; k++) {
                            const size_t ia = ta ? size_t(k) * lda + i : size_t(i) * lda + k;
                            const size_t ib = tb ? size_t(j) * ldb + k : size_t(k) * ldb + j;
                            s += double(Ar[ia]) * Br[ib];
                            s32 += double(A[ia]) * B[ib];
                        }
                        float& c = ref[size_t(i) * ldc + j];
                        c = float(0.5 * s + 0.75 * double(c));
                        float& c32 = ref32[size_t(i) * ldc + j];
                        c32 = float(0.5 * s32 + 0.75 * double(c32));
                    }
                std::vector<float> C = C0;
                {
                    const ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
                    gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.75f, C.data(), ldc);
                }
                EXPECT_LT(test::rel_error(C.data(), ref.data(), C.size()), 1e-6)
                    << target_label(t) << " ta=" << ta << " tb=" << tb;
                EXPECT_GT(test::rel_error(C.data(), ref32.data(), C.size()), 1e-5)
                    << target_label(t) << ": the bf16 rounding did not happen";

                // A handed over already in bf16.
                const int a_rows = ta ? K : M;
                std::vector<uint16_t> Ab(size_t(a_rows) * lda);
                for (size_t i = 0; i < Ab.size(); i++) Ab[i] = float_to_bf16(A[i]);
                std::vector<float> C2 = C0;
                gemm_bf16_a(ta, tb, M, N, K, 0.5f, Ab.data(), lda, B.data(), ldb, 0.75f, C2.data(),
                            ldc);
                EXPECT_LT(test::rel_error(C2.data(), ref.data(), C2.size()), 1e-6)
                    << target_label(t) << " gemm_bf16_a ta=" << ta << " tb=" << tb;
            }
    }
}
