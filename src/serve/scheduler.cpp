#include "serve/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <unordered_map>

#include "core/error.h"
#include "core/threads.h"
#include "infer/sampler.h"
#include "serve/text_stream.h"

namespace t6::serve {

struct Scheduler::Active {
    std::shared_ptr<CompletionJob> job;
    int slot;
    Sampler sampler;
    TextStream text;
    int generated = 0;
    int32_t next = 0;                         // the token the next step appends
    std::string piece;                        // text of the last token, published with the finish
    std::unordered_map<int32_t, int> counts;  // generated tokens, for the penalties
    std::chrono::steady_clock::time_point last_token;
    Active(std::shared_ptr<CompletionJob> j, int s)
        : job(std::move(j)), slot(s), sampler(job->sampling), text(job->stop) {}
};

Scheduler::Scheduler(const Model& model, const Tokenizer& tok, const SchedulerOptions& o,
                     Metrics& m)
    : tok_(tok),
      opt_(o),
      metrics_(m),
      dec_(model, o.max_slots, o.max_context, o.cache, o.weights),
      vocab_(std::min(model.config().vocab_size, tok.vocab_size())) {
    T6_CHECK(o.max_slots > 0 && o.max_context > 0 && o.queue >= 0);
    for (int s = o.max_slots - 1; s >= 0; s--) free_slots_.push_back(s);
    metrics_.slots = o.max_slots;
    metrics_.cache_bytes_budget = dec_.cache().bytes();
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

void Scheduler::admit(std::shared_ptr<CompletionJob> job) {
    const int slot = free_slots_.back();
    free_slots_.pop_back();
    active_.push_back(std::make_unique<Active>(std::move(job), slot));
    Active& a = *active_.back();
    logits_.resize(size_t(dec_.config().vocab_size));
    if (a.job->score_prompt)
        prefill_scored(a);
    else
        dec_.append(slot, a.job->prompt.data(), int(a.job->prompt.size()), logits_.data());
    metrics_.prompt_tokens += a.job->prompt.size();
    update_gauges();
    if (a.job->max_tokens == 0) {
        finish(active_.size() - 1, "length");
        return;
    }
    if (const char* reason = advance(a, logits_.data())) finish(active_.size() - 1, reason);
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
    const float* biased = logits;
    if (!job.logit_bias.empty() || job.presence_penalty != 0 || job.frequency_penalty != 0) {
        biased_.assign(logits, logits + vocab_);
        for (const auto& [id, c] : a.counts)
            if (id < vocab_)
                biased_[size_t(id)] -=
                    float(c) * job.frequency_penalty + (c > 0 ? job.presence_penalty : 0.0f);
        for (const auto& [id, b] : job.logit_bias)
            if (id < vocab_)
                biased_[size_t(id)] =
                    b <= -100 ? -std::numeric_limits<float>::infinity() : biased_[size_t(id)] + b;
        biased = biased_.data();
    }
    const int32_t t = a.sampler.sample(biased, vocab_);
    const auto now = std::chrono::steady_clock::now();
    if (a.generated == 0)
        metrics_.time_to_first_token.observe(
            std::chrono::duration<double>(now - job.submitted).count());
    else
        metrics_.inter_token_latency.observe(
            std::chrono::duration<double>(now - a.last_token).count());
    a.last_token = now;
    if (t == tok_.eot() && !job.ignore_eos) {
        a.piece = a.text.finish();
        return "stop";
    }
    a.generated++;
    a.counts[t]++;
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
    if (a.generated >= job.max_tokens) {
        a.piece += a.text.finish();
        return "length";
    }
    job.publish(a.piece, a.generated);
    a.piece.clear();
    a.next = t;
    return nullptr;
}

void Scheduler::finish(size_t i, const char* reason, const std::string& err) {
    std::shared_ptr<CompletionJob> job = active_[i]->job;
    const std::string piece = std::move(active_[i]->piece);
    const int generated = active_[i]->generated;
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
    uint64_t tokens = 0;
    for (const auto& a : active_) tokens += uint64_t(dec_.cache().length(a->slot));
    metrics_.cache_bytes_in_use = tokens * dec_.cache().bytes_per_token();
    metrics_.active_sequences = int(active_.size());
}

void Scheduler::loop() {
    const size_t V = size_t(dec_.config().vocab_size);
    for (;;) {
        std::vector<std::shared_ptr<CompletionJob>> admitted;
        bool stopping = false;
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stop_ || !active_.empty() || !pending_.empty(); });
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
            // New jobs join the batch (cancelled ones finish at once, below).
            for (auto& slot_job : admitted) {
                auto job = std::move(slot_job);  // leaves nullptr: handled
                if (stopping || job->cancelled) {
                    {
                        std::lock_guard<std::mutex> lock(mu_);
                        in_flight_--;
                    }
                    metrics_.requests_cancelled++;
                    job->publish("", 0, "cancelled");
                    idle_cv_.notify_all();
                    continue;
                }
                admit(std::move(job));
            }
            // Jobs whose client left (or all, when stopping) leave the batch.
            for (size_t i = active_.size(); i-- > 0;)
                if (stopping || active_[i]->job->cancelled) finish(i, "cancelled");
            if (stopping) {
                update_gauges();
                return;
            }
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
                if (opt_.row_by_row)
                    for (int i = 0; i < n; i++)
                        dec_.step(&step_slots_[size_t(i)], &step_tokens_[size_t(i)], 1,
                                  logits_.data() + size_t(i) * V);
                else
                    dec_.step(step_slots_.data(), step_tokens_.data(), n, logits_.data());
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
