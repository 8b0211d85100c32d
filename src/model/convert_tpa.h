// Converting an MHA/GQA model to Tensor Product Attention (t6 convert; docs/convert-to-tpa.md).
//
// An MHA key K_t = W_K x_t is linear in the attention input x_t; TPA's key
//   K_t = (1/R) sum_r a_r(x_t) b_r(x_t)^T,  a_r(x) = W_A[.,r] x in R^H,  b_r(x) = W_B[r] x in R^d_h
// is bilinear in x_t, so no exact conversion exists. Each projection (Q, K, V) is fitted on
// calibration activations X (the normed inputs of the layer, from the source model):
//   minimise sum_t || K_t - (1/R) A(x_t)^T B(x_t) ||_F^2
// 1. "tucker" initialisation: the top-R eigenvectors U of sum_t K_t^T K_t (the mode-d_h
//    HOSVD factor of the (tokens x heads x d_h) target tensor) give a shared d_h subspace,
//    K_t ~ (K_t U) U^T; the head mixing K_t U is linear in x (A), and B's rows are U's columns
//    times the least-squares "constant" direction m (m . x_t ~ 1 on the calibration set).
// 2. alternating least squares: with B fixed the objective is an ordinary least-squares problem
//    in W_A (one R*C x R*C normal matrix shared by all heads), and with A fixed in W_B (one
//    shared by all d_h rows); each half-step is solved exactly (Cholesky, double precision) and
//    kept only if it does not increase the error.
// RoPE: the source rotates each head's key on the d_h axis after projection; TPA rotates B's
// rows on the same axis, by the same rotation for every rank, so fitting pre-RoPE keys is exact
// with respect to RoPE. GQA sources repeat each KV head for its query heads (repeat_interleave)
// before fitting.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace t6 {

struct ConvertOptions {
    AttentionKind to = AttentionKind::tpa;  // tpa (T6) or tpa_kvonly (keeps c_q as is)
    int q_rank = 6, k_rank = 2, v_rank = 2;
    std::string init = "tucker";  // tucker | random
    int als_iters = 8;            // ALS sweeps (each: an A step and a B step); 0: init only
    uint64_t seed = 1234;         // random init
};

// One fitted projection: relative Frobenius errors ||K - K_hat|| / ||K|| over the calibration
// activations, after the initialisation and after every ALS half-step.
struct FitTrace {
    double init_error = 0, final_error = 0;
    std::vector<double> history;  // init, then after each half-step (A, B, A, B, ...)
};

struct LayerFit {
    int layer = 0;
    FitTrace q, k, v;  // q empty (errors 0) for tpa_kvonly, whose c_q is copied exactly
};

// Fits W_A (H*R x C, row h*R + r) and W_B (R*D x C, row r*D + d) so that
// (1/R) A(x)^T B(x) approximates the linear map W (H*D x C, row h*D + d) on the rows of X
// (N x C). Returns the error trace.
FitTrace fit_tpa_projection(const float* X, int N, int C, const float* W, int H, int D, int R,
                            const ConvertOptions& opt, float* WA, float* WB);

// The relative error of the TPA factors WA, WB against W on X.
double tpa_projection_error(const float* X, int N, int C, const float* W, int H, int D, int R,
                            const float* WA, const float* WB);

// The TPA config of a converted model: the source's sizes, heads and head_dim, the given ranks.
// Fails (one line, naming `where`) if the source is not mha/gqa/mqa or a rank is out of range.
ModelConfig converted_config(const ModelConfig& src, const ConvertOptions& opt,
                             const std::string& where);

// Converts `src` (mha/mqa/gqa): runs it over the calibration sequences `tokens` (n_seq x seq_len)
// to collect each layer's attention inputs, fits every layer's TPA factors, copies everything
// else (embedding, c_proj, MLP, norms). An empty `tokens` uses the normed token embeddings as
// the calibration activations of every layer (data-free, weaker).
std::unique_ptr<Model> convert_to_tpa(Model& src, const std::vector<int32_t>& tokens, int seq_len,
                                      const ConvertOptions& opt, std::vector<LayerFit>& report);

}  // namespace t6
