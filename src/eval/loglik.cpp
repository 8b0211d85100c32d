#include "eval/loglik.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace t6::eval {

namespace {

// Python's str.isspace() for the ASCII range (what str.rstrip() removes).
bool is_py_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           (c >= '\x1c' && c <= '\x1f');
}

}  // namespace

TokenRequest encode_request(const Tokenizer& tok, const TextRequest& r) {
    TokenRequest out;
    if (r.context.empty()) {
        // harness: if context == "": context_enc, continuation_enc = [self.prefix_token_id],
        // self.tok_encode(continuation)
        if (tok.eot() < 0)
            fail("a request has an empty context and tokenizer '", tok.kind(),
                 "' has no end-of-text token to stand in for it");
        out.context = {tok.eot()};
        out.continuation = tok.encode(r.continuation);
    } else {
        std::string context = r.context, continuation = r.continuation;
        size_t keep = context.size();
        while (keep > 0 && is_py_space(context[keep - 1])) keep--;
        if (keep < context.size()) {
            continuation = context.substr(keep) + continuation;
            context.resize(keep);
        }
        std::vector<int32_t> whole = tok.encode(context + continuation);
        out.context = tok.encode(context);
        const size_t n = std::min(out.context.size(), whole.size());
        out.continuation.assign(whole.begin() + n, whole.end());
        if (out.context.empty()) {
            // Only white space in the context: nothing is left to condition on.
            if (tok.eot() < 0)
                fail("a request's context is only white space and tokenizer '", tok.kind(),
                     "' has no end-of-text token to stand in for it");
            out.context = {tok.eot()};
        }
    }
    if (out.continuation.empty())
        fail("a continuation encodes to no tokens (context '", r.context.substr(0, 40),
             "', continuation '", r.continuation, "')");
    return out;
}

double token_logprob(const float* row, int V, int target) {
    float mx = row[0];
    for (int i = 1; i < V; i++) mx = std::max(mx, row[i]);
    double s = 0;
    for (int i = 0; i < V; i++) s += std::exp(double(row[i]) - mx);
    return double(row[target]) - mx - std::log(s);
}

}  // namespace t6::eval
