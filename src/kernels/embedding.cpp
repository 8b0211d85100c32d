#include "kernels/embedding.h"

#include <cstring>

#include "core/parallel_items.h"

namespace t6 {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
    parallel_items(
        N, [&](long n) { std::memcpy(out + n * C, wte + long(tokens[n]) * C, sizeof(float) * C); });
}

// Deterministic scatter-add: threads split the columns, and every thread walks the tokens in
// order, so each dwte element receives its additions in the same order for any thread count.
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C,
                        int V) {
    (void)V;
    constexpr int kBlock = 64;
    const int nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
        const int c0 = blk * kBlock, c1 = c0 + kBlock < C ? c0 + kBlock : C;
        for (int n = 0; n < N; n++) {
            float* dst = dwte + (long)tokens[n] * C;
            const float* src = dout + (long)n * C;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

}  // namespace t6
