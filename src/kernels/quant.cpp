// Blockwise q8 / q4 formats (kernels/quant.h): quantization, dequantization, the scalar reference
// product, and the choice between the few-row Highway kernel (quant_linear.cpp) and, for many
// rows (chunked prefill), dequantizing a band of weight rows at a time into a float32 GEMM.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "kernels/gemm.h"

namespace t6 {

const char* quant_scheme_name(QuantScheme s) {
    return s == QuantScheme::q8 ? "q8" : "q4";
}

QuantScheme parse_quant_scheme(const std::string& s, const std::string& where) {
    if (s == "q8") return QuantScheme::q8;
    if (s == "q4") return QuantScheme::q4;
    fail(where, ": unknown quantization scheme '", s, "' (expected q8 or q4)");
}

double quant_bytes_per_weight(QuantScheme s) {
    return s == QuantScheme::q8 ? (kQuantBlock + 4.0) / kQuantBlock
                                : (kQuantBlock / 2 + 8.0) / kQuantBlock;
}

void QuantMatrix::allocate(QuantScheme s, int r, int c) {
    scheme = s;
    rows = r;
    cols = c;
    // Streamed every decoding step: on huge pages, most layers' matrices (below 2 MiB) packed
    // into shared slabs (core/buffer.h).
    const bool huge = true;
    codes.resize(blocks() * code_bytes(), huge);
    scale.resize(blocks(), huge);
    if (s == QuantScheme::q4)
        min.resize(blocks(), huge);
    else
        min.resize(0);
}

size_t QuantMatrix::bytes() const {
    return codes.size() + (scale.size() + min.size()) * sizeof(float);
}

namespace {

// Matrices below this many weights are (de)quantized on one thread (a parallel region costs more).
constexpr size_t kParallelWeights = size_t(1) << 18;

void quantize_block_q4(const float* w, int n, uint8_t* q, float* d, float* m) {
    float lo = w[0], hi = w[0];
    for (int i = 1; i < n; i++) {
        lo = std::min(lo, w[i]);
        hi = std::max(hi, w[i]);
    }
    *d = (hi - lo) / 15.0f;
    *m = lo;
    uint8_t code[kQuantBlock] = {};
    for (int i = 0; i < n; i++)
        if (*d > 0.0f) code[i] = uint8_t(std::clamp(std::round((w[i] - lo) / *d), 0.0f, 15.0f));
    for (int j = 0; j < kQuantBlock / 2; j++)
        q[j] = uint8_t(code[j] | (code[j + kQuantBlock / 2] << 4));
}

}  // namespace

void quantize_block_q8(const float* w, int n, uint8_t* q, float* d) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = std::max(amax, std::fabs(w[i]));
    *d = amax / 127.0f;
    for (int i = 0; i < kQuantBlock; i++) {
        int v = 0;
        if (i<n&& * d> 0.0f) v = int(std::clamp(std::round(w[i] / *d), -127.0f, 127.0f));
        q[i] = uint8_t(int8_t(v));
    }
}

void quantize_matrix(QuantMatrix& m, const float* W, int rows, int cols, QuantScheme s) {
    if (rows <= 0 || cols <= 0) fail("cannot quantize an empty matrix (", rows, " x ", cols, ")");
    for (size_t i = 0; i < size_t(rows) * cols; i++)
        if (!std::isfinite(W[i]))
            fail("cannot quantize: weight [", i / cols, ", ", i % cols, "] is ", W[i],
                 " (not finite)");
    m.allocate(s, rows, cols);
    const int nb = m.blocks_per_row(), cb = m.code_bytes();
#pragma omp parallel for schedule(static) if (size_t(rows) * cols >= kParallelWeights)
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < nb; b++) {
            const size_t blk = size_t(r) * nb + b;
            const float* w = W + size_t(r) * cols + size_t(b) * kQuantBlock;
            const int n = std::min(kQuantBlock, cols - b * kQuantBlock);
            if (s == QuantScheme::q8)
                quantize_block_q8(w, n, m.codes.data() + blk * cb, m.scale.data() + blk);
            else
                quantize_block_q4(w, n, m.codes.data() + blk * cb, m.scale.data() + blk,
                                  m.min.data() + blk);
        }
}

void dequantize_row(const QuantMatrix& m, int row, float* out) {
    const int nb = m.blocks_per_row(), cb = m.code_bytes();
    for (int c = 0; c < m.cols; c++) {
        const size_t blk = size_t(row) * nb + c / kQuantBlock;
        const int j = c % kQuantBlock;
        const uint8_t* q = m.codes.data() + blk * cb;
        if (m.scheme == QuantScheme::q8) {
            out[c] = float(int8_t(q[j])) * m.scale[blk];
        } else {
            const int code = j < 16 ? (q[j] & 15) : (q[j - 16] >> 4);
            out[c] = std::fma(float(code), m.scale[blk], m.min[blk]);
        }
    }
}

void dequantize_matrix(const QuantMatrix& m, float* W) {
#pragma omp parallel for schedule(static) if (size_t(m.rows) * m.cols >= kParallelWeights)
    for (int r = 0; r < m.rows; r++) dequantize_row(m, r, W + size_t(r) * m.cols);
}

void linear_quant_reference(float* out, const float* inp, const QuantMatrix& W, int N, float beta) {
    std::vector<float> w(W.cols);
    for (int o = 0; o < W.rows; o++) {
        dequantize_row(W, o, w.data());
        for (int n = 0; n < N; n++) {
            const float* x = inp + size_t(n) * W.cols;
            float s = 0.0f;
            for (int c = 0; c < W.cols; c++) s += x[c] * w[c];
            float& y = out[size_t(n) * W.rows + o];
            y = (beta != 0.0f ? beta * y : 0.0f) + s;
        }
    }
}

// Rows up to which the few-row kernel streams the codes once; above, a GEMM over dequantized
// bands of kBand weight rows (the codes are expanded once per call instead of once per 4 rows).
constexpr int kFewRows = 16, kBand = 256;

void linear_quant(float* out, const float* inp, const QuantMatrix& W, int N, float beta) {
    if (N <= 0 || W.rows <= 0) return;
    if (N <= kFewRows) {
        linear_quant_few_rows(out, inp, W, N, beta);
        return;
    }
    std::vector<float> band(size_t(std::min(kBand, W.rows)) * W.cols);
    for (int o0 = 0; o0 < W.rows; o0 += kBand) {
        const int nr = std::min(kBand, W.rows - o0);
#pragma omp parallel for schedule(static) if (size_t(nr) * W.cols >= kParallelWeights)
        for (int r = 0; r < nr; r++) dequantize_row(W, o0 + r, band.data() + size_t(r) * W.cols);
        gemm(false, true, N, nr, W.cols, 1.0f, inp, W.cols, band.data(), W.cols, beta, out + o0,
             W.rows);
    }
}

}  // namespace t6
