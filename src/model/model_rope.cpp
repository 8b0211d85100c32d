#include "model/model_rope.h"

#include <cmath>

namespace t6 {

void scale_inv_freq(const ModelConfig& c, std::vector<float>& inv_freq) {
    if (c.rope_scaling == "linear") {
        for (float& f : inv_freq) f = f / c.rope_factor;
    } else if (c.rope_scaling == "llama3") {
        // transformers' _compute_llama3_parameters, in float32 like torch.
        const float factor = c.rope_factor, lo = c.rope_low_freq_factor,
                    hi = c.rope_high_freq_factor, old_len = float(c.rope_original_max_positions);
        const float low_wavelen = old_len / lo, high_wavelen = old_len / hi;
        for (float& f : inv_freq) {
            const float wavelen = float(2 * M_PI) / f;
            float scaled = wavelen > low_wavelen ? f / factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                const float smooth = (old_len / wavelen - lo) / (hi - lo);
                scaled = (1 - smooth) * scaled / factor + smooth * scaled;
            }
            f = scaled;
        }
    }
}

RopeTables model_rope_tables(const ModelConfig& c, int max_positions) {
    RopeTables tab = make_rope_tables(max_positions, c.rope_dim(), c.rope_theta);
    if (!c.rope_hf) return tab;  // the official tables, bit for bit
    scale_inv_freq(c, tab.inv_freq);
    const int h = tab.dim / 2;
    for (int t = 0; t < max_positions; t++)
        for (int i = 0; i < h; i++) {
            const float angle = float(t) * tab.inv_freq[i];  // HF: float32 outer product
            tab.cos[size_t(t) * h + i] = float(std::cos(double(angle)));
            tab.sin[size_t(t) * h + i] = -float(std::sin(double(angle)));
        }
    return tab;
}

}  // namespace t6
