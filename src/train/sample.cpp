#include "train/sample.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace t6 {

std::string greedy_sample_bytes(Model& model, const std::string& prompt, int n_tokens,
                                int max_context) {
    const int V = model.config().vocab_size;
    if (V < 256) fail("byte-level sampling needs vocab_size >= 256, not ", V);
    max_context = std::max(1, std::min(max_context, model.config().block_size));
    std::vector<int32_t> ctx;
    for (unsigned char c : (prompt.empty() ? std::string("\n") : prompt)) ctx.push_back(c);
    std::string out;
    for (int i = 0; i < n_tokens; i++) {
        const int T = std::min<int>(int(ctx.size()), max_context);
        const int32_t* window = ctx.data() + ctx.size() - size_t(T);
        model.forward(window, nullptr, 1, T);
        const float* last = model.logits() + size_t(T - 1) * V;
        // Argmax over the byte range only: ids >= 256 (padding of the vocabulary) are no bytes.
        const int next = int(std::max_element(last, last + 256) - last);
        ctx.push_back(next);
        out.push_back(char(next));
    }
    return out;
}

std::string printable_text(const std::string& s) {
    std::string r;
    for (unsigned char c : s)
        r.push_back((c < 32 && c != '\n' && c != '\t') || c == 127 ? '?' : char(c));
    return r;
}

}  // namespace t6
