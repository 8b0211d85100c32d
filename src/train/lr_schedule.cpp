#include "train/lr_schedule.h"

#include <cmath>

namespace t6 {

// Official code (train_adam.py):
//   if it < warmup_iters: return learning_rate * it / warmup_iters
//   if it > lr_decay_iters: return min_lr
//   decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
//   coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
//   return min_lr + coeff * (learning_rate - min_lr)
// evaluated in double precision as Python does. A warm-up that reaches lr_decay_iters leaves no
// decay phase (the official code would divide by zero there; here it returns min_lr).
double LrSchedule::at(long long it) const {
    if (!decay_lr) return learning_rate;
    if (it < warmup_iters) return learning_rate * double(it) / double(warmup_iters);
    if (it > lr_decay_iters) return min_lr;
    if (lr_decay_iters <= warmup_iters) return min_lr;
    const double decay_ratio = double(it - warmup_iters) / double(lr_decay_iters - warmup_iters);
    const double coeff = 0.5 * (1.0 + std::cos(M_PI * decay_ratio));
    return min_lr + coeff * (learning_rate - min_lr);
}

}  // namespace t6
