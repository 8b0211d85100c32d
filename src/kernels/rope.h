// Rotary position embedding exactly as the official Rotary / apply_rotary_emb compute it
// (docs/numerics.md §1-§4):
//  * inv_freq[i] = 1 / 10000^(2i/d) in float32; angle = (float)t * inv_freq[i];
//    cos/sin are rounded to bfloat16 (round-to-nearest-even) and used as float32 values;
//  * half-split pairing: element i pairs with element i + d/2;
//  * sign: y1 = x1*cos + x2*sin, y2 = -x1*sin + x2*cos (opposite of LLaMA's rotate_half).
#pragma once
#include <vector>

namespace t6 {

struct RopeTables {
    int max_positions = 0;
    int dim = 0;                  // rotated dimension d (even)
    std::vector<float> inv_freq;  // (d/2)
    std::vector<float> cos, sin;  // (max_positions, d/2), bf16-rounded values
};

RopeTables make_rope_tables(int max_positions, int dim, float theta = 10000.0f);

// Rotates in place `nvec` vectors of `dim` floats for every token (b,t). Vector v of token (b,t)
// starts at x + (b*T + t) * token_stride + v * vec_stride. Token t has position pos0 + t.
void rope_forward_inplace(float* x, int B, int T, int nvec, int dim, long token_stride,
                          long vec_stride, const RopeTables& tab, int pos0 = 0);

// The transpose rotation (gradient of rope_forward_inplace), in place on dx, same addressing.
void rope_backward_inplace(float* dx, int B, int T, int nvec, int dim, long token_stride,
                           long vec_stride, const RopeTables& tab, int pos0 = 0);

// Plain scalar loops (single-threaded): the references the SIMD targets are tested against.
void rope_forward_inplace_reference(float* x, int B, int T, int nvec, int dim, long token_stride,
                                    long vec_stride, const RopeTables& tab, int pos0 = 0);
void rope_backward_inplace_reference(float* dx, int B, int T, int nvec, int dim, long token_stride,
                                     long vec_stride, const RopeTables& tab, int pos0 = 0);

}  // namespace t6
