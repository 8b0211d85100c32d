// MLA over its latent cache (official llama-mla.py; DeepSeek-V2 Sec. 2.1; paper Appendix A.4).
// Each new token's fused projection row is proj = [cq_raw (d'_c) | ckv (d_c) | k_pe (d_h^R)]:
//   q        = q_b_proj(q_a_layernorm(cq_raw))   per head [q_nope (D) | q_pe (d_h^R)], q_pe rotated
//   c_KV     = kv_a_layernorm(ckv)                normalised *and* multiplied by the norm weight
//   record   = [c_KV (d_c) | k_pe (d_h^R), rotated at the token's position]
// The cache stores c_KV after kv_a_layernorm (weight applied): it is exactly the input of
// kv_b_proj, so per head k_nope = W_UK[h] c_KV and v = W_UV[h] c_KV with kv_b_proj split by rows
// into W_UK[h] (D x d_c) and W_UV[h] (Dv x d_c) (official kv.view(.., H, D + Dv)), and absorption
// needs no norm at read time. Cache bytes per token and layer: (d_c + d_h^R) * element size.
//  * Decoding (one token per sequence) is absorbed: q_lat[h] = W_UK[h]^T q_nope[h] (d_c), scores
//    s_h(j) = scale * (q_lat[h] . c_j + q_pe[h] . k_pe_j), softmax over the cache, latent output
//    o_lat[h] = sum_j p_h(j) c_j, then y[h] = W_UV[h] o_lat[h] once per step (flash_mla_decode).
//  * Chunks (prefill, scoring) decompress K/V tile by tile from the latent records (one GEMM with
//    kv_b_proj per tile, shared by the whole chunk) and run tiled causal attention with an online
//    softmax, so a long history is never materialised at once.
// scale = 1/sqrt(D + d_h^R) (official q_head_dim, docs/numerics.md §7).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "infer/cache_attention.h"
#include "kernels/flash_decode.h"
#include "kernels/gemm.h"
#include "kernels/vec_math.h"

namespace t6 {

namespace {

constexpr float kMlaNormEps = 1e-6f;  // official RMSNorm(..., eps=1e-6) of q_a / kv_a
constexpr int kTile = 64;             // chunk path: cache keys per decompressed tile
constexpr int kRows = 64;             // chunk path: query rows per task

struct Dims {
    int H, D, R, Dv, ql, C;
    long P, QK, KV, rec;
};

// out = (x * rstd) * w, as attention_mla.cpp's rmsnorm_w_forward (sum of squares in double), so
// that cached decoding reproduces the training forward pass.
void rmsnorm_w(float* out, const float* x, const float* w, int C) {
    double s = 0.0;
    for (int c = 0; c < C; c++) s += double(x[c]) * double(x[c]);
    const float r = float(1.0 / std::sqrt(s / C + double(kMlaNormEps)));
    for (int c = 0; c < C; c++) out[c] = (x[c] * r) * w[c];
}

// Tiled causal attention of the chunk's queries q (n, H, D+R) at positions p0 .. p0+n-1 over
// cache records 0 .. p0+n-1, K/V of each tile decompressed from the latent with kv_b_proj.
// y (n, H, Dv) doubles as the output accumulator; ml holds the running max and sum (2, n, H).
template <typename T>
void chunk_attention(float* y, const float* q, const T* cache, int p0, int n, const Dims& m,
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
        gemm(false, true, nk, HKV, m.C, 1.0f, recs, rec, w_kvb, m.C, 0.0f, kv, HKV);
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
                    gemm(false, true, nq, nk, R, scale, qh + D, QK, recs + m.C, rec, 1.0f, S.data(),
                         kTile);
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

void mla_cache_attention(const ModelConfig& c, KVCache& cache, int layer, const LayerParamRef& w,
                         const RopeTables& rope, float* proj, const NewTokens& t, float* y,
                         std::vector<float>& scratch) {
    Dims m;
    m.H = c.n_head;
    m.D = c.head_dim;
    m.R = c.qk_rope_head_dim;
    m.Dv = c.v_head_dim;
    m.ql = c.q_lora_rank;
    m.C = c.kv_lora_rank;
    m.P = long(m.ql) + m.C + m.R;
    m.QK = long(m.H) * (m.D + m.R);
    m.KV = long(m.H) * (m.D + m.Dv);
    m.rec = long(m.C) + m.R;
    const int n = t.n, H = m.H, D = m.D, R = m.R, Dv = m.Dv, C = m.C;
    const float scale = 1.0f / std::sqrt(float(D + R));
    const float* w_qa_norm = w.W + w.offset("attn.q_a_layernorm.weight");
    const float* w_qb = w.W + w.offset("attn.q_b_proj.weight");  // (H*(D+R), d'_c)
    const float* w_kva_norm = w.W + w.offset("attn.kv_a_layernorm.weight");
    const float* w_kvb = w.W + w.offset("attn.kv_b_proj.weight");  // (H*(D+Dv), d_c)

    // Scratch: cq (n, d'_c) | q (n, H, D+R) | records (n, d_c+R) | path-specific buffers.
    const size_t n_cq = size_t(n) * m.ql, n_q = size_t(n) * m.QK, n_rec = size_t(n) * m.rec;
    const size_t n_path =
        t.chunk ? size_t(kTile) * (m.rec + m.KV) + 2 * size_t(n) * H : size_t(n) * H * (m.rec + C);
    scratch.resize(n_cq + n_q + n_rec + n_path);
    float* cq = scratch.data();
    float* q = cq + n_cq;
    float* recs = q + n_q;
    float* work = recs + n_rec;

    // New tokens: queries, then the cache records [c_KV normalised | k_pe rotated].
    for (int i = 0; i < n; i++) {
        float* row = proj + i * m.P;
        rmsnorm_w(cq + size_t(i) * m.ql, row, w_qa_norm, m.ql);
        rmsnorm_w(recs + size_t(i) * m.rec, row + m.ql, w_kva_norm, C);
        rope_forward_inplace(row + m.ql + C, 1, 1, 1, R, m.P, R, rope, t.pos[i]);
        std::memcpy(recs + size_t(i) * m.rec + C, row + m.ql + C, sizeof(float) * R);
        cache.store(layer, t.slot[i], t.pos[i], recs + size_t(i) * m.rec);
    }
    linear_forward(q, cq, w_qb, n, m.ql, int(m.QK));
    for (int i = 0; i < n; i++)
        rope_forward_inplace(q + size_t(i) * m.QK + D, 1, 1, H, R, m.QK, D + R, rope, t.pos[i]);

    const bool f32 = cache.type() == CacheType::f32, q8 = cache.type() == CacheType::q8;
    if (t.chunk) {
        float* tile_recs = work;
        float* kv = tile_recs + size_t(kTile) * m.rec;
        float* ml = kv + size_t(kTile) * m.KV;
        // The history read contiguously (copied out of the blocks when it spans several).
        const int len = t.pos[0] + n;
        if (f32 || q8) {  // q8: the history dequantized to float32
            thread_local std::vector<float> hist;
            chunk_attention(y, q, cache.gather_f32(layer, t.slot[0], len, hist), t.pos[0], n, m,
                            w_kvb, scale, tile_recs, kv, ml);
        } else {
            thread_local std::vector<uint16_t> hist;
            chunk_attention(y, q, cache.gather(layer, t.slot[0], len, hist), t.pos[0], n, m, w_kvb,
                            scale, tile_recs, kv, ml);
        }
        return;
    }

    // Absorbed decoding. q_abs (n, H, d_c+R) = per head [W_UK[h]^T q_nope[h] | q_pe[h]].
    float* qabs = work;
    float* olat = qabs + size_t(n) * H * m.rec;  // (n, H, d_c)
    const int ldq = int(H * m.rec);
    for (int h = 0; h < H; h++) {
        const float* wk = w_kvb + size_t(h) * (D + Dv) * C;  // W_UK[h] (D, d_c)
        gemm(false, false, n, C, D, 1.0f, q + size_t(h) * (D + R), int(m.QK), wk, C, 0.0f,
             qabs + size_t(h) * m.rec, ldq);
        for (int i = 0; i < n; i++)
            std::memcpy(qabs + size_t(i) * ldq + size_t(h) * m.rec + C,
                        q + size_t(i) * m.QK + size_t(h) * (D + R) + D, sizeof(float) * R);
    }
    const MlaCacheDims dims{H, C, R};
    std::vector<float*> outs(n);
    std::vector<const float*> qs(n);
    std::vector<int> lens(n);
    for (int i = 0; i < n; i++) {
        outs[i] = olat + size_t(i) * H * C;
        qs[i] = qabs + size_t(i) * ldq;
        lens[i] = t.pos[i] + 1;
    }
    if (f32) {
        std::vector<CacheBlocks<float>> caches(n);
        for (int i = 0; i < n; i++) caches[i] = cache.blocks<float>(layer, t.slot[i]);
        flash_mla_decode(outs.data(), qs.data(), caches.data(), lens.data(), n, dims, scale);
    } else if (q8) {
        std::vector<CacheBlocks<int8_t>> caches(n);
        for (int i = 0; i < n; i++) caches[i] = cache.blocks<int8_t>(layer, t.slot[i]);
        flash_mla_decode(outs.data(), qs.data(), caches.data(), lens.data(), n, dims, scale);
    } else {
        std::vector<CacheBlocks<uint16_t>> caches(n);
        for (int i = 0; i < n; i++) caches[i] = cache.blocks<uint16_t>(layer, t.slot[i]);
        flash_mla_decode(outs.data(), qs.data(), caches.data(), lens.data(), n, dims, scale);
    }
    // y[h] = W_UV[h] o_lat[h], once per step (values never leave the latent before this).
    for (int h = 0; h < H; h++) {
        const float* wv = w_kvb + (size_t(h) * (D + Dv) + D) * C;  // W_UV[h] (Dv, d_c)
        gemm(false, true, n, Dv, C, 1.0f, olat + size_t(h) * C, H * C, wv, C, 0.0f, y + h * Dv,
             H * Dv);
    }
}

}  // namespace t6
