#include "infer/decoder.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/team.h"
#include "core/timing.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "kernels/int8_linear.h"
#include "kernels/linear_bf16.h"
#include "kernels/quant.h"
#include "kernels/rmsnorm.h"
#include "kernels/swiglu.h"
#include "model/attn/attention.h"
#include "model/model_rope.h"

namespace t6 {

const char* weight_type_name(WeightType t) {
    switch (t) {
        case WeightType::f32:
            return "f32";
        case WeightType::bf16:
            return "bf16";
        case WeightType::q8:
            return "q8";
        case WeightType::q4:
            return "q4";
        case WeightType::q8a8:
            return "q8a8";
        case WeightType::q4a8:
            return "q4a8";
    }
    return "?";
}

WeightType parse_weight_type(const std::string& s) {
    if (s == "f32") return WeightType::f32;
    if (s == "bf16") return WeightType::bf16;
    if (s == "q8") return WeightType::q8;
    if (s == "q4") return WeightType::q4;
    if (s == "q8a8") return WeightType::q8a8;
    if (s == "q4a8") return WeightType::q4a8;
    fail("unknown weight type '", s, "' (expected f32, bf16, q8, q4, q8a8 or q4a8)");
}

bool is_quantized(WeightType t) {
    return t == WeightType::q8 || t == WeightType::q4 || t == WeightType::q8a8 ||
           t == WeightType::q4a8;
}
QuantScheme quant_scheme_of(WeightType t) {
    return t == WeightType::q4 || t == WeightType::q4a8 ? QuantScheme::q4 : QuantScheme::q8;
}
WeightType weight_type_of(QuantScheme s) {
    return s == QuantScheme::q4 ? WeightType::q4 : WeightType::q8;
}

Decoder::Decoder(const Model& model, int max_slots, int max_seq, CacheType type, WeightType weights,
                 CachePaging paging)
    : model_(model),
      cfg_(model.config()),
      wtype_(weights),
      rope_(model_rope_tables(model.config(), max_seq)),
      cache_(model.config(), max_slots, max_seq, type, paging) {
    const ParameterLayout& L = model.layout();
    if (wtype_ == WeightType::bf16) {
        wbf16_.resize(L.total, true);
        to_bf16(wbf16_.data(), model.params(), L.total);
    }
    if (is_quantized(wtype_))
        wq_ = std::make_shared<QuantizedWeights>(quantize_model(model, quant_scheme_of(wtype_)));
    init_layers();
}

Decoder::Decoder(const Model& model, int max_slots, int max_seq, CacheType type,
                 std::shared_ptr<const QuantizedWeights> quantized, CachePaging paging,
                 bool int8_activations)
    : model_(model),
      cfg_(model.config()),
      wtype_(int8_activations
                 ? (quantized->scheme == QuantScheme::q4 ? WeightType::q4a8 : WeightType::q8a8)
                 : weight_type_of(quantized->scheme)),
      wq_(std::move(quantized)),
      rope_(model_rope_tables(model.config(), max_seq)),
      cache_(model.config(), max_slots, max_seq, type, paging) {
    init_layers();
}

void Decoder::init_layers() {
    const ParameterLayout& L = model_.layout();
    mw_ = model_.weights();
    if (wq_) {
        const std::vector<QuantTarget> expect = quant_targets(cfg_, L);
        if (wq_->targets.size() != expect.size() || wq_->mats.size() != expect.size())
            fail("quantized weights do not match the model (", wq_->targets.size(),
                 " matrices, expected ", expect.size(), ")");
        for (size_t i = 0; i < expect.size(); i++) {
            const QuantMatrix& m = wq_->mats[i];
            if (wq_->targets[i].offset != expect[i].offset || m.rows != expect[i].rows ||
                m.cols != expect[i].cols)
                fail("quantized matrix ", expect[i].name, " does not match the model");
        }
        wq_wte_ = wq_->find(mw_.wte);
        core_q_ = core_quant(mw_, *wq_, wtype_ == WeightType::q8a8 || wtype_ == WeightType::q4a8);
    }
}

const float* Decoder::wp(size_t off) const {
    return off == LayerWeights::kNone ? nullptr : model_.params() + off;
}

double Decoder::weight_bytes_per_step() const {
    const double total = double(model_.layout().total);
    if (wtype_ == WeightType::f32) return total * 4;
    if (wtype_ == WeightType::bf16) return total * 2;
    double numel = 0;
    for (const auto& m : wq_->mats) numel += double(m.rows) * m.cols;
    return double(wq_->bytes()) + (total - numel) * 4;
}

void Decoder::append(int slot, const int32_t* tokens, int n, float* logits, bool all_logits) {
    if (slot < 0 || slot >= cache_.max_slots()) fail("cache slot ", slot, " does not exist");
    if (n <= 0) fail("nothing to append (empty token sequence)");
    const int start = cache_.length(slot);
    if (start + n > cache_.max_seq())
        fail("sequence of ", start + n, " tokens exceeds the context of ", cache_.max_seq(),
             " tokens");
    if (!cache_.reserve(slot, start + n))
        fail("KV cache pool exhausted: ", cache_.blocks_needed(slot, start + n), " more blocks of ",
             cache_.block_tokens(), " tokens needed, ", cache_.pool().free_blocks(), " free");
    const int V = cfg_.vocab_size;
    std::vector<int> slots, pos;
    for (int done = 0; done < n;) {
        const int m = std::min(chunk_tokens, n - done);
        slots.assign(m, slot);
        pos.resize(m);
        for (int i = 0; i < m; i++) pos[i] = start + done + i;
        const bool last = done + m == n;
        float* out = all_logits ? logits + size_t(done) * V : (last ? logits : nullptr);
        run(tokens + done, m, slots.data(), pos.data(), true, out, all_logits);
        cache_.note_tokens(slot, start + done, tokens + done, m);
        done += m;
    }
}

void Decoder::step(const int* slots, const int32_t* tokens, int n, float* logits) {
    std::vector<int> pos(n);
    for (int i = 0; i < n; i++) {
        if (slots[i] < 0 || slots[i] >= cache_.max_slots())
            fail("cache slot ", slots[i], " does not exist");
        pos[i] = cache_.length(slots[i]);
        if (pos[i] >= cache_.max_seq())
            fail("sequence in slot ", slots[i], " is full (", cache_.max_seq(), " tokens)");
    }
    long need = 0;  // all or nothing: a step never half-starts
    for (int i = 0; i < n; i++) need += cache_.blocks_needed(slots[i], pos[i] + 1);
    if (need > cache_.pool().free_blocks())
        fail("KV cache pool exhausted: ", need, " more blocks of ", cache_.block_tokens(),
             " tokens needed, ", cache_.pool().free_blocks(), " free");
    for (int i = 0; i < n; i++) cache_.reserve(slots[i], pos[i] + 1);
    // One sequence: the step's GEMVs and attention as jobs of one team (core/team.h), not an
    // OpenMP region each. Every parallel loop of a one-row step goes through parallel_run; with
    // more rows the float32 layers and MLA's per-head products call the GEMM library, whose
    // OpenMP regions would run on one thread inside a team.
    if (n == 1)
        with_team([&] { run(tokens, n, slots, pos.data(), false, logits, true); });
    else
        run(tokens, n, slots, pos.data(), false, logits, true);
    for (int i = 0; i < n; i++) cache_.note_tokens(slots[i], pos[i], tokens + i, 1);
}

void Decoder::linear(float* out, const float* in, size_t off, int n, int C, int OC, float beta) {
    if (wq_) {
        const int i = wq_->find(off);
        if (i < 0) fail("internal: no quantized matrix at parameter offset ", off);
        if (wtype_ == WeightType::q8a8 || wtype_ == WeightType::q4a8)
            linear_a8(out, in, wq_->mats[i], n, beta);
        else
            linear_quant(out, in, wq_->mats[i], n, beta);
    } else if (wtype_ == WeightType::bf16)
        linear_bf16(out, in, wbf16_.data() + off, n, C, OC, beta);
    else if (n <= kFewRowsF32)  // decoding steps: stream the weights once
        linear_f32_few_rows(out, in, model_.params() + off, n, C, OC, beta);
    else
        gemm(false, true, n, OC, C, 1.0f, in, C, model_.params() + off, C, beta, out, OC);
}

// Forward of n new tokens (rows) through every layer; attention reads and extends the cache.
// This is the second walk of the block (the first: Model::run_forward); both read one description
// of the weights (model_weights) and one attention wing (attn/attention.h), but the walks stay
// two: training keeps every layer's activations for the backward pass in one arena sized for
// (B, T) and runs float32 GEMMs, while this one reuses a single set of row buffers across layers,
// dispatches every matrix by weight type (f32 few-row GEMV, bf16, q8/q4, int8 activations) and
// attends from the cache; one walk over a policy would put a per-layer indirection and the
// training arena's layout into the decoding step for no shared line of arithmetic.
void Decoder::run(const int32_t* tokens, int n, const int* slots, const int* pos, bool chunk,
                  float* logits, bool all_logits) {
    const int C = cfg_.n_embd, F = cfg_.hidden_dim(), P = projection_width(cfg_);
    const int Y = cfg_.n_head * cfg_.v_dim(), V = cfg_.vocab_size;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            fail("token id ", tokens[i], " is outside the vocabulary [0, ", V, ")");
    const float* W = model_.params();
    auto grow = [](std::vector<float>& v, size_t k) {
        if (v.size() < k) v.resize(k);
    };
    grow(x_, size_t(n) * C);
    grow(ln_, size_t(n) * C);
    grow(proj_, size_t(n) * P);
    grow(y_, size_t(n) * Y);
    grow(a_, size_t(n) * F);
    grow(b_, size_t(n) * F);
    grow(h_, size_t(n) * F);
    std::vector<float> rstd(n);
    if (wq_)  // the tied matrix's dequantized rows
        for (int i = 0; i < n; i++)
            dequantize_row(wq_->mats[wq_wte_], tokens[i], x_.data() + size_t(i) * C);
    else
        embedding_forward(x_.data(), tokens, W + mw_.wte, n, C);
    const NewTokens nt{n, chunk, slots, pos};
    double attention_s = 0;
    for (int l = 0; l < cfg_.n_layer; l++) {
        const LayerWeights& w = mw_.layers[size_t(l)];
        rmsnorm_forward(ln_.data(), rstd.data(), x_.data(), wp(w.ln1), n, C, cfg_.norm_eps);
        linear(proj_.data(), ln_.data(), w.qkv, n, C, P, 0.0f);
        if (const float* bias = wp(w.bias))
            for (int i = 0; i < n; i++)
                for (int j = 0; j < P; j++) proj_[size_t(i) * P + j] += bias[j];
        // MLA's core weights: float32 from the model, or the quantized up-projections.
        const LayerParamRef lp{&w.core, W, nullptr, wq_ ? &core_q_[size_t(l)] : nullptr};
        const auto t_attn = std::chrono::steady_clock::now();
        cache_attention(cfg_, cache_, l, lp, rope_, proj_.data(), nt, y_.data(), scratch_);
        attention_s += seconds_since(t_attn);
        linear(x_.data(), y_.data(), w.c_proj, n, Y, C, 1.0f);
        rmsnorm_forward(ln_.data(), rstd.data(), x_.data(), wp(w.ln2), n, C, cfg_.norm_eps);
        linear(a_.data(), ln_.data(), w.fc1, n, C, F, 0.0f);
        linear(b_.data(), ln_.data(), w.fc2, n, C, F, 0.0f);
        swiglu_forward(h_.data(), a_.data(), b_.data(), size_t(n) * F);
        linear(x_.data(), h_.data(), w.mlp_proj, n, F, C, 1.0f);
    }
    for (int i = 0; i < n; i++) cache_.set_length(slots[i], pos[i] + 1);
    attention_s_ = attention_s;
    if (!logits) return;
    // Final norm and the lm_head (tied: head = wte), for every row or only the last one.
    const int first = all_logits ? 0 : n - 1, rows = n - first;
    rmsnorm_forward(ln_.data(), rstd.data(), x_.data() + size_t(first) * C, wp(mw_.lnf), rows, C,
                    cfg_.norm_eps);
    linear(logits, ln_.data(), mw_.head, rows, C, V, 0.0f);
}

}  // namespace t6
