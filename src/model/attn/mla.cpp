// Multi-head Latent Attention (official llama-mla.py, DeepSeek-V2 style; docs/numerics.md §5, §7,
// §8, §16). Per token, from the fused projection row
//   proj = x @ [q_a_proj; kv_a_proj_with_mqa]^T = [cq_raw (q_lora) | ckv (kv_lora) | k_pe (R)]:
//   q   = q_b_proj(q_a_layernorm(cq_raw))            per head [q_nope (D) | q_pe (R)]
//   kv  = kv_b_proj(kv_a_layernorm(ckv))             per head [k_nope (D) | v (Dv)]
//   q_pe, k_pe rotated (half-split within the R dims); k_pe is one vector shared by every head
//   k   = [k_nope | k_pe]                            per head
//   y   = causal softmax(q k^T / sqrt(D + R)) v      (the scale uses q_head_dim, §7)
// The two latent norms are the official class RMSNorm: x * rsqrt(mean(x^2) + 1e-6) * weight.
//
// Cached inference (DeepSeek-V2 Sec. 2.1; paper Appendix A.4) keeps per token and layer the record
//   [c_KV (d_c = kv_lora) | k_pe (d_h^R = R), rotated at the token's position]
// with c_KV stored after kv_a_layernorm (weight applied): it is exactly the input of kv_b_proj, so
// per head k_nope = W_UK[h] c_KV and v = W_UV[h] c_KV with kv_b_proj split by rows into W_UK[h]
// (D x d_c) and W_UV[h] (Dv x d_c) (official kv.view(.., H, D + Dv)), and absorption needs no norm
// at read time.
//  * Decoding (one token per sequence) is absorbed: q_lat[h] = W_UK[h]^T q_nope[h] (d_c), scores
//    s_h(j) = scale * (q_lat[h] . c_j + q_pe[h] . k_pe_j), softmax over the cache, latent output
//    o_lat[h] = sum_j p_h(j) c_j, then y[h] = W_UV[h] o_lat[h] once per step (flash_mla_decode).
//  * Chunks (prefill, scoring) decompress K/V tile by tile from the latent records (one GEMM with
//    kv_b_proj per tile, shared by the whole chunk) and run tiled causal attention with an online
//    softmax, so a long history is never materialised at once.
// scale = 1/sqrt(D + R) (official q_head_dim, docs/numerics.md §7) in both cores.
// With quantized weights (the Decoder's q8 / q4 / q8a8 / q4a8, LayerParamRef::quant) the cached
// core reads q_b_proj and kv_b_proj as stored codes (docs/quantization.md): q_b_proj is an
// ordinary linear layer (int8 activations in the a8 types); the absorbed products W_UK[h]^T q_nope
// and W_UV[h] o_lat run over the row ranges of kv_b_proj's codes (kernels/quant_rowsum.h, float32
// activations in every type); chunks decompress K/V with the dequantized kv_b_proj. So decoding
// computes the float32 model whose up-projections are the dequantized ones.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/parallel_items.h"
#include "kernels/attention.h"
#include "kernels/flash_decode.h"
#include "kernels/gemm.h"
#include "kernels/head_rows.h"
#include "kernels/int8_linear.h"
#include "kernels/linear_bf16.h"
#include "kernels/quant_rowsum.h"
#include "kernels/vec_math.h"
#include "model/attn/cores.h"

namespace t6 {

namespace {

constexpr float kMlaNormEps = 1e-6f;  // official RMSNorm(..., eps=1e-6) of q_a / kv_a

// The core's own tensors, in the order of CoreWeights (mla_core_tensors).
enum MlaWeight { kQaNorm, kQb, kKvaNorm, kKvb };

// The description of the layer's weights both cores read.
struct MlaDims {
    int H, D, R, Dv, ql, kvl;
    long P;    // fused projection row: [cq_raw (ql) | ckv (kvl) | k_pe (R)]
    long QK;   // q/k row: H * (D + R)
    long V;    // v row: H * Dv
    long KV;   // kv_b_proj row: H * (D + Dv)
    long rec;  // cache record: kvl + R
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
    m.rec = long(m.kvl) + m.R;
    return m;
}

float mla_scale(const MlaDims& m) {
    return 1.0f / std::sqrt(float(m.D + m.R));
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
    d.scale = mla_scale(m);
    return d;
}

// One row of RMSNorm with weight, as the kernel rmsnorm_forward (sum of squares in double):
// out = (x * rstd) * w; returns rstd. The training and cached cores both use it, so cached
// decoding reproduces the training forward pass.
float rmsnorm_w_row(float* out, const float* x, const float* w, int C) {
    double s = 0.0;
    for (int c = 0; c < C; c++) s += double(x[c]) * double(x[c]);
    const float r = float(1.0 / std::sqrt(s / C + double(kMlaNormEps)));
    for (int c = 0; c < C; c++) out[c] = (x[c] * r) * w[c];
    return r;
}

// rmsnorm_w_row over the rows of a strided input (the latent slices of proj).
void rmsnorm_w_forward(float* out, float* rstd, const float* inp, long ld_inp, const float* w,
                       int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) rstd[n] = rmsnorm_w_row(out + long(n) * C, inp + n * ld_inp, w, C);
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

constexpr int kTile = 64;  // chunk path: cache keys per decompressed tile
constexpr int kRows = 64;  // chunk path: query rows per task

// Tiled causal attention of the chunk's queries q (n, H, D+R) at positions p0 .. p0+n-1 over
// cache records 0 .. p0+n-1, K/V of each tile decompressed from the latent with kv_b_proj.
// y (n, H, Dv) doubles as the output accumulator; ml holds the running max and sum (2, n, H).
template <typename T>
void chunk_attention(float* y, const float* q, const T* cache, int p0, int n, const MlaDims& m,
                     const float* w_kvb, float scale, float* recs_buf, float* kv, float* ml) {
    const int H = m.H, D = m.D, R = m.R, Dv = m.Dv, HKV = int(m.KV), QK = int(m.QK);
    const int HDv = H * Dv, rec = int(m.rec);
    float* mx = ml;
    float* sum = ml + size_t(n) * H;
    std::fill(mx, mx + size_t(n) * H, -INFINITY);
    std::fill(sum, sum + size_t(n) * H, 0.0f);
    std::fill(y, y + size_t(n) * HDv, 0.0f);
    const int last_key = p0 + n - 1;
    for (int k0 = 0; k0 <= last_key; k0 += kTile) {
        const int nk = std::min(kTile, last_key + 1 - k0);
        const float* recs;
        if constexpr (std::is_same_v<T, float>) {
            recs = cache + long(k0) * rec;
        } else {
            const T* src = cache + long(k0) * rec;
            for (long i = 0; i < long(nk) * rec; i++) recs_buf[i] = bf16_to_float(src[i]);
            recs = recs_buf;
        }
        // kv (nk, H, D + Dv) = c_KV @ kv_b_proj^T: per head [k_nope | v] (official layout).
        gemm(false, true, nk, HKV, m.kvl, 1.0f, recs, rec, w_kvb, m.kvl, 0.0f, kv, HKV);
        // Query rows before the tile's first key see none of it (causal).
        const int i0 = std::max(0, k0 - p0);
        const int blocks = (n - i0 + kRows - 1) / kRows;
#pragma omp parallel
        {
            std::vector<float> S(size_t(kRows) * kTile);
#pragma omp for schedule(dynamic, 1) collapse(2)
            for (int h = 0; h < H; h++)
                for (int b = 0; b < blocks; b++) {
                    const int ia = i0 + b * kRows, nq = std::min(kRows, n - ia);
                    const float* qh = q + size_t(ia) * QK + size_t(h) * (D + R);
                    // S = scale * (q_nope . k_nope + q_pe . k_pe), k_pe shared by every head.
                    gemm(false, true, nq, nk, D, scale, qh, QK, kv + size_t(h) * (D + Dv), HKV,
                         0.0f, S.data(), kTile);
                    gemm(false, true, nq, nk, R, scale, qh + D, QK, recs + m.kvl, rec, 1.0f,
                         S.data(), kTile);
                    for (int i = 0; i < nq; i++) {
                        float* s = S.data() + size_t(i) * kTile;
                        const int qpos = p0 + ia + i;
                        for (int jj = std::max(0, qpos + 1 - k0); jj < nk; jj++) s[jj] = -INFINITY;
                        const size_t st = size_t(ia + i) * H + h;
                        const float mnew = std::max(mx[st], detail::row_max(s, nk));
                        const float alpha = std::exp(mx[st] - mnew);
                        sum[st] = sum[st] * alpha + detail::exp_shift_sum(s, nk, mnew);
                        mx[st] = mnew;
                        if (alpha != 1.0f) {
                            float* acc = y + size_t(ia + i) * HDv + size_t(h) * Dv;
                            for (int d = 0; d < Dv; d++) acc[d] *= alpha;
                        }
                    }
                    gemm(false, false, nq, Dv, nk, 1.0f, S.data(), kTile,
                         kv + size_t(h) * (D + Dv) + D, HKV, 1.0f, y + size_t(ia) * HDv + h * Dv,
                         HDv);
                }
        }
    }
    for (long st = 0; st < long(n) * H; st++) {
        const float inv = 1.0f / sum[st];
        for (int d = 0; d < Dv; d++) y[st * Dv + d] *= inv;
    }
}

}  // namespace

// ---- facts (kinds table) ----

std::vector<ProjectionSpec> mla_projections(const ModelConfig& c) {
    // The two projections of x (official llama-mla.py); the up-projections and the latent norms
    // are the core's own tensors (mla_core_tensors), after them in the layout.
    return {{"q_a_proj", c.q_lora_rank},
            {"kv_a_proj_with_mqa", c.kv_lora_rank + c.qk_rope_head_dim}};
}

std::vector<CoreTensorSpec> mla_core_tensors(const ModelConfig& c) {
    const int64_t H = c.n_head;
    return {{"q_a_layernorm.weight", {c.q_lora_rank}},
            {"q_b_proj.weight", {H * (c.head_dim + c.qk_rope_head_dim), c.q_lora_rank}},
            {"kv_a_layernorm.weight", {c.kv_lora_rank}},
            {"kv_b_proj.weight", {H * (c.head_dim + c.v_head_dim), c.kv_lora_rank}}};
}

long mla_cache_numbers(const ModelConfig& c) {
    return mla_dims(c).rec;
}

Q8Layout mla_cache_q8_layout(const ModelConfig& c) {
    return q8_layout(MlaCacheDims{c.n_head, c.kv_lora_rank, c.qk_rope_head_dim});
}

// Absorbed decoding per cached token and head: the score q_abs.[c_KV | k_pe] (d_c + R) and the
// latent output p*c_KV (d_c), 2 FLOPs per multiply-add.
double mla_decode_flops(const ModelConfig& c) {
    return 2.0 * c.n_head * (2.0 * c.kv_lora_rank + c.qk_rope_head_dim);
}

// The up-projections are weight matmuls (counted with them); the norms are not counted.
double mla_extra_flops(const ModelConfig&) {
    return 0.0;
}

size_t mla_saved_per_token(const ModelConfig& c) {
    const MlaDims m = mla_dims(c);
    return size_t(m.ql) + 1 + size_t(m.kvl) + 1 + 2 * size_t(m.QK) + size_t(m.V);
}

size_t mla_scratch_per_token(const ModelConfig& c) {
    const MlaDims m = mla_dims(c);
    // dq, dk (H, D+R), dv (H, Dv), dkv (H, D+Dv), dcq (q_lora), dckv (kv_lora).
    return 2 * size_t(m.QK) + size_t(m.V) + size_t(m.KV) + size_t(m.ql) + size_t(m.kvl);
}

// ---- training ----

void mla_core_forward(const ModelConfig& c, const LayerParamRef& w, const RopeTables& rope,
                      float* proj, float* saved, float* y, float* lse, int B, int T) {
    const MlaDims m = mla_dims(c);
    const int N = B * T;
    const auto s = mla_saved(m, saved, size_t(N));
    const float* w_qa_norm = w.w(kQaNorm);
    const float* w_qb = w.w(kQb);  // (H*(D+R), ql)
    const float* w_kva_norm = w.w(kKvaNorm);
    const float* w_kvb = w.w(kKvb);  // (H*(D+Dv), kvl)
    float* k_pe = proj + m.ql + m.kvl;

    // q = q_b_proj(q_a_layernorm(q_a_proj(x))), one GEMM over the batch; rows ordered per head
    // [nope | rope] (official q.view(B, T, H, q_head_dim) then split).
    rmsnorm_w_forward(s.cq, s.rstd_q, proj, m.P, w_qa_norm, N, m.ql);
    linear_forward(s.q, s.cq, w_qb, N, m.ql, int(m.QK));
    rope_forward_inplace(s.q + m.D, B, T, m.H, m.R, m.QK, m.D + m.R, rope);

    // kv = kv_b_proj(kv_a_layernorm(compressed_kv)): rows of head h are [k_nope (D) | v (Dv)].
    // Written straight into the assembled k (stride H*(D+R)) and v by one GEMM per head block.
    rmsnorm_w_forward(s.ckv, s.rstd_kv, proj + m.ql, m.P, w_kva_norm, N, m.kvl);
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
    const float *W_qa_norm = w.w(kQaNorm), *W_qb = w.w(kQb), *W_kva_norm = w.w(kKvaNorm),
                *W_kvb = w.w(kKvb);
    float *G_qa_norm = w.g(kQaNorm), *G_qb = w.g(kQb), *G_kva_norm = w.g(kKvaNorm),
          *G_kvb = w.g(kKvb);

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
    gemm(false, false, N, m.ql, int(m.QK), 1.0f, dq, int(m.QK), W_qb, m.ql, 0.0f, dcq, m.ql);
    gemm(true, false, int(m.QK), m.ql, N, 1.0f, dq, int(m.QK), s.cq, m.ql, 1.0f, G_qb, m.ql);
    rmsnorm_w_backward(dproj, m.P, G_qa_norm, dcq, proj, m.P, W_qa_norm, s.rstd_q, N, m.ql);

    // KV path: through kv_b_proj and kv_a_layernorm.
    gemm(false, false, N, m.kvl, int(m.KV), 1.0f, dkv, int(m.KV), W_kvb, m.kvl, 0.0f, dckv, m.kvl);
    gemm(true, false, int(m.KV), m.kvl, N, 1.0f, dkv, int(m.KV), s.ckv, m.kvl, 1.0f, G_kvb, m.kvl);
    rmsnorm_w_backward(dproj + m.ql, m.P, G_kva_norm, dckv, proj + m.ql, m.P, W_kva_norm, s.rstd_kv,
                       N, m.kvl);
}

// ---- cached inference ----

void mla_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch) {
    const MlaDims m = mla_dims(c);
    const int n = t.n, H = m.H, D = m.D, R = m.R, Dv = m.Dv, C = m.kvl;
    const float scale = mla_scale(m);
    // Resolved once per model (attention_core_weights): no lookup by name per step.
    const float* w_qa_norm = w.w(kQaNorm);
    const float* w_qb = w.w(kQb);  // (H*(D+R), d'_c)
    const float* w_kva_norm = w.w(kKvaNorm);
    const float* w_kvb = w.w(kKvb);  // (H*(D+Dv), d_c)
    // Quantized copies (null: float32 above).
    const QuantMatrix* q_qb = w.q(kQb);
    const QuantMatrix* q_kvb = w.q(kKvb);
    const bool a8 = w.quant != nullptr && w.quant->int8_activations;

    // Scratch: cq (n, d'_c) | q (n, H, D+R) | records (n, d_c+R) | path-specific buffers (chunks
    // with a quantized kv_b_proj: also its dequantized copy).
    const size_t n_cq = size_t(n) * m.ql, n_q = size_t(n) * m.QK, n_rec = size_t(n) * m.rec;
    const size_t n_path = t.chunk ? size_t(kTile) * (m.rec + m.KV) + 2 * size_t(n) * H +
                                        (q_kvb ? size_t(m.KV) * C : 0)
                                  : size_t(n) * H * (m.rec + C);
    scratch.resize(n_cq + n_q + n_rec + n_path);
    float* cq = scratch.data();
    float* q = cq + n_cq;
    float* recs = q + n_q;
    float* work = recs + n_rec;

    // New tokens: queries, then the cache records [c_KV normalised | k_pe rotated].
    for (int i = 0; i < n; i++) {
        float* row = proj + i * m.P;
        rmsnorm_w_row(cq + size_t(i) * m.ql, row, w_qa_norm, m.ql);
        rmsnorm_w_row(recs + size_t(i) * m.rec, row + m.ql, w_kva_norm, C);
        rope_forward_inplace(row + m.ql + C, 1, 1, 1, R, m.P, R, rope, t.pos[i]);
        std::memcpy(recs + size_t(i) * m.rec + C, row + m.ql + C, sizeof(float) * R);
        cache.store(layer, t.slot[i], t.pos[i], recs + size_t(i) * m.rec);
    }
    if (q_qb == nullptr && n <= kFewRowsF32)  // decoding steps: the GEMV, as the Decoder's
        linear_f32_few_rows(q, cq, w_qb, n, m.ql, int(m.QK), 0.0f);
    else if (q_qb == nullptr)
        linear_forward(q, cq, w_qb, n, m.ql, int(m.QK));
    else if (a8)
        linear_a8(q, cq, *q_qb, n, 0.0f);
    else
        linear_quant(q, cq, *q_qb, n, 0.0f);
    for (int i = 0; i < n; i++)
        rope_forward_inplace(q + size_t(i) * m.QK + D, 1, 1, H, R, m.QK, D + R, rope, t.pos[i]);

    if (t.chunk) {
        float* tile_recs = work;
        float* kv = tile_recs + size_t(kTile) * m.rec;
        float* ml = kv + size_t(kTile) * m.KV;
        const float* wkv = w_kvb;
        if (q_kvb) {  // the dequantized weights w', once per chunk (the tiles' GEMMs read them)
            float* deq = ml + 2 * size_t(n) * H;
            dequantize_matrix(*q_kvb, deq);
            wkv = deq;
        }
        with_history(cache, layer, t.slot[0], t.pos[0] + n, [&](const auto* hist) {
            chunk_attention(y, q, hist, t.pos[0], n, m, wkv, scale, tile_recs, kv, ml);
        });
        return;
    }

    // Absorbed decoding. q_abs (n, H, d_c+R) = per head [W_UK[h]^T q_nope[h] | q_pe[h]].
    float* qabs = work;
    float* olat = qabs + size_t(n) * H * m.rec;  // (n, H, d_c)
    const int ldq = int(H * m.rec);
    // The per-head products of a quantized kv_b_proj run in parallel over (token, head) pairs
    // (each a few KB of codes) when there is enough work.
    const bool par = size_t(n) * H * (D + Dv) * C >= (size_t(1) << 16);
    if (q_kvb) {
        // q_lat[h] = W_UK[h]^T q_nope[h] over the codes of head h's first D rows.
        parallel_items(
            long(n) * H,
            [&](long ih) {
                const int i = int(ih / H), h = int(ih % H);
                quant_row_sum(qabs + size_t(i) * ldq + size_t(h) * m.rec,
                              q + size_t(i) * m.QK + size_t(h) * (D + R), *q_kvb, h * (D + Dv), D);
            },
            par);
    } else if (n == 1) {
        // Float32 kv_b_proj, one token: q_lat[h] = sum_d q_nope[h][d] W_UK[h][d][:], the D rows
        // of W_UK[h] (D, d_c) scaled and summed (rows_axpy), in one parallel loop over the heads
        // and the two halves of the latent (2H items: an odd H over two threads balances). A BLAS
        // call per head (a 1-row product of 64 KB of weights) cost more in call and threading
        // overhead than the bytes take to stream; with more tokens the blocked BLAS product wins.
        const int half = std::min(C, (C / 2 + 15) / 16 * 16);  // whole vectors in the first half
        parallel_items(
            2L * H,
            [&](long hk) {
                const int h = int(hk / 2), c0 = hk % 2 ? half : 0, c1 = hk % 2 ? C : half;
                const float* wk = w_kvb + size_t(h) * (D + Dv) * C;
                rows_axpy(qabs + size_t(h) * m.rec + c0, q + size_t(h) * (D + R), wk + c0, C, D,
                          c1 - c0);
            },
            par);
    } else {
        for (int h = 0; h < H; h++) {
            const float* wk = w_kvb + size_t(h) * (D + Dv) * C;  // W_UK[h] (D, d_c)
            gemm(false, false, n, C, D, 1.0f, q + size_t(h) * (D + R), int(m.QK), wk, C, 0.0f,
                 qabs + size_t(h) * m.rec, ldq);
        }
    }
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++)
            std::memcpy(qabs + size_t(i) * ldq + size_t(h) * m.rec + C,
                        q + size_t(i) * m.QK + size_t(h) * (D + R) + D, sizeof(float) * R);
    const MlaCacheDims dims{H, C, R};
    std::vector<float*> outs(n);
    std::vector<const float*> qs(n);
    std::vector<int> lens(n);
    for (int i = 0; i < n; i++) {
        outs[i] = olat + size_t(i) * H * C;
        qs[i] = qabs + size_t(i) * ldq;
        lens[i] = t.pos[i] + 1;
    }
    with_cache_blocks(cache, layer, t.slot, n, [&](const auto* caches) {
        flash_mla_decode(outs.data(), qs.data(), caches, lens.data(), n, dims, scale);
    });
    // y[h] = W_UV[h] o_lat[h], once per step (values never leave the latent before this).
    if (q_kvb) {
        parallel_items(
            long(n) * H,
            [&](long ih) {
                const int i = int(ih / H), h = int(ih % H);
                quant_rows_dot(y + size_t(i) * H * Dv + size_t(h) * Dv,
                               olat + (size_t(i) * H + h) * C, *q_kvb, h * (D + Dv) + D, Dv);
            },
            par);
        return;
    }
    if (n == 1) {
        // Float32, one token: a dot product per row of W_UV[h] (Dv, d_c) (rows_dot), over the
        // heads and the two halves of their rows as above.
        const int half = std::min(Dv, (Dv / 2 + 3) / 4 * 4);  // rows_dot takes four rows at a time
        parallel_items(
            2L * H,
            [&](long hk) {
                const int h = int(hk / 2), j0 = hk % 2 ? half : 0, j1 = hk % 2 ? Dv : half;
                const float* wv = w_kvb + (size_t(h) * (D + Dv) + D + j0) * C;
                rows_dot(y + size_t(h) * Dv + j0, wv, C, j1 - j0, olat + size_t(h) * C, C);
            },
            par);
        return;
    }
    for (int h = 0; h < H; h++) {
        const float* wv = w_kvb + (size_t(h) * (D + Dv) + D) * C;  // W_UV[h] (Dv, d_c)
        gemm(false, true, n, Dv, C, 1.0f, olat + size_t(h) * C, H * C, wv, C, 0.0f, y + h * Dv,
             H * Dv);
    }
}

}  // namespace t6
