#include "serve/scheduler.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/threads.h"
#include "infer/generation.h"
#include "serve/text_stream.h"

namespace t6::serve {

// One sequence in the batch: its job, its slot and the generation loop's per-sequence state
// (infer/generation.h: penalties, seeded sampler, stop rules), plus the text stream that holds
// back stop strings and split characters.
struct Scheduler::Active {
    std::shared_ptr<CompletionJob> job;
    int slot;
    SequenceSampler seq;
    TextStream text;
    int32_t next = 0;          // the token the next step appends
    std::vector<int32_t> fed;  // tokens appended after the prompt (to resume after preemption)
    std::string piece;         // text of the last token, published with the finish
    std::chrono::steady_clock::time_point last_token;
    Active(std::shared_ptr<CompletionJob> j, int s, int32_t eos, int vocab)
        : job(std::move(j)), slot(s), seq(generation_params(*job, eos), vocab), text(job->stop) {}
    int generated() const { return seq.generated(); }

  private:
    static t6::GenerationParams generation_params(const CompletionJob& j, int32_t eos) {
        t6::GenerationParams g;
        g.sampling = j.sampling;
        g.max_tokens = j.max_tokens;
        g.eos = j.ignore_eos ? -1 : eos;
        g.presence_penalty = j.presence_penalty;
        g.frequency_penalty = j.frequency_penalty;
        g.logit_bias = j.logit_bias;
        return g;
    }
};

Scheduler::Scheduler(const Model& model, const Tokenizer& tok, const SchedulerOptions& o,
                     Metrics& m)
    : tok_(tok),
      opt_(o),
      metrics_(m),
      dec_(model, o.max_slots, o.max_context, o.cache, o.weights,
           CachePaging{o.block_tokens, o.kv_blocks}),
      vocab_(std::min(model.config().vocab_size, tok.vocab_size())) {
    T6_CHECK(o.max_slots > 0 && o.max_context > 0 && o.queue >= 0);
    if (dec_.cache().blocks_for(o.max_context) > dec_.cache().pool().size())
        fail("KV cache pool of ", dec_.cache().pool().size(), " blocks holds no sequence of ",
             o.max_context, " tokens");
    dec_.cache().set_prefix_caching(o.prefix_cache);
    for (int s = o.max_slots - 1; s >= 0; s--) free_slots_.push_back(s);
    metrics_.slots = o.max_slots;
    metrics_.cache_bytes_budget = dec_.cache().bytes();
    metrics_.kv_block_tokens = dec_.cache().block_tokens();
    metrics_.kv_blocks_total = uint64_t(dec_.cache().pool().size());
    update_gauges();
    // OpenMP settings are per thread: the scheduler thread takes the creating thread's count.
    thread_ = std::thread([this, threads = num_threads()] {
        set_num_threads(threads);
        loop();
    });
}

Scheduler::~Scheduler() {
    shutdown(std::chrono::milliseconds(0));
}

Scheduler::Submit Scheduler::submit(std::shared_ptr<CompletionJob> job) {
    T6_CHECK(!job->prompt.empty() && job->max_tokens >= 0 &&
             int(job->prompt.size()) + job->max_tokens <= opt_.max_context);
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (draining_) return Submit::shutting_down;
        // Jobs beyond the slots wait, up to `queue` of them.
        if (in_flight_ >= opt_.max_slots + opt_.queue) return Submit::queue_full;
        pending_.push_back(std::move(job));
        in_flight_++;
        metrics_.queued_requests = int(pending_.size());
    }
    cv_.notify_one();
    return Submit::ok;
}

void Scheduler::wake() {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_one();
}

void Scheduler::shutdown(std::chrono::milliseconds grace) {
    std::unique_lock<std::mutex> lock(mu_);
    draining_ = true;
    idle_cv_.wait_for(lock, grace, [&] { return in_flight_ == 0; });
    stop_ = true;  // the loop cancels whatever is still in flight, then exits
    lock.unlock();
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

// Blocks may be taken when what is left still gives every running sequence its next block
// (a paged pool; a contiguous one has a block per slot).
bool Scheduler::fits(long blocks) const {
    const long headroom = opt_.block_tokens > 0 ? long(active_.size()) : 0;
    return blocks + headroom <= dec_.cache().pool().free_blocks();
}

bool Scheduler::admit(std::shared_ptr<CompletionJob>& job) {
    const int slot = free_slots_.back();
    KVCache& cache = dec_.cache();
    const int n = int(job->prompt.size());
    // Prompt scoring needs every position's logits: no prefix shared then.
    const int shared = job->score_prompt ? 0 : cache.share_prefix(slot, job->prompt.data(), n);
    if (!fits(cache.blocks_needed(slot, n))) {
        cache.clear(slot);
        return false;
    }
    free_slots_.pop_back();
    active_.push_back(std::make_unique<Active>(std::move(job), slot, tok_.eot(), vocab_));
    Active& a = *active_.back();
    logits_.resize(size_t(dec_.config().vocab_size));
    if (a.job->score_prompt)
        prefill_scored(a);  // every position's logits: nothing shared (shared == 0)
    else
        dec_.append(slot, a.job->prompt.data() + shared, n - shared, logits_.data());
    metrics_.prompt_tokens += uint64_t(n);
    metrics_.prefix_hit_tokens += uint64_t(shared);
    metrics_.prefix_hit_blocks += uint64_t(shared / cache.block_tokens());
    update_gauges();
    if (a.job->max_tokens == 0) {
        finish(active_.size() - 1, "length");
        return true;
    }
    if (const char* reason = advance(a, logits_.data())) finish(active_.size() - 1, reason);
    return true;
}

bool Scheduler::resume(std::unique_ptr<Active>& a) {
    const int slot = free_slots_.back();
    KVCache& cache = dec_.cache();
    std::vector<int32_t> hist = a->job->prompt;
    hist.insert(hist.end(), a->fed.begin(), a->fed.end());
    const int n = int(hist.size());
    const int shared = cache.share_prefix(slot, hist.data(), n);
    if (!fits(cache.blocks_needed(slot, n))) {
        cache.clear(slot);
        return false;
    }
    free_slots_.pop_back();
    a->slot = slot;
    logits_.resize(size_t(dec_.config().vocab_size));
    // The logits are those of a token already sampled (a->next): recomputed, not used.
    dec_.append(slot, hist.data() + shared, n - shared, logits_.data());
    active_.push_back(std::move(a));
    update_gauges();
    return true;
}

bool Scheduler::make_room() {
    const KVCache& cache = dec_.cache();
    for (;;) {
        long need = 0;
        for (const auto& a : active_)
            need += cache.blocks_needed(a->slot, cache.length(a->slot) + 1);
        if (need <= cache.pool().free_blocks()) return true;
        if (active_.size() <= 1) return false;
        // Preempt the youngest: its blocks go back (cached prefix blocks stay reusable), it
        // waits in front of the older preempted ones.
        std::unique_ptr<Active> a = std::move(active_.back());
        active_.pop_back();
        dec_.reset(a->slot);
        free_slots_.push_back(a->slot);
        a->slot = -1;
        preempted_.push_front(std::move(a));
        metrics_.preemptions++;
        update_gauges();
    }
}

void Scheduler::prefill_scored(Active& a) {
    // Every position's logits, a chunk at a time: row i predicts prompt token i + 1, and the
    // last row (kept in logits_) the first generated token.
    const std::vector<int32_t>& p = a.job->prompt;
    const int V = dec_.config().vocab_size, n = int(p.size());
    constexpr int kChunk = 64;
    std::vector<float> rows(size_t(std::min(n, kChunk)) * size_t(V));
    std::vector<TokenLogprob> lps;
    lps.reserve(size_t(n));
    TokenLogprob first;
    first.token = p[0];
    first.has_logprob = false;
    lps.push_back(first);
    for (int b = 0; b < n; b += kChunk) {
        const int m = std::min(kChunk, n - b);
        dec_.append(a.slot, p.data() + b, m, rows.data(), true);
        for (int i = 0; i < m; i++) {
            const float* row = rows.data() + size_t(i) * size_t(V);
            if (b + i + 1 < n)
                lps.push_back(
                    token_logprob(row, vocab_, p[size_t(b + i + 1)], std::max(a.job->logprobs, 0)));
            else
                std::copy(row, row + V, logits_.begin());
        }
    }
    std::lock_guard<std::mutex> lock(a.job->mu);
    a.job->prompt_logprobs = std::move(lps);
}

const char* Scheduler::advance(Active& a, const float* logits) {
    CompletionJob& job = *a.job;
    const SequenceSampler::Pick pick = a.seq.next(logits);
    const int32_t t = pick.token;
    const auto now = std::chrono::steady_clock::now();
    if (a.generated() == (pick.finish == Finish::eos ? 0 : 1))
        metrics_.time_to_first_token.observe(
            std::chrono::duration<double>(now - job.submitted).count());
    else
        metrics_.inter_token_latency.observe(
            std::chrono::duration<double>(now - a.last_token).count());
    a.last_token = now;
    if (pick.finish == Finish::eos) {
        a.piece = a.text.finish();
        return "stop";
    }
    if (job.logprobs >= 0) {
        // The model's own distribution (before penalties and logit_bias), as vLLM reports it.
        TokenLogprob lp = token_logprob(logits, vocab_, t, job.logprobs);
        std::lock_guard<std::mutex> lock(job.mu);
        job.token_logprobs.push_back(std::move(lp));
    }
    sampled_++;
    metrics_.tokens_generated++;
    a.piece = a.text.push(tok_.token_bytes(t));
    if (a.text.stopped()) return "stop";
    if (pick.finish == Finish::length) {
        a.piece += a.text.finish();
        return "length";
    }
    job.publish(a.piece, a.generated());
    a.piece.clear();
    a.next = t;
    return nullptr;
}

void Scheduler::finish(size_t i, const char* reason, const std::string& err) {
    std::shared_ptr<CompletionJob> job = active_[i]->job;
    const std::string piece = std::move(active_[i]->piece);
    const int generated = active_[i]->generated();
    release(i);
    if (std::string(reason) == "cancelled") metrics_.requests_cancelled++;
    job->publish(piece, generated, reason, err);
}

void Scheduler::release(size_t i) {
    dec_.reset(active_[i]->slot);
    free_slots_.push_back(active_[i]->slot);
    active_.erase(active_.begin() + std::ptrdiff_t(i));
    update_gauges();
    {
        std::lock_guard<std::mutex> lock(mu_);
        in_flight_--;
    }
    idle_cv_.notify_all();
}

void Scheduler::update_gauges() {
    const KVCache& cache = dec_.cache();
    uint64_t tokens = 0;
    for (const auto& a : active_) tokens += uint64_t(cache.length(a->slot));
    metrics_.cache_bytes_in_use = tokens * cache.bytes_per_token();
    metrics_.active_sequences = int(active_.size());
    metrics_.kv_blocks_in_use = uint64_t(cache.pool().used_blocks());
    metrics_.kv_blocks_free = uint64_t(cache.pool().free_blocks());
    metrics_.kv_blocks_cached = uint64_t(cache.pool().cached_blocks());
    metrics_.preempted_sequences = int(preempted_.size());
}

void Scheduler::loop() {
    const size_t V = size_t(dec_.config().vocab_size);
    for (;;) {
        std::vector<std::shared_ptr<CompletionJob>> admitted;
        bool stopping = false;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] {
                return stop_ || !active_.empty() || !pending_.empty() || !preempted_.empty();
            });
            stopping = stop_;
            while (!pending_.empty() && admitted.size() < free_slots_.size()) {
                admitted.push_back(std::move(pending_.front()));
                pending_.pop_front();
            }
            metrics_.queued_requests = int(pending_.size());
            if (stopping) {
                // Cancel what never got a slot.
                for (auto& j : pending_) admitted.push_back(std::move(j));
                pending_.clear();
            }
        }
        try {
            // Preempted sequences whose client left (or all, when stopping) end.
            for (size_t k = preempted_.size(); k-- > 0;) {
                if (!stopping && !preempted_[k]->job->cancelled) continue;
                std::shared_ptr<CompletionJob> job = preempted_[k]->job;
                const int generated = preempted_[k]->generated();
                preempted_.erase(preempted_.begin() + std::ptrdiff_t(k));
                metrics_.requests_cancelled++;
                {
                    std::lock_guard<std::mutex> lock(mu_);
                    in_flight_--;
                }
                job->publish("", generated, "cancelled");
                idle_cv_.notify_all();
            }
            // Preempted sequences resume first (oldest first), then new jobs join, while slots
            // and cache blocks last; the rest wait in front of the queue, in order.
            while (!stopping && !preempted_.empty() && !free_slots_.empty() &&
                   resume(preempted_.front()))
                preempted_.pop_front();
            bool blocked = !preempted_.empty();
            for (auto& job : admitted) {
                if (!(stopping || job->cancelled)) {
                    if (!blocked && !free_slots_.empty() && admit(job)) continue;  // moved
                    blocked = true;
                    continue;  // stays: requeued below
                }
                {
                    std::shared_ptr<CompletionJob> gone = std::move(job);  // nullptr: handled
                    {
                        std::lock_guard<std::mutex> lock(mu_);
                        in_flight_--;
                    }
                    metrics_.requests_cancelled++;
                    gone->publish("", 0, "cancelled");
                    idle_cv_.notify_all();
                }
            }
            {
                std::lock_guard<std::mutex> lock(mu_);
                for (size_t k = admitted.size(); k-- > 0;)
                    if (admitted[k]) pending_.push_front(std::move(admitted[k]));
                metrics_.queued_requests = int(pending_.size());
            }
            // Jobs whose client left (or all, when stopping) leave the batch.
            for (size_t i = active_.size(); i-- > 0;)
                if (stopping || active_[i]->job->cancelled) finish(i, "cancelled");
            if (stopping) {
                update_gauges();
                return;
            }
            // Blocks for the step (preempting the youngest sequences when the pool is short).
            if (!active_.empty() && !make_room())
                finish(0, "error", "the KV cache pool does not hold this sequence");
            // One batched step for every active sequence.
            const int n = int(active_.size());
            if (n > 0) {
                step_slots_.resize(size_t(n));
                step_tokens_.resize(size_t(n));
                for (int i = 0; i < n; i++) {
                    step_slots_[size_t(i)] = active_[size_t(i)]->slot;
                    step_tokens_[size_t(i)] = active_[size_t(i)]->next;
                }
                logits_.resize(size_t(n) * V);
                decode_step(dec_, step_slots_.data(), step_tokens_.data(), n, logits_.data(),
                            opt_.row_by_row);
                for (int i = 0; i < n; i++)
                    active_[size_t(i)]->fed.push_back(step_tokens_[size_t(i)]);
                metrics_.peak_batch = std::max(metrics_.peak_batch.load(), n);
                // Advance every row against this step's logits, then drop the finished ones
                // (from the back, so the row indices stay valid).
                std::vector<const char*> reason(size_t(n), nullptr);
                for (int i = 0; i < n; i++)
                    reason[size_t(i)] =
                        advance(*active_[size_t(i)], logits_.data() + size_t(i) * V);
                for (int i = n; i-- > 0;)
                    if (reason[size_t(i)]) finish(size_t(i), reason[size_t(i)]);
            }
        } catch (const std::exception& e) {
            // A bug, or out of memory: fail every job in flight, keep serving.
            std::fprintf(stderr, "t6 serve: error in the decode loop: %s\n", e.what());
            for (size_t i = active_.size(); i-- > 0;) finish(i, "error", e.what());
            for (auto& job : admitted) {
                if (!job) continue;  // already admitted (and failed above)
                job->publish("", 0, "error", e.what());
                {
                    std::lock_guard<std::mutex> lock(mu_);
                    in_flight_--;
                }
                idle_cv_.notify_all();
            }
        }
        metrics_.record_tokens(sampled_);
        sampled_ = 0;
        update_gauges();
        if (opt_.throttle_ms > 0 && !active_.empty())
            std::this_thread::sleep_for(std::chrono::milliseconds(opt_.throttle_ms));
    }
}

}  // namespace t6::serve
