// t6 bench kernels: every kernel family at the small preset's shapes, once per SIMD dispatch
// target available here (or the ones --targets names), with the time per call (median of the
// repeats), the achieved GFLOP/s and GB/s, and the fraction of this machine's roof measured in the
// same run: the fp32 FMA peak of that target (machine_probe.h) for a compute-bound kernel, the
// streaming read bandwidth for a memory-bound one. A kernel is compute-bound when its FLOPs take
// longer at the FMA peak than its bytes at the read bandwidth.
//
// Bytes are the compulsory traffic of one call (every input read once, every output written
// once; 4 bytes per float, 2 per bf16), FLOPs the multiply-adds of the definition (2 each) plus
// the elementwise operations named below, an exp counted as one. Shapes (small preset: d_model
// 768, head_dim 64, T6 with 34 heads, R_Q 6, R_K = R_V 2; MHA 12 heads; vocab 50304; training at
// batch 4 x sequence 256 = N 1024 rows; decode over 16K cached tokens), per call:
//   flash_tpa_decode[_bf16]  S seqs x L tokens: bytes S L (R_K+R_V)(H+D) e,
//                            FLOPs 2 S L (R_Q R_K D + H R_Q R_K + H R_V D)
//   flash_kv_decode (MHA)    bytes S L 2 H D e, FLOPs 4 S L H D
//   flash_kv_decode_mqa      small-mqa's 23 query heads on 1 KV head (bound by its arithmetic,
//                            where MHA is bound by the cache's bytes): bytes S L 2 D e,
//                            FLOPs 4 S L H D
//   flash_mla_decode         bytes S L (d_c + d_R) e, FLOPs 2 S L H (2 d_c + d_R)
//   linear_f32_few_rows / linear_bf16 (lm_head, N rows): bytes OC C w + 4 N (C + OC),
//                            FLOPs 2 N C OC
//   attention_forward        P = B H T(T+1)/2 causal pairs: FLOPs 4 P D; bytes 4 (4 B T H D + B H
//   T) attention_backward       FLOPs 10 P D (S recomputed, dP, dV, dQ, dK); bytes 4 (8 B T H D + B
//   H T) cross_entropy            forward and backward in one call, in place: FLOPs 5 N V, bytes 8
//   N V rmsnorm_forward          FLOPs 3 N C, bytes 4 (2 N C + N); backward FLOPs 6 N C,
//                            bytes 4 (4 N C + N) (dinp is accumulated: read and written)
//   rope_forward/backward    n = B T (R_Q+R_K) 64 numbers: FLOPs 3 n, bytes 8 n
//   swiglu_forward           n = N hidden: FLOPs 5 n, bytes 12 n; backward FLOPs 10 n, bytes 20 n
//   tpa_contract_forward     FLOPs 2 N H R D, bytes 4 (N H R + N R D + N H D); backward twice
//                            the FLOPs, bytes 4 (N H D + 2 (N H R + N R D))
//   adamw_step               n parameters: FLOPs 12 n, bytes 28 n (p, g, m, v read; p, m, v
//                            written)
//   to_bf16                  FLOPs n, bytes 6 n
// Working sets that fit in the caches (RMSNorm, RoPE at these shapes) can beat the DRAM read
// bandwidth: a fraction above 1 means exactly that.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/machine_probe.h"
#include "cli/simd_targets_arg.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/simd.h"
#include "core/threads.h"
#include "core/timing.h"
#include "kernels/attention.h"
#include "kernels/bf16.h"
#include "kernels/cross_entropy.h"
#include "kernels/flash_decode.h"
#include "kernels/gemm.h"
#include "kernels/int8_linear.h"
#include "kernels/linear_bf16.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "kernels/tpa_contract.h"
#include "model/config.h"
#include "train/adamw.h"

namespace t6::cli {

namespace {

// Shapes of one run: the small preset's (quick: the same widths, small row and token counts).
struct Shapes {
    int train_batch = 4, train_seq = 256;  // N = 1024 rows
    int decode_seqs = 4, decode_ctx = 16384;
    int gemv_rows = 4;
    int ce_rows = 1024;
    size_t flat = size_t(16) << 20;  // AdamW parameters, to_bf16 numbers
    bool quick = false;
    static Shapes make(bool quick) {
        Shapes s;
        if (quick) {
            s.train_batch = 1;
            s.train_seq = 64;
            s.decode_seqs = 1;
            s.decode_ctx = 1024;
            s.gemv_rows = 1;
            s.ce_rows = 16;
            s.flat = size_t(256) << 10;
            s.quick = true;
        }
        return s;
    }
};

// One kernel family, set up once and then timed under every target.
struct Kernel {
    std::string name, shape;
    double flops = 0, bytes = 0;  // per call
    std::function<void()> run;
};

void fill(float* p, size_t n, uint32_t seed, float scale = 1.0f) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = scale * float(int32_t(x)) * (1.0f / 2147483648.0f);
    }
}

FloatBuffer random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
    FloatBuffer b(n);
    fill(b.data(), n, seed, scale);
    return b;
}

// 64-byte aligned like the model's and the cache's bf16 buffers (a std::vector's data sits 16
// bytes past a cache line, and unaligned 512-bit loads straddle two lines).
AlignedArray<uint16_t> random_bf16(size_t n, uint32_t seed) {
    FloatBuffer f = random_floats(n, seed);
    AlignedArray<uint16_t> out(n);
    to_bf16_serial(out.data(), f.data(), n);
    return out;
}

// clang-format off
const std::vector<std::string> kFamilies = {"flash_tpa_decode",
                                            "flash_tpa_decode_bf16",
                                            "flash_kv_decode",
                                            "flash_kv_decode_mqa",
                                            "flash_mla_decode",
                                            "linear_f32_few_rows",
                                            "linear_bf16",
                                            "int8_gemv",
                                            "attention_forward",
                                            "attention_backward",
                                            "cross_entropy",
                                            "rmsnorm_forward",
                                            "rmsnorm_backward",
                                            "rope_forward",
                                            "rope_backward",
                                            "swiglu_forward",
                                            "swiglu_backward",
                                            "tpa_contract_forward",
                                            "tpa_contract_backward",
                                            "adamw_step",
                                            "to_bf16"};
// clang-format on

// Builds the family `name` with its buffers (kept alive by the closure).
Kernel make_kernel(const std::string& name, const Shapes& sh) {
    const ModelConfig t6c = preset_config("small-t6"), mha = preset_config("small-mha"),
                      mqa = preset_config("small-mqa"), mla = preset_config("small-mla");
    Kernel k;
    k.name = name;
    const int S = sh.decode_seqs, L = sh.decode_ctx;
    const int N = sh.train_batch * sh.train_seq, B = sh.train_batch, T = sh.train_seq;
    if (name == "flash_tpa_decode" || name == "flash_tpa_decode_bf16") {
        const bool bf = name == "flash_tpa_decode_bf16";
        TpaCacheDims d{t6c.n_head, t6c.k_rank, t6c.v_rank, t6c.head_dim};
        const int H = d.H, D = d.D, Rq = t6c.q_rank;
        struct State {
            std::vector<FloatBuffer> out, qa, qb;
            FloatBuffer cache;
            AlignedArray<uint16_t> cache16;
            std::vector<float*> outp;
            std::vector<TpaQuery> qs;
            std::vector<const float*> c32;
            std::vector<const uint16_t*> c16;
            std::vector<int> lens;
        };
        auto st = std::make_shared<State>();
        // A float32 cache as decoding holds it: B_K grouped (kernels/flash_decode.h), each
        // sequence's records in whole groups of 16 tokens.
        if (!bf) d.group = kTpaGroup;
        const size_t per_seq = size_t(bf ? L : tpa_group_tokens(L)) * d.rec();
        if (bf)
            st->cache16 = random_bf16(per_seq * S, 5);
        else
            st->cache = random_floats(per_seq * S, 5);
        for (int i = 0; i < S; i++) {
            st->out.emplace_back(size_t(H) * D);
            st->qa.push_back(random_floats(size_t(H) * Rq, 10 + i));
            st->qb.push_back(random_floats(size_t(Rq) * D, 20 + i));
        }
        for (int i = 0; i < S; i++) {
            st->outp.push_back(st->out[i].data());
            st->qs.push_back({st->qa[i].data(), st->qb[i].data(), Rq});
            if (bf)
                st->c16.push_back(st->cache16.data() + per_seq * i);
            else
                st->c32.push_back(st->cache.data() + per_seq * i);
            st->lens.push_back(L);
        }
        const float scale = 1.0f / std::sqrt(float(D));
        k.bytes = double(S) * L * d.rec() * (bf ? 2 : 4);
        k.flops =
            2.0 * S * L * (double(Rq) * d.Rk * D + double(H) * Rq * d.Rk + double(H) * d.Rv * D);
        k.shape = "S=" + std::to_string(S) + " L=" + std::to_string(L) + " H=" + std::to_string(H) +
                  " Rq=" + std::to_string(Rq) + " Rk=Rv=" + std::to_string(d.Rk) +
                  " D=" + std::to_string(D) + (bf ? "" : " B_K grouped");
        k.run = [st, d, S, scale, bf] {
            if (bf)
                flash_tpa_decode<uint16_t>(st->outp.data(), st->qs.data(), st->c16.data(),
                                           st->lens.data(), S, d, scale);
            else
                flash_tpa_decode<float>(st->outp.data(), st->qs.data(), st->c32.data(),
                                        st->lens.data(), S, d, scale);
        };
    } else if (name == "flash_kv_decode" || name == "flash_kv_decode_mqa" ||
               name == "flash_mla_decode") {
        const bool is_mla = name == "flash_mla_decode";
        const ModelConfig& kv = name == "flash_kv_decode_mqa" ? mqa : mha;
        KvCacheDims kd{kv.n_head, kv.kv_heads(), kv.head_dim};
        MlaCacheDims md{mla.n_head, mla.kv_lora_rank, mla.qk_rope_head_dim};
        const long rec = is_mla ? md.rec() : kd.rec();
        const size_t qn = is_mla ? size_t(md.H) * (md.C + md.R) : size_t(kd.Hq) * kd.D;
        const size_t on = is_mla ? size_t(md.H) * md.C : size_t(kd.Hq) * kd.D;
        struct State {
            FloatBuffer cache;
            std::vector<FloatBuffer> q, out;
            std::vector<float*> outp;
            std::vector<const float*> qp, cp;
            std::vector<int> lens;
        };
        auto st = std::make_shared<State>();
        const size_t per_seq = size_t(L) * rec;
        st->cache = random_floats(per_seq * S, 6);
        for (int i = 0; i < S; i++) {
            st->q.push_back(random_floats(qn, 30 + i));
            st->out.emplace_back(on);
        }
        for (int i = 0; i < S; i++) {
            st->outp.push_back(st->out[i].data());
            st->qp.push_back(st->q[i].data());
            st->cp.push_back(st->cache.data() + per_seq * i);
            st->lens.push_back(L);
        }
        k.bytes = double(S) * L * rec * 4;
        if (is_mla) {
            k.flops = 2.0 * S * L * md.H * (2.0 * md.C + md.R);
            k.shape = "S=" + std::to_string(S) + " L=" + std::to_string(L) +
                      " H=" + std::to_string(md.H) + " d_c=" + std::to_string(md.C) +
                      " d_R=" + std::to_string(md.R);
            const float scale = 1.0f / std::sqrt(float(mla.head_dim + md.R));
            k.run = [st, md, S, scale] {
                flash_mla_decode<float>(st->outp.data(), st->qp.data(), st->cp.data(),
                                        st->lens.data(), S, md, scale);
            };
        } else {
            k.flops = 4.0 * S * L * kd.Hq * kd.D;
            k.shape = "S=" + std::to_string(S) + " L=" + std::to_string(L) +
                      " H=" + std::to_string(kd.Hq) + " Hkv=" + std::to_string(kd.Hkv) +
                      " D=" + std::to_string(kd.D);
            const float scale = 1.0f / std::sqrt(float(kd.D));
            k.run = [st, kd, S, scale] {
                flash_kv_decode<float>(st->outp.data(), st->qp.data(), st->cp.data(),
                                       st->lens.data(), S, kd, scale);
            };
        }
    } else if (name == "linear_f32_few_rows" || name == "linear_bf16") {
        const bool bf = name == "linear_bf16";
        const int R = sh.gemv_rows, C = t6c.n_embd, OC = sh.quick ? 3072 : t6c.vocab_size;
        auto in = std::make_shared<FloatBuffer>(random_floats(size_t(R) * C, 7));
        auto out = std::make_shared<FloatBuffer>(size_t(R) * OC);
        k.bytes = double(OC) * C * (bf ? 2 : 4) + 4.0 * R * (C + OC);
        k.flops = 2.0 * R * C * OC;
        k.shape = "N=" + std::to_string(R) + " C=" + std::to_string(C) +
                  " OC=" + std::to_string(OC) + (sh.quick ? "" : " (lm_head)");
        if (bf) {
            auto w = std::make_shared<AlignedArray<uint16_t>>(random_bf16(size_t(OC) * C, 8));
            k.run = [in, out, w, R, C, OC] {
                linear_bf16(out->data(), in->data(), w->data(), R, C, OC, 0.0f);
            };
        } else {
            auto w = std::make_shared<FloatBuffer>(random_floats(size_t(OC) * C, 8));
            k.run = [in, out, w, R, C, OC] {
                linear_f32_few_rows(out->data(), in->data(), w->data(), R, C, OC, 0.0f);
            };
        }
    } else if (name == "int8_gemv") {
        // q8 weights x int8 activations (q8a8) at the lm_head's shape, one token (decode); bytes:
        // the weight codes and scales. Each row's shape names the int8 kernel that ran.
        const int C = t6c.n_embd, OC = sh.quick ? 3072 : t6c.vocab_size;
        struct State {
            QuantMatrix W, X;
            FloatBuffer out;
        };
        auto st = std::make_shared<State>();
        const FloatBuffer w = random_floats(size_t(OC) * C, 8), x = random_floats(C, 7);
        quantize_matrix(st->W, w.data(), OC, C, QuantScheme::q8);
        quantize_activations_q8(st->X, x.data(), 1, C);
        st->out = FloatBuffer(OC);
        k.bytes = double(st->W.bytes());
        k.flops = 2.0 * C * OC;
        k.shape = "N=1 C=" + std::to_string(C) + " OC=" + std::to_string(OC) + " q8" +
                  (sh.quick ? "" : " (lm_head)");
        k.run = [st] { linear_a8_codes(st->out.data(), st->X, st->W, 0.0f); };
    } else if (name == "attention_forward" || name == "attention_backward") {
        const int H = t6c.n_head, D = t6c.head_dim;
        AttnDims ad;
        ad.B = B;
        ad.T = T;
        ad.Hq = ad.Hkv = H;
        ad.D = ad.Dv = D;
        ad.q_stride = ad.k_stride = ad.v_stride = long(H) * D;
        ad.scale = 1.0f / std::sqrt(float(D));
        const size_t n = size_t(B) * T * H * D;
        struct State {
            FloatBuffer q, k, v, out, lse, dout, dq, dk, dv;
        };
        auto st = std::make_shared<State>();
        st->q = random_floats(n, 11);
        st->k = random_floats(n, 12);
        st->v = random_floats(n, 13);
        st->out = FloatBuffer(n);
        st->lse = FloatBuffer(size_t(B) * H * T);
        attention_forward(st->out.data(), st->lse.data(), st->q.data(), st->k.data(), st->v.data(),
                          ad);
        const double P = double(B) * H * T * (T + 1) / 2;
        k.shape = "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) +
                  " D=" + std::to_string(D) + " causal";
        if (name == "attention_forward") {
            k.flops = 4.0 * P * D;
            k.bytes = 4.0 * (4.0 * n + double(B) * H * T);
            k.run = [st, ad] {
                attention_forward(st->out.data(), st->lse.data(), st->q.data(), st->k.data(),
                                  st->v.data(), ad);
            };
        } else {
            st->dout = random_floats(n, 14);
            st->dq = FloatBuffer(n);
            st->dk = FloatBuffer(n);
            st->dv = FloatBuffer(n);
            k.flops = 10.0 * P * D;
            k.bytes = 4.0 * (8.0 * n + double(B) * H * T);
            k.run = [st, ad] {
                attention_backward(st->dq.data(), st->dk.data(), st->dv.data(), st->dout.data(),
                                   st->out.data(), st->lse.data(), st->q.data(), st->k.data(),
                                   st->v.data(), ad);
            };
        }
    } else if (name == "cross_entropy") {
        const int R = sh.ce_rows, V = t6c.vocab_size;
        struct State {
            FloatBuffer logits, src;
            std::vector<int32_t> targets;
        };
        auto st = std::make_shared<State>();
        st->logits = random_floats(size_t(R) * V, 15, 4.0f);
        for (int i = 0; i < R; i++) st->targets.push_back(int32_t((i * 7919) % V));
        k.flops = 5.0 * R * V;
        k.bytes = 8.0 * R * V;
        k.shape = "N=" + std::to_string(R) + " V=" + std::to_string(V) + " in place";
        // In place: the logits become gradients (softmax - onehot)/N, which are as good logits
        // for the next call (bounded, same cost).
        k.run = [st, R, V] {
            cross_entropy_forward_backward(st->logits.data(), nullptr, st->logits.data(),
                                           st->targets.data(), R, V, 1.0f);
        };
    } else if (name == "rmsnorm_forward" || name == "rmsnorm_backward") {
        const int C = t6c.n_embd;
        struct State {
            FloatBuffer inp, out, rstd, dout, dinp;
        };
        auto st = std::make_shared<State>();
        st->inp = random_floats(size_t(N) * C, 16);
        st->out = FloatBuffer(size_t(N) * C);
        st->rstd = FloatBuffer(N);
        rmsnorm_forward(st->out.data(), st->rstd.data(), st->inp.data(), nullptr, N, C,
                        kRmsNormEpsF32);
        k.shape = "N=" + std::to_string(N) + " C=" + std::to_string(C);
        if (name == "rmsnorm_forward") {
            k.flops = 3.0 * N * C;
            k.bytes = 4.0 * (2.0 * N * C + N);
            k.run = [st, N, C] {
                rmsnorm_forward(st->out.data(), st->rstd.data(), st->inp.data(), nullptr, N, C,
                                kRmsNormEpsF32);
            };
        } else {
            st->dout = random_floats(size_t(N) * C, 17);
            st->dinp = FloatBuffer(size_t(N) * C);
            k.flops = 6.0 * N * C;
            k.bytes = 4.0 * (4.0 * N * C + N);
            k.run = [st, N, C] {
                rmsnorm_backward(st->dinp.data(), nullptr, st->dout.data(), st->inp.data(), nullptr,
                                 st->rstd.data(), N, C);
            };
        }
    } else if (name == "rope_forward" || name == "rope_backward") {
        const int nvec = t6c.q_rank + t6c.k_rank, dim = t6c.head_dim;
        const size_t n = size_t(N) * nvec * dim;
        auto x = std::make_shared<FloatBuffer>(random_floats(n, 18));
        auto tab = std::make_shared<RopeTables>(make_rope_tables(T, dim, t6c.rope_theta));
        k.flops = 3.0 * n;
        k.bytes = 8.0 * n;
        k.shape = "B=" + std::to_string(B) + " T=" + std::to_string(T) +
                  " vecs=" + std::to_string(nvec) + " dim=" + std::to_string(dim);
        const bool fwd = name == "rope_forward";
        k.run = [x, tab, B, T, nvec, dim, fwd] {
            if (fwd)
                rope_forward_inplace(x->data(), B, T, nvec, dim, long(nvec) * dim, dim, *tab);
            else
                rope_backward_inplace(x->data(), B, T, nvec, dim, long(nvec) * dim, dim, *tab);
        };
    } else if (name == "swiglu_forward" || name == "swiglu_backward") {
        const size_t n = size_t(N) * t6c.hidden_dim();
        struct State {
            FloatBuffer a, b, out, dout, da, db;
        };
        auto st = std::make_shared<State>();
        st->a = random_floats(n, 19, 3.0f);
        st->b = random_floats(n, 20);
        k.shape = "n=" + std::to_string(N) + "x" + std::to_string(t6c.hidden_dim());
        if (name == "swiglu_forward") {
            st->out = FloatBuffer(n);
            k.flops = 5.0 * n;
            k.bytes = 12.0 * n;
            k.run = [st, n] { swiglu_forward(st->out.data(), st->a.data(), st->b.data(), n); };
        } else {
            st->dout = random_floats(n, 21);
            st->da = FloatBuffer(n);
            st->db = FloatBuffer(n);
            k.flops = 10.0 * n;
            k.bytes = 20.0 * n;
            k.run = [st, n] {
                swiglu_backward(st->da.data(), st->db.data(), st->dout.data(), st->a.data(),
                                st->b.data(), n);
            };
        }
    } else if (name == "tpa_contract_forward" || name == "tpa_contract_backward") {
        const int H = t6c.n_head, R = t6c.q_rank, D = t6c.head_dim;
        struct State {
            FloatBuffer A, Bf, out, dout, dA, dB;
        };
        auto st = std::make_shared<State>();
        st->A = random_floats(size_t(N) * H * R, 22);
        st->Bf = random_floats(size_t(N) * R * D, 23);
        const double nA = double(N) * H * R, nB = double(N) * R * D, nO = double(N) * H * D;
        const float scale = 1.0f / float(R);
        k.shape = "N=" + std::to_string(N) + " H=" + std::to_string(H) + " R=" + std::to_string(R) +
                  " D=" + std::to_string(D) + " (query)";
        if (name == "tpa_contract_forward") {
            st->out = FloatBuffer(size_t(N) * H * D);
            k.flops = 2.0 * N * H * R * D;
            k.bytes = 4.0 * (nA + nB + nO);
            k.run = [st, N, H, R, D, scale] {
                tpa_contract_forward(st->out.data(), st->A.data(), long(H) * R, st->Bf.data(),
                                     long(R) * D, N, H, R, D, scale);
            };
        } else {
            st->dout = random_floats(size_t(N) * H * D, 24);
            st->dA = FloatBuffer(size_t(N) * H * R);
            st->dB = FloatBuffer(size_t(N) * R * D);
            k.flops = 4.0 * N * H * R * D;
            k.bytes = 4.0 * (nO + 2 * (nA + nB));
            k.run = [st, N, H, R, D, scale] {
                tpa_contract_backward(st->dA.data(), st->dB.data(), st->dout.data(), st->A.data(),
                                      long(H) * R, st->Bf.data(), long(R) * D, N, H, R, D, scale);
            };
        }
    } else if (name == "adamw_step") {
        const size_t n = sh.flat;
        struct State {
            FloatBuffer p, g;
            std::unique_ptr<AdamW> opt;
        };
        auto st = std::make_shared<State>();
        st->p = random_floats(n, 25, 0.02f);
        st->g = random_floats(n, 26, 0.01f);
        st->opt = std::make_unique<AdamW>(n, AdamWConfig{});
        k.flops = 12.0 * n;
        k.bytes = 28.0 * n;
        k.shape = "n=" + std::to_string(n);
        k.run = [st] { st->opt->step(st->p.data(), st->g.data(), 6e-4, 1.0f); };
    } else if (name == "to_bf16") {
        const size_t n = sh.flat;
        auto src = std::make_shared<FloatBuffer>(random_floats(n, 27));
        auto dst = std::make_shared<AlignedArray<uint16_t>>(n);
        k.flops = double(n);
        k.bytes = 6.0 * n;
        k.shape = "n=" + std::to_string(n);
        k.run = [src, dst, n] { to_bf16(dst->data(), src->data(), n); };
    } else {
        fail("t6 bench kernels: unknown kernel '", name, "'");
    }
    return k;
}

double seconds_of(const std::function<void()>& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return seconds_since(t0);
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

}  // namespace

int cmd_bench_kernels(int argc, char** argv) {
    ArgParser p("bench kernels", "[options]",
                "Times every kernel family at the small preset's shapes (training: batch 4 x "
                "sequence 256; decode: 16K cached tokens) under each SIMD dispatch target, and "
                "reports ms per call (median), GFLOP/s, GB/s and the fraction of the roof "
                "measured in the same run: the fp32 FMA peak of that target for compute-bound "
                "kernels, the streaming read bandwidth for memory-bound ones.");
    p.option("targets", "all|LIST",
             "SIMD targets to run (x86-64: scalar, avx2, avx512, avx512bf16; aarch64: scalar, "
             "neon; now: the one in force)",
             "all");
    p.option("kernels", "LIST", "kernel families to run (" + join(kFamilies, ", ") + ")", "all");
    p.option("repeats", "N", "timed calls per kernel and target (median reported)", "5");
    p.option("threads", "N", "threads", "all cores");
    p.flag("quick", "small shapes, 2 repeats and short probes (a smoke test, not a measurement)");
    p.flag("json", "print one JSON object as the last line");
    p.parse(argc, argv, 0);
    simd_target();  // a bad T6_SIMD fails here, with one line
    if (p.has("threads")) set_num_threads(p.get_int("threads"));
    const bool quick = p.has("quick");
    const int repeats = p.has("repeats") || !quick ? p.get_int("repeats") : 2;
    if (repeats <= 0) fail("t6 bench kernels: --repeats must be positive");
    const std::vector<SimdTarget> targets =
        parse_simd_targets_arg(p.get("targets"), "t6 bench kernels: --targets");
    std::vector<std::string> families;
    if (p.get("kernels") == "all") {
        families = kFamilies;
    } else {
        for (const auto& f : split_list(p.get("kernels"))) {
            if (std::find(kFamilies.begin(), kFamilies.end(), f) == kFamilies.end())
                fail("t6 bench kernels: unknown kernel '", f,
                     "' (available: ", join(kFamilies, ", "), ")");
            families.push_back(f);
        }
        if (families.empty()) fail("t6 bench kernels: --kernels is empty");
    }
    const Shapes shapes = Shapes::make(quick);

    // The roofs, measured now: the read bandwidth and the FMA peak per target, at the start and
    // (except with --quick) again before every kernel family, whose rows are compared with that
    // probe: the shared machine's speed drifts within minutes. The FMA probe runs the same loop
    // for targets that share a Highway target (avx512 and avx512bf16: AVX3), so it is measured
    // once per Highway target and shared.
    ReadBandwidthProbe bw_probe(quick ? size_t(32) << 20 : size_t(256) << 20);
    const long fma_iters = quick ? 1L << 18 : 1L << 21;
    double bw = 0;
    double bf16_peak = 0;  // vdpbf16ps FLOP/s under avx512bf16 (0 where the CPU lacks it)
    std::map<SimdTarget, double> peak;
    std::map<SimdTarget, std::string> hwy_name;
    auto probe = [&] {
        bw = bw_probe.measure(5);
        std::map<std::string, double> hwy_peak;
        for (SimdTarget t : targets) {
            const ScopedSimdTarget scope(t);
            const std::string h = simd_highway_target_name();
            if (!hwy_peak.count(h)) hwy_peak[h] = measure_fma_peak(5, fma_iters);
            peak[t] = hwy_peak[h];
            hwy_name[t] = h;
            if (t == SimdTarget::avx512bf16) bf16_peak = measure_bf16_dot_peak(5, fma_iters);
        }
    };
    probe();
    const double bw_start = bw;
    const std::map<SimdTarget, double> peak_start = peak;
    const double peak_in_force = [&] {
        const SimdTarget t = simd_target();
        return peak.count(t) ? peak.at(t) : measure_fma_peak(5, fma_iters);
    }();

    std::printf("cpu: %s, threads: %d (OpenMP wait policy %s), SIMD target in force: %s\n",
                cpu_model_name().c_str(), num_threads(), omp_wait_policy().c_str(),
                simd_summary().c_str());
    std::printf("read bandwidth (measured now): %.1f GB/s; fp32 FMA peak (measured now):",
                bw_start / 1e9);
    for (SimdTarget t : targets) std::printf(" %s %.0f", simd_target_name(t), peak[t] / 1e9);
    std::printf(" GFLOP/s%s\n", quick ? " (--quick: small shapes, not a measurement)" : "");
    std::printf("%-22s %-10s %-7s %10s %10s %9s %-7s %7s %7s %8s  %s\n", "kernel", "target", "hwy",
                "ms", "GFLOP/s", "GB/s", "bound", "%roof", "BW_now", "FMA_now", "shape");
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& fam : families) {
        const Kernel k = make_kernel(fam, shapes);
        if (!quick && &fam != &families.front()) probe();
        for (SimdTarget t : targets) {
            const ScopedSimdTarget scope(t);
            k.run();  // warm-up: caches, scratch, first-touch pages
            std::vector<double> secs;
            for (int r = 0; r < repeats; r++) secs.push_back(seconds_of(k.run));
            const double s = median(secs);
            const std::string shape =
                fam == "int8_gemv" ? k.shape + " kernel=" + int8_kernel_name() : k.shape;
            const double gflops = k.flops / s / 1e9, gbps = k.bytes / s / 1e9;
            // FlashTPA over bf16 factors runs vdpbf16ps under avx512bf16: its roof is the bf16
            // dot-product rate, twice the fp32 FMA peak.
            const double fpeak =
                fam == "flash_tpa_decode_bf16" && t == SimdTarget::avx512bf16 && bf16_peak > 0
                    ? bf16_peak
                    : peak[t];
            const bool compute = k.flops / fpeak > k.bytes / bw;
            const double frac = compute ? k.flops / s / fpeak : k.bytes / s / bw;
            std::printf("%-22s %-10s %-7s %10.3f %10.2f %9.2f %-7s %6.1f%% %7.1f %8.0f  %s\n",
                        fam.c_str(), simd_target_name(t), hwy_name[t].c_str(), 1e3 * s, gflops,
                        gbps, compute ? "compute" : "memory", 100 * frac, bw / 1e9, fpeak / 1e9,
                        shape.c_str());
            std::fflush(stdout);
            rows.push_back({{"kernel", fam},
                            {"target", simd_target_name(t)},
                            {"highway_target", hwy_name[t]},
                            {"shape", shape},
                            {"ms", 1e3 * s},
                            {"ms_min", 1e3 * *std::min_element(secs.begin(), secs.end())},
                            {"flops_per_call", k.flops},
                            {"bytes_per_call", k.bytes},
                            {"gflops", gflops},
                            {"gb_per_s", gbps},
                            {"fma_peak_gflops", peak[t] / 1e9},
                            {"compute_peak_gflops", fpeak / 1e9},
                            {"read_bandwidth_gb_per_s", bw / 1e9},
                            {"fraction_of_peak", frac},
                            {"bound", compute ? "compute" : "memory"}});
        }
    }
    std::printf(
        "%%roof: of the FMA peak of the row's target (compute; flash_tpa_decode_bf16 under "
        "avx512bf16: the vdpbf16ps peak) or of the read bandwidth (memory), "
        "as probed right before the kernel (columns BW_now GB/s, FMA_now GFLOP/s); "
        "above 100%%: the working set fits in a cache, or the kernel does not dispatch on the "
        "target (it runs its own code whatever the target)\n");
    if (p.has("json")) {
        nlohmann::json by_target = nlohmann::json::object();
        for (SimdTarget t : targets) by_target[simd_target_name(t)] = peak_start.at(t) / 1e9;
        nlohmann::json out = {{"benchmark", "kernels"},
                              {"cpu", cpu_model_name()},
                              {"cpu_simd_features", cpu_simd_features()},
                              {"threads", num_threads()},
                              {"omp_wait_policy", omp_wait_policy()},
                              {"quick", quick},
                              {"repeats", repeats},
                              {"fma_peak_gflops", peak_in_force / 1e9},
                              {"fma_peak_gflops_by_target", by_target},
                              {"read_bandwidth_gb_per_s", bw_start / 1e9},
                              {"gemm_kernel", gemm_kernel_name()},
                              {"kernels", rows}};
        add_simd_fields(out);
        std::printf("%s\n", out.dump().c_str());
    }
    return 0;
}

}  // namespace t6::cli
