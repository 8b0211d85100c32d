// The official learning-rate schedule (train_adam.py / nanoGPT get_lr): linear warm-up from 0,
// then cosine decay to min_lr at lr_decay_iters, then min_lr.
#pragma once

namespace t6 {

struct LrSchedule {
    double learning_rate = 6e-4;
    double min_lr = 6e-5;
    int warmup_iters = 2000;
    int lr_decay_iters = 600000;
    bool decay_lr = true;  // false: constant learning_rate (official decay_lr = False)

    // The rate for iteration `it` (0-based; iteration 0 uses 0 when warmup_iters > 0).
    double at(long long it) const;
};

}  // namespace t6
