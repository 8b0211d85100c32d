// The per-head products of absorbed MLA decoding over float32 weights (model/attn/mla.cpp):
// a head's query absorbed into the latent, q_lat = W_UK^T q_nope (a sum of scaled rows), and its
// output taken out of it, y = W_UV o_lat (a dot product per row). Single-threaded per call (the
// caller runs heads in parallel), written once with Google Highway and dispatched at run time
// to the SIMD target in force (core/simd.h); HWY_SCALAR runs plain loops, the reference.
#pragma once

namespace t6 {

// y[0, n) = sum_{r < rows} a[r] X[r * ldx + 0, n)  (y is overwritten).
void rows_axpy(float* y, const float* a, const float* X, long ldx, int rows, int n);
// out[r] = X[r * ldx + 0, n) . v[0, n) for r < rows.
void rows_dot(float* out, const float* X, long ldx, int rows, const float* v, int n);

}  // namespace t6
