#include "serve/slot_plan.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace t6::serve {

SlotPlan plan_slots(double budget_bytes, size_t bytes_per_token, int max_context, int cap,
                    int held_tokens) {
    if (max_context <= 0) fail("t6 serve: --max-context must be positive");
    if (cap <= 0) fail("t6 serve: --max-slots must be positive");
    const int held = std::max(held_tokens, max_context);
    const double per_slot = double(bytes_per_token) * held;
    SlotPlan p;
    p.budget_slots = (long long)std::floor(budget_bytes / per_slot);
    if (p.budget_slots < 1)
        fail("t6 serve: a KV budget of ", (long long)budget_bytes, " bytes holds no sequence of ",
             max_context, " tokens (", (long long)per_slot,
             " bytes each); raise --kv-budget or lower --max-context");
    p.slots = int(std::min<long long>(p.budget_slots, cap));
    p.bytes = size_t(p.slots) * size_t(held) * bytes_per_token;
    return p;
}

SlotPlan plan_paged(double budget_bytes, size_t bytes_per_token, int block_tokens, int max_context,
                    int cap) {
    if (max_context <= 0) fail("t6 serve: --max-context must be positive");
    if (cap <= 0) fail("t6 serve: --max-slots must be positive");
    if (block_tokens <= 0) fail("t6 serve: --block-tokens must be positive");
    const double per_block = double(bytes_per_token) * block_tokens;
    SlotPlan p;
    p.pool_blocks = (long long)std::floor(budget_bytes / per_block);
    p.budget_slots = (long long)std::floor(budget_bytes / (double(bytes_per_token) * max_context));
    const long long need = (max_context + block_tokens - 1) / block_tokens;
    if (p.pool_blocks < need)
        fail("t6 serve: a KV budget of ", (long long)budget_bytes, " bytes holds ", p.pool_blocks,
             " blocks of ", block_tokens, " tokens, fewer than one sequence of ", max_context,
             " tokens needs (", need, "); raise --kv-budget or lower --max-context");
    p.slots = cap;
    p.bytes = size_t(p.pool_blocks) * size_t(per_block);
    return p;
}

}  // namespace t6::serve
