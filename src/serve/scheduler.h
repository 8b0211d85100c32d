// Continuous batching: one thread owns the Decoder (the model's KV cache with max_slots slots)
// and runs it step by step. At every step, queued completions are prefilled into free slots and
// join the batch, finished or cancelled ones leave it and free their slot, and one batched
// Decoder::step advances every active sequence by a token (infer/generation.h's decode_step).
// Each completion picks its tokens with its own SequenceSampler (the generation loop's
// per-sequence piece: penalties, seeded sampler, stop rules), so its text does not depend on
// what else is in the batch (as far as the batched step's logits equal the single-sequence
// ones; see tests/test_serve_scheduler.cpp).
// Only the scheduler thread touches the Decoder and the Model; other threads submit jobs and
// read their channel (CompletionJob).
// With a paged cache (block_tokens > 0) the slots are only a cap: a job is admitted when the pool
// has blocks for its prompt (after sharing cached prefix blocks, with prefix_cache), and when the
// pool runs out mid-generation the youngest sequence is preempted: its blocks are returned, and
// it is resumed later by prefilling its prompt and the tokens generated so far (recompute), with
// its sampler state kept, so it still completes with the text it would have had.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "infer/decoder.h"
#include "serve/completion.h"
#include "serve/metrics.h"
#include "text/tokenizer.h"

namespace t6::serve {

struct SchedulerOptions {
    int max_slots = 1;
    int max_context = 0;
    CacheType cache = CacheType::f32;
    WeightType weights = WeightType::f32;  // the decoder's linear layers (f32, bf16, q8, q4)
    int queue = 64;                        // jobs that may wait for a slot
    int throttle_ms = 0;                   // sleep after each step (tests and demos only)
    // Decode each sequence with its own single-row step instead of one batched step. OpenBLAS's
    // GEMM rows for M > 1 can differ from M = 1 in the last bits, so only this makes a
    // request's text independent of its batch mates, bit for bit (at the cost of throughput).
    bool row_by_row = false;
    // Paged cache: tokens per block (0: one contiguous block of max_context per slot) and the
    // pool's blocks (0: max_slots sequences of max_context); share cached prompt prefixes.
    int block_tokens = 0;
    long kv_blocks = 0;
    bool prefix_cache = false;
};

class Scheduler {
  public:
    Scheduler(const Model& model, const Tokenizer& tok, const SchedulerOptions& o, Metrics& m);
    ~Scheduler();  // cancels what is left and joins the thread
    Scheduler(const Scheduler&) = delete;
    Scheduler& operator=(const Scheduler&) = delete;

    enum class Submit { ok, queue_full, shutting_down };
    // Queues a job (prompt non-empty, max_tokens >= 0, prompt + max_tokens <= max_context).
    Submit submit(std::shared_ptr<CompletionJob> job);
    // Wakes the thread (after setting a job's `cancelled`).
    void wake();
    // Refuses new jobs, lets in-flight ones finish for up to `grace`, cancels the rest, and
    // joins the thread. Idempotent.
    void shutdown(std::chrono::milliseconds grace);

    int max_slots() const { return opt_.max_slots; }
    int max_context() const { return opt_.max_context; }
    const KVCache& cache() const { return dec_.cache(); }

  private:
    struct Active;
    void loop();
    // Gives a job (or a preempted sequence) a slot and prefills it; false (nothing changed)
    // when the pool lacks the blocks.
    bool admit(std::shared_ptr<CompletionJob>& job);  // moves the job on success
    bool resume(std::unique_ptr<Active>& a);
    // Frees blocks for the next step by preempting the youngest sequences; false if even one
    // sequence alone does not fit (cannot happen when the pool holds max_context).
    bool make_room();
    bool fits(long blocks) const;
    // Prefills a score_prompt job with every position's logits and stores its prompt logprobs.
    void prefill_scored(Active& a);
    // Samples a's next token and publishes its text; returns the finish reason once done.
    const char* advance(Active& a, const float* logits);
    // Frees active_[i]'s slot, then tells its job it is done.
    void finish(size_t i, const char* reason, const std::string& err = {});
    void release(size_t i);
    void update_gauges();

    const Tokenizer& tok_;
    SchedulerOptions opt_;
    Metrics& metrics_;
    Decoder dec_;
    int vocab_ = 0;  // ids that can be sampled (the tokenizer's, if smaller than the model's)

    std::mutex mu_;
    std::condition_variable cv_;       // work arrived, or stop
    std::condition_variable idle_cv_;  // in-flight count changed
    std::deque<std::shared_ptr<CompletionJob>> pending_;
    int in_flight_ = 0;  // pending + active
    bool draining_ = false, stop_ = false;

    // Scheduler thread only.
    std::vector<std::unique_ptr<Active>> active_;
    std::deque<std::unique_ptr<Active>> preempted_;  // oldest first, resumed before new jobs
    std::vector<int> free_slots_;
    std::vector<float> logits_;
    std::vector<int> step_slots_;
    std::vector<int32_t> step_tokens_;
    int sampled_ = 0;  // tokens generated in this iteration

    std::thread thread_;
};

}  // namespace t6::serve
