// The GEMM wrapper (see gemm.h). bf16 matmul precision computes alpha * round(A) round(B) +
// beta * C, round = float32 -> bf16 (nearest even), float32 accumulation:
//   - with native bf16 (simd_native_bf16(): AVX512-BF16 and the T6_SIMD cap at avx512bf16) by
//     oneDNN's bf16 matmul on the rounded operands (vdpbf16ps);
//   - otherwise by OpenBLAS sgemm on float32 copies of the rounded operands: the same products,
//     summed in float32 in another order. oneDNN's bf16 matmul needs AVX-512 (it fails to create
//     a primitive on AVX2), and a capped target must not run it.
#include "kernels/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <atomic>

#include <oneapi/dnnl/dnnl.hpp>

#include "core/buffer.h"
#include "core/error.h"
#include "core/simd.h"
#include "kernels/gemm_backend.h"

extern "C" {
char* openblas_get_corename(void);
char* openblas_get_config(void);
}

namespace t6 {

namespace {

thread_local MatmulPrecision g_precision = MatmulPrecision::f32;

// Products with fewer multiply-adds than this stay in float32 under bf16 precision: rounding the
// inputs and entering oneDNN would cost more than the faster products save.
constexpr double kMinBf16MultiplyAdds = double(1 << 22);

// Rounds a rows x cols matrix (row stride ld) into a packed rows x cols bf16 matrix.
void round_matrix(uint16_t* dst, const float* src, int rows, int cols, int ld) {
    if (ld == cols) {
        to_bf16(dst, src, size_t(rows) * cols);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        to_bf16_serial(dst + size_t(r) * cols, src + size_t(r) * ld, cols);
}

// Rounds a rows x cols matrix (row stride ld) into a packed rows x cols float32 matrix of
// bf16-representable values.
void round_matrix_f32(float* dst, const float* src, int rows, int cols, int ld) {
    if (ld == cols) {
        round_to_bf16(dst, src, size_t(rows) * cols);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++)
        round_to_bf16_serial(dst + size_t(r) * cols, src + size_t(r) * ld, cols);
}

// Per-thread buffers for rounded operands; they grow to the largest product seen.
struct RoundedOperands {
    AlignedArray<uint16_t> a, b;
    AlignedArray<float> fa, fb;  // the fallback's float32 copies
};
// Grows buf to at least n elements, on huge pages from 2 MiB (AlignedArray::resize), as the
// operands it holds are streamed by the product like the model's own buffers.
template <typename T>
T* reserve(AlignedArray<T>& buf, size_t n) {
    if (buf.size() < n) buf.resize(n, /*huge_pages=*/true);
    return buf.data();
}
RoundedOperands& rounded_operands() {
    thread_local RoundedOperands r;
    return r;
}

dnnl::engine& cpu_engine() {
    static dnnl::engine e(dnnl::engine::kind::cpu, 0);
    return e;
}

// C = alpha * op(A) op(B) + beta * C with A, B in bf16 (strides as in gemm()), float32 C.
void onednn_matmul(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const uint16_t* A,
                   int lda, const uint16_t* B, int ldb, float beta, float* C, int ldc) {
    using dnnl::memory;
    using dt = memory::data_type;
    // Logical A is [M,K]: stored as [M][lda], or transposed as [K][lda] (strides {1, lda}).
    const memory::desc ad({M, K}, dt::bf16, trans_a ? memory::dims{1, lda} : memory::dims{lda, 1});
    const memory::desc bd({K, N}, dt::bf16, trans_b ? memory::dims{1, ldb} : memory::dims{ldb, 1});
    const memory::desc cd({M, N}, dt::f32, memory::dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
    if (beta != 0.0f) {
        dnnl::post_ops po;
        po.append_sum(beta);  // dst = alpha * A B + beta * dst
        attr.set_post_ops(po);
    }
    dnnl::engine& eng = cpu_engine();
    // oneDNN keeps created primitives in its own cache, so a repeated shape is not re-JITted.
    const dnnl::matmul mm(dnnl::matmul::primitive_desc(dnnl::matmul::desc(ad, bd, cd), attr, eng));
    dnnl::stream s(eng);
    memory am(ad, eng, const_cast<uint16_t*>(A)), bm(bd, eng, const_cast<uint16_t*>(B)),
        cm(cd, eng, C);
    mm.execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    s.wait();
}

// Whether bf16 products run on oneDNN: only with native bf16 in force, and not after oneDNN
// once failed to create its primitive (then the float32 fallback runs from there on).
std::atomic<bool> g_onednn_failed{false};
bool use_onednn() {
    return simd_native_bf16() && !g_onednn_failed.load(std::memory_order_relaxed);
}

// Whether oneDNN's sgemm should get a transposed B (N x K, row stride ldb) through a copy with a
// padded row stride. With ldb a multiple of 512 floats (2 KiB) the rows it packs from fall into
// a few cache sets: small-t6's MLP down-projection (1024 x 768 x 2048, NT, ldb 2048) ran at
// 274-278 GFLOP/s against 331-339 with ldb 2064, and K = 1024, 3072 and 4096 likewise
// (2026-12-04, Zen 5, warm, 15 interleaved calls; OpenBLAS's kernels and the other operand
// layouts showed no such drop). The copy (about 6 MB for that product) costs a few percent of
// the product's time. Small matrices, where the copy would weigh more, and calls from inside a
// parallel region (whose threads would share the buffer) go as they are.
bool pad_transposed_b(bool trans_b, int N, int K, int ldb) {
    return trans_b && ldb % 512 == 0 && size_t(N) * size_t(K) >= (size_t(1) << 18) &&
           !omp_in_parallel();
}

// op(B) = B^T with B (N x K, row stride ldb) copied into a buffer of row stride K + 16.
const float* padded_copy(const float* B, int N, int K, int ldb, int& padded_ld) {
    thread_local AlignedArray<float> buf;
    padded_ld = K + 16;
    float* dst = reserve(buf, size_t(N) * size_t(padded_ld));
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++)
        std::copy(B + size_t(r) * ldb, B + size_t(r) * ldb + K, dst + size_t(r) * padded_ld);
    return dst;
}

// The float32 product on the backend in force (gemm_backend.h): OpenBLAS sgemm, or oneDNN's
// sgemm (row-major, the same arguments) where OpenBLAS chose a kernel below the CPU.
void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
           const float* B, int ldb, float beta, float* C, int ldc) {
    if (gemm_backend() == GemmBackend::onednn) {
        if (pad_transposed_b(trans_b, N, K, ldb)) B = padded_copy(B, N, K, ldb, ldb);
        if (dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb,
                       beta, C, ldc) == dnnl_success)
            return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// The fallback: C = alpha * op(A) op(round(B)) + beta * C by sgemm, A already rounded (packed,
// row stride lda), B rounded here into a packed float32 copy.
void rounded_f32_product(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                         const float* A, int lda, const float* B, int ldb, float beta, float* C,
                         int ldc) {
    const int b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    float* Bf = reserve(rounded_operands().fb, size_t(b_rows) * b_cols);
    round_matrix_f32(Bf, B, b_rows, b_cols, ldb);
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, Bf, b_cols, beta, C, ldc);
}

// Rounds op(B)'s storage (K x N, or N x K when transposed) and runs the bf16 product on oneDNN;
// false (C untouched) when oneDNN cannot create the primitive.
bool bf16_product(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const uint16_t* A,
                  int lda, const float* B, int ldb, float beta, float* C, int ldc) {
    const int b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
    uint16_t* Bb = reserve(rounded_operands().b, size_t(b_rows) * b_cols);
    round_matrix(Bb, B, b_rows, b_cols, ldb);
    try {
        onednn_matmul(trans_a, trans_b, M, N, K, alpha, A, lda, Bb, b_cols, beta, C, ldc);
    } catch (const dnnl::error&) {
        g_onednn_failed.store(true);
        return false;
    }
    return true;
}

void f32_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
              const float* B, int ldb, float beta, float* C, int ldc) {
    if (M == 1 && gemm_backend() == GemmBackend::openblas) {
        // One row (decoding one token): a matrix-vector product. OpenBLAS's sgemm runs such
        // shapes several times slower than sgemv, which streams the matrix at memory speed.
        // C[1,N] = alpha * a op(B): with B [N,K] (trans_b) that is B a, with B [K,N] it is B^T a.
        const int incx = trans_a ? lda : 1;
        if (trans_b)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, incx, beta, C, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, K, N, alpha, B, ldb, A, incx, beta, C, 1);
        return;
    }
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

const char* matmul_precision_name(MatmulPrecision p) {
    return p == MatmulPrecision::bf16 ? "bf16" : "f32";
}

MatmulPrecision parse_matmul_precision(const std::string& s, const std::string& where) {
    if (s == "f32" || s == "fp32" || s == "float32") return MatmulPrecision::f32;
    if (s == "bf16" || s == "bfloat16") return MatmulPrecision::bf16;
    fail(where, ": unknown matmul precision '", s, "' (expected f32 or bf16)");
}

MatmulPrecision matmul_precision() {
    return g_precision;
}

ScopedMatmulPrecision::ScopedMatmulPrecision(MatmulPrecision p) : prev_(g_precision) {
    g_precision = p;
}
ScopedMatmulPrecision::~ScopedMatmulPrecision() {
    g_precision = prev_;
}

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (g_precision == MatmulPrecision::bf16 && M > 1 && K > 0 &&
        double(M) * N * K >= kMinBf16MultiplyAdds && !omp_in_parallel()) {
        const int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
        if (use_onednn()) {
            uint16_t* Ab = reserve(rounded_operands().a, size_t(a_rows) * a_cols);
            round_matrix(Ab, A, a_rows, a_cols, lda);
            if (bf16_product(trans_a, trans_b, M, N, K, alpha, Ab, a_cols, B, ldb, beta, C, ldc))
                return;
        }
        float* Af = reserve(rounded_operands().fa, size_t(a_rows) * a_cols);
        round_matrix_f32(Af, A, a_rows, a_cols, lda);
        rounded_f32_product(trans_a, trans_b, M, N, K, alpha, Af, a_cols, B, ldb, beta, C, ldc);
        return;
    }
    f32_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bf16_a(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const uint16_t* A,
                 int lda, const float* B, int ldb, float beta, float* C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // empty sum: C = beta * C (with beta 0, C is not read, as in BLAS)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                float& c = C[size_t(i) * ldc + j];
                c = beta == 0.0f ? 0.0f : beta * c;
            }
        return;
    }
    if (use_onednn() &&
        bf16_product(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
        return;
    // Widen A (already bf16) into a packed float32 copy.
    const int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
    float* Af = reserve(rounded_operands().fa, size_t(a_rows) * a_cols);
#pragma omp parallel for schedule(static) if (size_t(a_rows) * a_cols > (size_t(1) << 16))
    for (int r = 0; r < a_rows; r++)
        bf16_to_float_serial(Af + size_t(r) * a_cols, A + size_t(r) * lda, a_cols);
    rounded_f32_product(trans_a, trans_b, M, N, K, alpha, Af, a_cols, B, ldb, beta, C, ldc);
}

void linear_forward(float* out, const float* inp, const float* W, int N, int C, int OC) {
    gemm(false, true, N, OC, C, 1.0f, inp, C, W, C, 0.0f, out, OC);
}

void linear_backward(float* dinp, float* dW, const float* dout, const float* inp, const float* W,
                     int N, int C, int OC) {
    if (dinp) gemm(false, false, N, C, OC, 1.0f, dout, OC, W, C, 1.0f, dinp, C);
    if (dW) gemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dW, C);
}

std::string gemm_kernel_name() {
    if (gemm_backend() == GemmBackend::onednn) {
        const dnnl_version_t* v = dnnl_version();
        return cat("oneDNN ", v->major, ".", v->minor, ".", v->patch, " sgemm (",
                   gemm_backend_reason(), ")");
    }
    std::string s = "OpenBLAS ";
    const char* cfg = openblas_get_config();
    const char* core = openblas_get_corename();
    s += cfg ? cfg : "?";
    s += " kernel=";
    s += core ? core : "?";
    return s;
}

std::string gemm_bf16_kernel_name() {
    if (!use_onednn())
        return cat("bf16-rounded inputs, f32 ",
                   gemm_backend() == GemmBackend::onednn ? "oneDNN" : "OpenBLAS",
                   " sgemm (no native bf16; SIMD target ", simd_target_name(simd_target()), ")");
    const dnnl_version_t* v = dnnl_version();
    const char* isa = "other";
    switch (dnnl::get_effective_cpu_isa()) {
        case dnnl::cpu_isa::avx512_core_amx:
            isa = "avx512_core_amx";
            break;
        case dnnl::cpu_isa::avx512_core_bf16:
            isa = "avx512_core_bf16";
            break;
        case dnnl::cpu_isa::avx512_core_vnni:
            isa = "avx512_core_vnni (bf16 emulated)";
            break;
        case dnnl::cpu_isa::avx512_core:
            isa = "avx512_core (bf16 emulated)";
            break;
        default:
            break;
    }
    return cat("oneDNN ", v->major, ".", v->minor, ".", v->patch,
               " matmul, bf16 inputs, f32 accumulate, isa ", isa);
}

}  // namespace t6
