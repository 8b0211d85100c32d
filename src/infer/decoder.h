// Incremental inference over a KV cache for every attention kind: prefill a prompt in chunks,
// then decode token by token, for one or many sequences (cache slots) at once. Shares the
// weights of a Model (float32), never modifies them. With WeightType::bf16 the matrices of the
// linear layers (attention projections, MLP, tied lm_head) are read from a bf16 copy made once
// (half the bytes per decoding step, arithmetic still float32); MLA's up-projections and the
// embedding lookup stay float32. With WeightType::q8 / q4 the same matrices, the tied embedding
// and MLA's up-projections are read from blockwise-quantized copies (model/quantize.h; 1.125 /
// 0.75 bytes per weight), made at construction or handed over already quantized (a `t6 quantize`
// checkpoint); the decoder then computes exactly the float32 model whose weights are the
// dequantized ones.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/buffer.h"
#include "kernels/rope.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "model/quantize.h"

namespace t6 {

// q8a8 / q4a8: the q8 / q4 weights times activations quantized on the fly to int8 per block of
// 32 (kernels/int8_linear.h).
enum class WeightType { f32, bf16, q8, q4, q8a8, q4a8 };
const char* weight_type_name(WeightType t);
WeightType parse_weight_type(
    const std::string& s);  // "f32" | "bf16" | "q8" | "q4" | "q8a8" | "q4a8"
bool is_quantized(WeightType t);
QuantScheme quant_scheme_of(WeightType t);  // q8 or q4 (t must be quantized)
WeightType weight_type_of(QuantScheme s);

class Decoder {
  public:
    // A cache of max_slots sequences of up to max_seq tokens (max_seq may exceed the model's
    // block_size: RoPE tables are built for max_seq), paged as `paging` says (kv_cache.h; the
    // default: one contiguous block per slot).
    Decoder(const Model& model, int max_slots, int max_seq, CacheType type,
            WeightType weights = WeightType::f32, CachePaging paging = {});
    // Decodes from weights quantized beforehand (`quantized` of this model's config; the model's
    // own copies of those matrices are not read). With int8_activations the stored q8 / q4 codes
    // run as q8a8 / q4a8.
    Decoder(const Model& model, int max_slots, int max_seq, CacheType type,
            std::shared_ptr<const QuantizedWeights> quantized, CachePaging paging = {},
            bool int8_activations = false);

    const ModelConfig& config() const { return cfg_; }
    WeightType weight_type() const { return wtype_; }
    // Bytes of weights one decoding step streams (the linear layers' matrices as stored).
    double weight_bytes_per_step() const;
    KVCache& cache() { return cache_; }
    const KVCache& cache() const { return cache_; }

    // Appends n tokens to `slot` and writes logits: (n, V) if all_logits, else the last token's
    // (V). Runs in chunks of at most chunk_tokens. Takes the cache blocks it needs from the pool
    // (fails when the pool has too few: callers that share a pool check with
    // cache().blocks_needed / reserve first).
    void append(int slot, const int32_t* tokens, int n, float* logits, bool all_logits = false);

    // One decoding step: appends tokens[i] to slots[i] for i < n (distinct slots), writes
    // logits (n, V).
    void step(const int* slots, const int32_t* tokens, int n, float* logits);

    void reset(int slot) { cache_.clear(slot); }
    int chunk_tokens = 256;

    // Wall time the last step() spent in attention over the cache (every layer's cache write and
    // attention; after append(), its last chunk's), for the benchmarks' split of a step into its
    // attention and linear-layer phases.
    double last_attention_seconds() const { return attention_s_; }

  private:
    void run(const int32_t* tokens, int n, const int* slots, const int* pos, bool chunk,
             float* logits, bool all_logits);
    // out[n,OC] = beta*out + in[n,C] @ W[OC,C]^T for the matrix at parameter offset `off`.
    void linear(float* out, const float* in, size_t off, int n, int C, int OC, float beta);
    const Model& model_;
    ModelConfig cfg_;
    WeightType wtype_;
    void init_layers();
    AlignedArray<uint16_t> wbf16_;                // bf16 copy of all parameters (WeightType::bf16)
    std::shared_ptr<const QuantizedWeights> wq_;  // WeightType::q8 / q4
    int wq_wte_ = -1;
    std::vector<CoreQuant> core_q_;  // per layer: the attention core's quantized matrices
    ModelWeights mw_;  // where each weight lies: the model's description (Model::weights)
    // Float32 parameter at an offset, nullptr for LayerWeights::kNone (optional HF-layout norm
    // gains and biases are always read as float32 from the model).
    const float* wp(size_t off) const;
    RopeTables rope_;
    KVCache cache_;
    // Work buffers, grown to the largest batch seen.
    std::vector<float> x_, ln_, proj_, y_, a_, b_, h_, scratch_;
    double attention_s_ = 0;  // last_attention_seconds()
};

}  // namespace t6
