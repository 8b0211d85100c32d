#include "eval/perplexity.h"

#include <algorithm>

#include "core/error.h"
#include "eval/loglik.h"
#include "infer/decoder.h"

namespace t6::eval {

std::vector<Window> rolling_windows(size_t n, int context, int stride) {
    if (context <= 0 || stride <= 0 || stride > context)
        fail("need 1 <= stride (", stride, ") <= context (", context, ")");
    std::vector<Window> out;
    if (n < 2) return out;
    // HF: for begin in range(0, len, stride): end = min(begin + max_length, len);
    //     trg_len = end - prev_end; ...; if end == len: break
    // here with `context` inputs, i.e. windows of context + 1 tokens, and token 0 never scored.
    size_t prev_end = 1;
    for (size_t begin = 0;; begin += size_t(stride)) {
        const size_t end = std::min(begin + size_t(context) + 1, n);
        out.push_back({begin, end, prev_end});
        prev_end = end;
        if (end == n) break;
    }
    return out;
}

PplTotals score_stream(Model& model, const TokenSource& source, size_t n, const PplOptions& opt,
                       std::vector<double>* per_token,
                       const std::function<void(long long)>& progress) {
    const ModelConfig& cfg = model.config();
    if (opt.context > cfg.block_size)
        fail("context ", opt.context, " exceeds the model's block_size ", cfg.block_size);
    if (opt.batch <= 0) fail("batch must be positive");
    const std::vector<Window> windows = rolling_windows(n, opt.context, opt.stride);
    if (per_token) per_token->assign(n, 0.0);
    PplTotals tot;
    const int V = cfg.vocab_size;
    std::vector<int32_t> buf, x;
    for (size_t w = 0; w < windows.size();) {
        // A batch of consecutive windows with the same number of inputs.
        const int T = windows[w].inputs();
        size_t e = w;
        while (e < windows.size() && e - w < size_t(opt.batch) && windows[e].inputs() == T) e++;
        const int B = int(e - w);
        x.resize(size_t(B) * T);
        buf.resize(size_t(T) + 1);
        std::vector<std::vector<int32_t>> targets(B);
        for (int b = 0; b < B; b++) {
            const Window& win = windows[w + b];
            source(win.begin, size_t(T) + 1, buf.data());
            std::copy(buf.begin(), buf.begin() + T, x.begin() + size_t(b) * T);
            targets[b].assign(buf.begin() + 1, buf.end());
        }
        model.forward(x.data(), nullptr, B, T);
        const float* logits = model.logits();
        for (int b = 0; b < B; b++) {
            const Window& win = windows[w + b];
            for (int t = 0; t < T; t++) {
                const size_t pos = win.begin + 1 + size_t(t);
                if (pos < win.score_from) continue;
                const double nll =
                    -token_logprob(logits + (size_t(b) * T + t) * size_t(V), V, targets[b][t]);
                tot.nll += nll;
                tot.tokens++;
                if (per_token) (*per_token)[pos] = nll;
            }
        }
        w = e;
        if (progress) progress(tot.tokens);
    }
    return tot;
}

PplTotals score_stream_cached(const Model& model, CacheType cache, const TokenSource& source,
                              size_t n, const PplOptions& opt,
                              const std::function<void(long long)>& progress,
                              const DecoderWeights& weights) {
    const ModelConfig& cfg = model.config();
    if (opt.context > cfg.block_size)
        fail("context ", opt.context, " exceeds the model's block_size ", cfg.block_size);
    const std::vector<Window> windows = rolling_windows(n, opt.context, opt.stride);
    const bool a8 = weights.type == WeightType::q8a8 || weights.type == WeightType::q4a8;
    Decoder dec = weights.stored ? Decoder(model, 1, opt.context, cache, weights.stored, {}, a8)
                                 : Decoder(model, 1, opt.context, cache, weights.type);
    const int V = cfg.vocab_size;
    PplTotals tot;
    std::vector<int32_t> buf;
    std::vector<float> logits;
    for (const Window& win : windows) {
        const int T = win.inputs();
        buf.resize(size_t(T) + 1);
        source(win.begin, size_t(T) + 1, buf.data());
        logits.resize(size_t(T) * V);
        dec.reset(0);
        dec.append(0, buf.data(), T, logits.data(), true);
        for (int t = 0; t < T; t++) {
            const size_t pos = win.begin + 1 + size_t(t);
            if (pos < win.score_from) continue;
            tot.nll -= token_logprob(logits.data() + size_t(t) * V, V, buf[size_t(t) + 1]);
            tot.tokens++;
        }
        if (progress) progress(tot.tokens);
    }
    return tot;
}

}  // namespace t6::eval
