// Blockwise quantized weight matrices (llama.cpp's Q8_0 and Q4_1 schemes) and the linear layers
// that read them. A matrix W[rows, cols] (PyTorch layout, one row per output) is cut along each
// row into blocks of kQuantBlock = 32 weights; a row whose length is not a multiple of 32 ends in
// a partial block whose missing weights are stored as zero codes (and never read: the kernels
// stop at `cols`). Per block:
//   q8: 32 signed codes q in [-127, 127] and one float32 scale d = max|w| / 127;
//       w' = float(q) * d                                         (1.125 bytes per weight)
//   q4: 32 unsigned codes q in [0, 15] (two per byte) and float32 scale d = (max - min) / 15 and
//       minimum m;  w' = fma(float(q), d, m)                        (0.75 bytes per weight)
//       In a q4 block byte j holds code j in its low nibble and code j + 16 in its high one.
// w' is the dequantized weight: a quantized linear layer computes exactly sum_c x[c] * w'[c] in
// float32 (the codes are widened and scaled in registers; the activations stay float32), so
// decoding from quantized weights equals the float32 model whose weights are w'.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/buffer.h"

namespace t6 {

enum class QuantScheme { q8, q4 };
const char* quant_scheme_name(QuantScheme s);                                    // "q8" | "q4"
QuantScheme parse_quant_scheme(const std::string& s, const std::string& where);  // one-line error

inline constexpr int kQuantBlock = 32;

struct QuantMatrix {
    QuantScheme scheme = QuantScheme::q8;
    int rows = 0, cols = 0;
    int blocks_per_row() const { return (cols + kQuantBlock - 1) / kQuantBlock; }
    size_t blocks() const { return size_t(rows) * blocks_per_row(); }
    // Bytes of codes per block: 32 (q8) or 16 (q4).
    int code_bytes() const { return scheme == QuantScheme::q8 ? kQuantBlock : kQuantBlock / 2; }
    AlignedArray<uint8_t> codes;  // blocks() * code_bytes(); q8 codes are int8 bit patterns
    AlignedArray<float> scale;    // blocks()
    AlignedArray<float> min;      // blocks() (q4 only)
    // Bytes streamed by a product with this matrix (codes and scales).
    size_t bytes() const;
    // Allocates zeroed storage for the shape.
    void allocate(QuantScheme s, int rows, int cols);
};

// Quantizes W[rows, cols] (round to nearest, ties away from zero; an all-zero block gets scale 0;
// a non-finite weight is a one-line error).
void quantize_matrix(QuantMatrix& m, const float* W, int rows, int cols, QuantScheme s);
// One q8 block: n <= 32 numbers w into 32 codes (zeros past n) and the scale d (the scheme above).
void quantize_block_q8(const float* w, int n, uint8_t* q, float* d);
// The dequantized weights w' of one row (cols floats), or of the whole matrix.
void dequantize_row(const QuantMatrix& m, int row, float* out);
void dequantize_matrix(const QuantMatrix& m, float* W);
// Bytes per weight of a scheme (codes and scales, full blocks).
double quant_bytes_per_weight(QuantScheme s);

// out[N, rows] = beta * out + inp[N, cols] @ W'^T (beta 0 or 1), on the SIMD target in force.
void linear_quant(float* out, const float* inp, const QuantMatrix& W, int N, float beta);
// The Highway kernel alone (quant_linear.cpp), for any N: each tile of MR input rows streams the
// codes once (linear_quant uses it up to 16 rows).
void linear_quant_few_rows(float* out, const float* inp, const QuantMatrix& W, int N, float beta);
// The plain scalar loop over the same codes (the reference of the tests).
void linear_quant_reference(float* out, const float* inp, const QuantMatrix& W, int N, float beta);

}  // namespace t6
