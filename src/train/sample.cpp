#include "train/sample.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "infer/generation.h"

namespace t6 {

GreedySample greedy_sample(const Model& model, const Tokenizer& tok, const std::string& prompt,
                           int n_tokens, int max_context) {
    std::vector<int32_t> ids = tok.encode_with_special(prompt);
    if (ids.empty()) ids = tok.encode("\n");
    if (ids.empty()) fail("the sample's prompt has no tokens in tokenizer '", tok.kind(), "'");
    max_context = std::max(1, max_context);
    if (int(ids.size()) > max_context) ids.erase(ids.begin(), ids.end() - max_context);
    GreedySample s;
    s.prompt_text = tok.decode(ids);
    if (n_tokens <= 0) return s;
    GenerationParams gp;
    gp.sampling.temperature = 0;  // greedy
    gp.max_tokens = n_tokens;     // the end-of-text token is a token like any other here
    // Only ids the tokenizer has (the model's vocabulary may be padded beyond them).
    SequenceSampler seq(gp, std::min(model.config().vocab_size, tok.vocab_size()));
    Decoder dec(model, 1, int(ids.size()) + n_tokens, CacheType::f32);
    const GenerationResult r = generate(dec, 0, ids, seq);
    s.text = tok.decode(r.ids);
    s.tokens = int(r.ids.size());
    return s;
}

std::string printable_text(const std::string& s) {
    std::string r;
    for (unsigned char c : s)
        r.push_back((c < 32 && c != '\n' && c != '\t') || c == 127 ? '?' : char(c));
    return r;
}

}  // namespace t6
