// Multi-head Latent Attention (official llama-mla.py, DeepSeek-V2 style; docs/numerics.md §5, §7,
// §8, §16). Per token, from the fused projection row
//   proj = x @ [q_a_proj; kv_a_proj_with_mqa]^T = [cq_raw (q_lora) | ckv (kv_lora) | k_pe (R)]:
//   q   = q_b_proj(q_a_layernorm(cq_raw))            per head [q_nope (D) | q_pe (R)]
//   kv  = kv_b_proj(kv_a_layernorm(ckv))             per head [k_nope (D) | v (Dv)]
//   q_pe, k_pe rotated (half-split within the R dims); k_pe is one vector shared by every head
//   k   = [k_nope | k_pe]                            per head
//   y   = causal softmax(q k^T / sqrt(D + R)) v      (the scale uses q_head_dim, §7)
// The two latent norms are the official class RMSNorm: x * rsqrt(mean(x^2) + 1e-6) * weight.
#include <cmath>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "model/attention_core.h"

namespace t6 {

namespace {

constexpr float kMlaNormEps = 1e-6f;  // official RMSNorm(..., eps=1e-6) of q_a / kv_a

struct MlaDims {
    int H, D, R, Dv, ql, kvl;
    long P;   // fused projection row: ql + kvl + R
    long QK;  // q/k row: H * (D + R)
    long V;   // v row: H * Dv
    long KV;  // kv_b_proj row: H * (D + Dv)
};

MlaDims mla_dims(const ModelConfig& c) {
    MlaDims m;
    m.H = c.n_head;
    m.D = c.head_dim;
    m.R = c.qk_rope_head_dim;
    m.Dv = c.v_head_dim;
    m.ql = c.q_lora_rank;
    m.kvl = c.kv_lora_rank;
    m.P = long(m.ql) + m.kvl + m.R;
    m.QK = long(m.H) * (m.D + m.R);
    m.V = long(m.H) * m.Dv;
    m.KV = long(m.H) * (m.D + m.Dv);
    return m;
}

// The saved activations, each (N, width) contiguous, in this order. F = float or const float.
template <class F>
struct MlaSaved {
    F *cq, *rstd_q, *ckv, *rstd_kv, *q, *k, *v;
};

template <class F>
MlaSaved<F> mla_saved(const MlaDims& m, F* s, size_t N) {
    MlaSaved<F> r;
    r.cq = s;                    // q_a_layernorm output (normalised, times weight)
    r.rstd_q = r.cq + N * m.ql;  // its 1/rms
    r.ckv = r.rstd_q + N;        // kv_a_layernorm output
    r.rstd_kv = r.ckv + N * m.kvl;
    r.q = r.rstd_kv + N;   // assembled q after RoPE (N, H, D+R)
    r.k = r.q + N * m.QK;  // assembled k after RoPE (N, H, D+R)
    r.v = r.k + N * m.QK;  // (N, H, Dv)
    return r;
}

AttnDims mla_attn_dims(const MlaDims& m, int B, int T) {
    AttnDims d;
    d.B = B;
    d.T = T;
    d.Hq = d.Hkv = m.H;
    d.D = m.D + m.R;
    d.Dv = m.Dv;
    d.q_stride = d.k_stride = m.QK;
    d.v_stride = m.V;
    d.scale = 1.0f / std::sqrt(float(m.D + m.R));
    return d;
}

// RMSNorm with weight over rows of a strided input (the latent slices of proj), as the kernel
// rmsnorm_forward (sum of squares in double): out = (x * rstd) * w.
void rmsnorm_w_forward(float* out, float* rstd, const float* inp, long ld_inp, const float* w,
                       int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + n * ld_inp;
        float* o = out + long(n) * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += double(x[c]) * double(x[c]);
        const float r = float(1.0 / std::sqrt(s / C + double(eps)));
        rstd[n] = r;
        for (int c = 0; c < C; c++) o[c] = (x[c] * r) * w[c];
    }
}

// Backward of rmsnorm_w_forward: writes (=) dinp (strided), accumulates dw += sum_n dy * x * r.
//   dx_c = r w_c dy_c - (r^3 / C) x_c sum_k dy_k w_k x_k
void rmsnorm_w_backward(float* dinp, long ld_dinp, float* dw, const float* dout, const float* inp,
                        long ld_inp, const float* w, const float* rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* x = inp + n * ld_inp;
        const float* dy = dout + long(n) * C;
        float* dx = dinp + n * ld_dinp;
        const float r = rstd[n];
        double s = 0.0;
        for (int c = 0; c < C; c++) s += double(dy[c]) * double(w[c]) * double(x[c]);
        const float k = float(s * double(r) * r * r / C);
        for (int c = 0; c < C; c++) dx[c] = r * w[c] * dy[c] - k * x[c];
    }
    // Column blocks in parallel, rows in order: deterministic.
    constexpr int kBlock = 64;
    const int nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        const int c0 = blk * kBlock, c1 = c0 + kBlock < C ? c0 + kBlock : C;
        for (int n = 0; n < N; n++) {
            const float* x = inp + n * ld_inp;
            const float* dy = dout + long(n) * C;
            const float r = rstd[n];
            for (int c = c0; c < c1; c++) dw[c] += dy[c] * (x[c] * r);
        }
    }
}

}  // namespace

size_t mla_saved_per_token(const ModelConfig& c) {
    const MlaDims m = mla_dims(c);
    return size_t(m.ql) + 1 + size_t(m.kvl) + 1 + 2 * size_t(m.QK) + size_t(m.V);
}

size_t mla_scratch_per_token(const ModelConfig& c) {
    const MlaDims m = mla_dims(c);
    // dq, dk (H, D+R), dv (H, Dv), dkv (H, D+Dv), dcq (q_lora), dckv (kv_lora).
    return 2 * size_t(m.QK) + size_t(m.V) + size_t(m.KV) + size_t(m.ql) + size_t(m.kvl);
}

void mla_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                      float* proj, float* saved, float* y, float* lse, int B, int T) {
    const MlaDims m = mla_dims(c);
    const int N = B * T;
    const auto s = mla_saved(m, saved, size_t(N));
    const float* w_qa_norm = w.W + w.offset("attn.q_a_layernorm.weight");
    const float* w_qb = w.W + w.offset("attn.q_b_proj.weight");  // (H*(D+R), ql)
    const float* w_kva_norm = w.W + w.offset("attn.kv_a_layernorm.weight");
    const float* w_kvb = w.W + w.offset("attn.kv_b_proj.weight");  // (H*(D+Dv), kvl)
    float* k_pe = proj + m.ql + m.kvl;

    // q = q_b_proj(q_a_layernorm(q_a_proj(x))), one GEMM over the batch; rows ordered per head
    // [nope | rope] (official q.view(B, T, H, q_head_dim) then split).
    rmsnorm_w_forward(s.cq, s.rstd_q, proj, m.P, w_qa_norm, N, m.ql, kMlaNormEps);
    linear_forward(s.q, s.cq, w_qb, N, m.ql, int(m.QK));
    rope_forward_inplace(s.q + m.D, B, T, m.H, m.R, m.QK, m.D + m.R, rope);

    // kv = kv_b_proj(kv_a_layernorm(compressed_kv)): rows of head h are [k_nope (D) | v (Dv)].
    // Written straight into the assembled k (stride H*(D+R)) and v by one GEMM per head block.
    rmsnorm_w_forward(s.ckv, s.rstd_kv, proj + m.ql, m.P, w_kva_norm, N, m.kvl, kMlaNormEps);
    for (int h = 0; h < m.H; h++) {
        const float* wk = w_kvb + size_t(h) * (m.D + m.Dv) * m.kvl;
        const float* wv = wk + size_t(m.D) * m.kvl;
        gemm(false, true, N, m.D, m.kvl, 1.0f, s.ckv, m.kvl, wk, m.kvl, 0.0f,
             s.k + size_t(h) * (m.D + m.R), int(m.QK));
        gemm(false, true, N, m.Dv, m.kvl, 1.0f, s.ckv, m.kvl, wv, m.kvl, 0.0f,
             s.v + size_t(h) * m.Dv, int(m.V));
    }

    // The single k_pe (not normalised) is rotated in place in proj, then copied to every head
    // (official k_pe.view(B, T, 1, R) broadcast over heads).
    rope_forward_inplace(k_pe, B, T, 1, m.R, m.P, m.R, rope);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* src = k_pe + long(n) * m.P;
        float* dst = s.k + long(n) * m.QK + m.D;
        for (int h = 0; h < m.H; h++)
            std::memcpy(dst + long(h) * (m.D + m.R), src, sizeof(float) * m.R);
    }

    attention_forward(y, lse, s.q, s.k, s.v, mla_attn_dims(m, B, T));
}

void mla_core_backward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                       const float* proj, const float* saved, const float* y, const float* lse,
                       const float* dy, float* dproj, float* scratch, int B, int T) {
    const MlaDims m = mla_dims(c);
    const int N = B * T;
    const auto s = mla_saved(m, saved, size_t(N));
    const size_t qa_norm = w.offset("attn.q_a_layernorm.weight");
    const size_t qb = w.offset("attn.q_b_proj.weight");
    const size_t kva_norm = w.offset("attn.kv_a_layernorm.weight");
    const size_t kvb = w.offset("attn.kv_b_proj.weight");

    float* dq = scratch;
    float* dk = dq + size_t(N) * m.QK;
    float* dv = dk + size_t(N) * m.QK;
    float* dkv = dv + size_t(N) * m.V;
    float* dcq = dkv + size_t(N) * m.KV;
    float* dckv = dcq + size_t(N) * m.ql;

    attention_backward(dq, dk, dv, dy, y, lse, s.q, s.k, s.v, mla_attn_dims(m, B, T));

    // k_pe feeds every head: its gradient is the sum over heads of the rope part of dk; then the
    // transpose rotation, into dproj's k_pe columns. dk's nope parts and dv are gathered into
    // the kv_b_proj output layout (per head [k_nope | v]).
    float* dk_pe = dproj + m.ql + m.kvl;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float* dkn = dk + long(n) * m.QK;
        float* g = dk_pe + long(n) * m.P;
        for (int j = 0; j < m.R; j++) g[j] = 0.0f;
        for (int h = 0; h < m.H; h++) {
            const float* dkh = dkn + long(h) * (m.D + m.R);
            for (int j = 0; j < m.R; j++) g[j] += dkh[m.D + j];
        }
        float* dkvn = dkv + long(n) * m.KV;
        for (int h = 0; h < m.H; h++) {
            float* o = dkvn + long(h) * (m.D + m.Dv);
            std::memcpy(o, dkn + long(h) * (m.D + m.R), sizeof(float) * m.D);
            std::memcpy(o + m.D, dv + long(n) * m.V + long(h) * m.Dv, sizeof(float) * m.Dv);
        }
    }
    rope_backward_inplace(dk_pe, B, T, 1, m.R, m.P, m.R, rope);

    // Query path: un-rotate q_pe's gradient, then through q_b_proj and q_a_layernorm.
    rope_backward_inplace(dq + m.D, B, T, m.H, m.R, m.QK, m.D + m.R, rope);
    gemm(false, false, N, m.ql, int(m.QK), 1.0f, dq, int(m.QK), w.W + qb, m.ql, 0.0f, dcq, m.ql);
    gemm(true, false, int(m.QK), m.ql, N, 1.0f, dq, int(m.QK), s.cq, m.ql, 1.0f, w.G + qb, m.ql);
    rmsnorm_w_backward(dproj, m.P, w.G + qa_norm, dcq, proj, m.P, w.W + qa_norm, s.rstd_q, N, m.ql);

    // KV path: through kv_b_proj and kv_a_layernorm.
    gemm(false, false, N, m.kvl, int(m.KV), 1.0f, dkv, int(m.KV), w.W + kvb, m.kvl, 0.0f, dckv,
         m.kvl);
    gemm(true, false, int(m.KV), m.kvl, N, 1.0f, dkv, int(m.KV), s.ckv, m.kvl, 1.0f, w.G + kvb,
         m.kvl);
    rmsnorm_w_backward(dproj + m.ql, m.P, w.G + kva_norm, dckv, proj + m.ql, m.P, w.W + kva_norm,
                       s.rstd_kv, N, m.kvl);
}

}  // namespace t6
