// Products with a row range of a q8 / q4 matrix (kernels/quant.h), for the per-head pieces of
// MLA's quantized up-projection kv_b_proj in absorbed decoding (model/attn/mla.cpp): head h's
// block of rows is [W_UK[h] (D rows) | W_UV[h] (Dv rows)], each row d_c long, blocks of 32 along
// the row. Both compute exactly over the dequantized weights w' in float32 (no activation
// quantization, also for the q8a8 / q4a8 weight types), on the SIMD target in force; defined in
// quant_linear.cpp (Highway, compiled per target).
#pragma once
#include "kernels/quant.h"

namespace t6 {

// out[o] = sum_c x[c] w'[r0 + o, c] for o < rows (a dot product per row: y[h] = W_UV[h] o_lat[h]).
// The few-row kernel's register tiling (linear_tiling-inl.h) over the row range, one input row.
void quant_rows_dot(float* out, const float* x, const QuantMatrix& W, int r0, int rows);

// out[c] = sum_{r < rows} x[r] w'[r0 + r, c] for c < W.cols: the transposed product
// (q_lat[h] = W_UK[h]^T q_nope[h], a reduction over the ROWS, which the row-blocked codes do not
// fit as dot products). Computed as a sum of scaled rows: per row r and block b the scalar
// x[r] * d[r, b] multiplies the widened codes into W.cols float32 accumulators held in
// registers; a q4 block's minimum adds x[r] * m[r, b] to a per-block scalar, added to the block's
// columns at the end (x (q d + m) = (x d) q + x m). No transposed copy is made: the codes are the
// ones every other product of the model reads.
void quant_row_sum(float* out, const float* x, const QuantMatrix& W, int r0, int rows);
// The plain scalar loop over the dequantized rows (float32, rows in order; HWY_SCALAR runs it).
void quant_row_sum_reference(float* out, const float* x, const QuantMatrix& W, int r0, int rows);

}  // namespace t6
