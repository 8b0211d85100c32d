// How many sequences `t6 serve` caches at once: as many as the KV budget holds at the full
// context (each slot reserves max_context tokens), capped by --max-slots.
#pragma once
#include <cstddef>
#include <string>

namespace t6::serve {

struct SlotPlan {
    long long budget_slots = 0;  // sequences of max_context tokens the budget holds
    int slots = 0;               // min(budget_slots, cap)
    size_t bytes = 0;            // the cache allocation: slots * held tokens * bytes_per_token
    long long pool_blocks = 0;   // paged: blocks of block_tokens the budget holds
};

// Fails (t6::Error) when the budget holds no sequence of max_context tokens. held_tokens: the
// tokens each slot's block holds (kv_contiguous_tokens, model/kv_cache.h: max_context rounded up
// to whole groups of 16 for a float32 TPA cache); 0: max_context.
SlotPlan plan_slots(double budget_bytes, size_t bytes_per_token, int max_context, int cap,
                    int held_tokens = 0);

// A paged cache: the budget is a pool of blocks of block_tokens tokens, shared by up to `cap`
// sequences (slots); budget_slots is still what a contiguous cache would hold, for comparison.
// Fails when the pool holds no sequence of max_context tokens.
SlotPlan plan_paged(double budget_bytes, size_t bytes_per_token, int block_tokens, int max_context,
                    int cap);

}  // namespace t6::serve
