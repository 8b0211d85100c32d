// Causal scaled-dot-product attention, flash style: tiled over queries and keys with an online
// softmax; the backward pass recomputes the probabilities from the saved log-sum-exp. No T x T
// score matrix is ever held whole. The kernels are Google Highway code dispatched at run time
// (AVX-512 / AVX2 / scalar, core/simd.h); see attention.cpp for the math.
#pragma once

namespace t6 {

// Shapes and addressing. Element (b,t,h,d) of q is q[(b*T + t) * q_stride + h*D + d]; k likewise
// with k_stride and Hkv heads of D; v with v_stride and Hkv heads of Dv. out is contiguous
// (B,T,Hq,Dv); lse is (B,Hq,T). Query head h reads KV head h / (Hq/Hkv) (the official
// repeat_interleave: blocked, not strided). Gradients dq/dk/dv use the same strides as q/k/v.
struct AttnDims {
    int B = 0, T = 0, Hq = 0, Hkv = 0, D = 0, Dv = 0;
    long q_stride = 0, k_stride = 0, v_stride = 0;
    float scale = 1.0f;  // softmax scale, 1/sqrt(D) by default in the official code
};

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       const AttnDims& d);

// Writes (=) dq, dk, dv (only the q/k/v slots they address; other columns of a fused buffer
// are left untouched).
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v,
                        const AttnDims& d);

// Plain scalar references (the softmax of each causal row in full, in double; O(B Hq T^2 D)):
// what the tests compare the SIMD kernels of every target against. The backward needs no out
// or lse (it recomputes them).
void attention_forward_reference(float* out, float* lse, const float* q, const float* k,
                                 const float* v, const AttnDims& d);
void attention_backward_reference(float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const AttnDims& d);

}  // namespace t6
