// The TPA factor contraction (paper eq. (2)-(4); official `bmm(A, B).div_(rank)`):
//   out[n,h,:] = scale * sum_r A[n,h,r] * Bf[n,r,:],  scale = 1/R.
// A's row for token n holds H*R numbers (h-major: A[n,h,r] at A + n*a_stride + h*R + r);
// Bf's row holds R*D numbers (B[n,r,d] at Bf + n*b_stride + r*D + d). Strides let A and B live in
// one fused projection buffer.
#pragma once

namespace t6 {

// out: contiguous (N,H,D).
void tpa_contract_forward(float* out, const float* A, long a_stride, const float* Bf, long b_stride,
                          int N, int H, int R, int D, float scale);

// Writes (=) dA and dB (same addressing as A and Bf) from dout (N,H,D).
void tpa_contract_backward(float* dA, float* dB, const float* dout, const float* A, long a_stride,
                           const float* Bf, long b_stride, int N, int H, int R, int D, float scale);

// Plain scalar loops: the references the SIMD targets are tested against.
void tpa_contract_forward_reference(float* out, const float* A, long a_stride, const float* Bf,
                                    long b_stride, int N, int H, int R, int D, float scale);
void tpa_contract_backward_reference(float* dA, float* dB, const float* dout, const float* A,
                                     long a_stride, const float* Bf, long b_stride, int N, int H,
                                     int R, int D, float scale);

}  // namespace t6
