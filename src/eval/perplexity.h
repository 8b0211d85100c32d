// Perplexity of a token stream with sliding windows (the HuggingFace "perplexity of fixed-length
// models" scheme, as lm-evaluation-harness's rolling loglikelihood): windows of up to `context`
// input tokens start every `stride` tokens, and each window scores only the targets the previous
// window did not, so every token after the first is predicted exactly once, with at least
// context - stride tokens before it (all tokens before it in the first window).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "infer/decoder.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace t6::eval {

// Inputs tokens[begin, end - 1), targets tokens[begin + 1, end); targets at positions
// >= score_from are scored (a position is the index of the predicted token in the stream).
struct Window {
    size_t begin = 0, end = 0, score_from = 0;
    int inputs() const { return int(end - begin - 1); }
};

// The windows over n tokens (n >= 2), 1 <= stride <= context.
std::vector<Window> rolling_windows(size_t n, int context, int stride);

struct PplOptions {
    int context = 0;  // input tokens per window (<= block_size)
    int stride = 0;   // new tokens per window (<= context)
    int batch = 4;    // windows per forward
};

struct PplTotals {
    double nll = 0;        // summed negative log-likelihood, nats
    long long tokens = 0;  // tokens scored
    double loss() const { return tokens ? nll / double(tokens) : 0.0; }
};

// Copies tokens [begin, begin + n) of a stream into out (ids < vocab_size).
using TokenSource = std::function<void(size_t begin, size_t n, int32_t* out)>;

// Scores a stream of n tokens with Model::forward over batches of windows. per_token (if given)
// receives the NLL of each scored position (size n; position 0 stays 0). progress(done) is called
// with the tokens scored so far after each batch.
PplTotals score_stream(Model& model, const TokenSource& source, size_t n, const PplOptions& opt,
                       std::vector<double>* per_token = nullptr,
                       const std::function<void(long long)>& progress = nullptr);

// The weights the decoder of score_stream_cached reads: `type` (WeightType::f32: the model's own;
// q8 / q4 / q8a8 / q4a8: quantized at construction, the a8 types with int8 activations, as
// `t6 generate --weights` decodes), or, when `stored` is set, those codes (a `t6 quantize`
// checkpoint; `type` then says only whether the activations are int8: q8a8 / q4a8).
struct DecoderWeights {
    WeightType type = WeightType::f32;
    std::shared_ptr<const QuantizedWeights> stored;
};

// The same windows scored through the incremental decoder (infer/decoder.h) instead of the
// training forward: each window is prefilled (chunks of at most 256 tokens) into a KV cache of the
// given type and every token's attention reads its keys and values back from that cache, so the
// scores include the cache's rounding (bf16, q8) and the decoder's weights (`weights`). With an
// f32 cache and f32 weights it equals score_stream up to float rounding.
PplTotals score_stream_cached(const Model& model, CacheType cache, const TokenSource& source,
                              size_t n, const PplOptions& opt,
                              const std::function<void(long long)>& progress = nullptr,
                              const DecoderWeights& weights = {});

}  // namespace t6::eval
