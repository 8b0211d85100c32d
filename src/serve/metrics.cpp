#include "serve/metrics.h"

#include <algorithm>
#include <sstream>

namespace t6::serve {

namespace {

constexpr double kWindowSeconds = 10.0;

void metric(std::ostringstream& os, const char* name, const char* type, const char* help,
            double value) {
    write_metric(os, name, type, help, value);
}

}  // namespace

void write_metric(std::ostream& os, const char* name, const char* type, const char* help,
                  double value) {
    os << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
       << name << ' ' << value << '\n';
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double seconds) {
    const size_t b =
        size_t(std::lower_bound(bounds_.begin(), bounds_.end(), seconds) - bounds_.begin());
    std::lock_guard<std::mutex> lock(mu_);
    counts_[b]++;
    sum_ += seconds;
    n_++;
}

uint64_t Histogram::count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return n_;
}

void Histogram::render(std::ostream& os, const char* name, const char* help) const {
    std::lock_guard<std::mutex> lock(mu_);
    os << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds_.size(); i++) {
        cum += counts_[i];
        os << name << "_bucket{le=\"" << bounds_[i] << "\"} " << cum << '\n';
    }
    os << name << "_bucket{le=\"+Inf\"} " << n_ << '\n'
       << name << "_sum " << sum_ << '\n'
       << name << "_count " << n_ << '\n';
}

void Metrics::count_response(int code) {
    std::lock_guard<std::mutex> lock(mu_);
    responses_[code]++;
}

void Metrics::record_tokens(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    window_.emplace_back(now, n);
    while (!window_.empty() &&
           std::chrono::duration<double>(now - window_.front().first).count() > kWindowSeconds)
        window_.pop_front();
}

double Metrics::tokens_per_second() const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = Clock::now();
    while (!window_.empty() &&
           std::chrono::duration<double>(now - window_.front().first).count() > kWindowSeconds)
        window_.pop_front();
    uint64_t sum = 0;
    for (const auto& w : window_) sum += uint64_t(w.second);
    const double span =
        std::min(kWindowSeconds, std::chrono::duration<double>(now - start_).count());
    return span > 0 ? double(sum) / span : 0.0;
}

std::string Metrics::prometheus() const {
    std::ostringstream os;
    os.precision(12);
    metric(os, "t6_requests_total", "counter", "Completion requests accepted.",
           double(requests_total.load()));
    metric(os, "t6_requests_rejected_total", "counter",
           "Completion requests refused with 503 (queue full or shutting down).",
           double(requests_rejected.load()));
    metric(os, "t6_requests_cancelled_total", "counter",
           "Completions stopped early (client disconnected or shutdown).",
           double(requests_cancelled.load()));
    metric(os, "t6_prompt_tokens_total", "counter", "Prompt tokens prefilled.",
           double(prompt_tokens.load()));
    metric(os, "t6_tokens_generated_total", "counter", "Completion tokens generated.",
           double(tokens_generated.load()));
    metric(os, "t6_tokens_per_second", "gauge", "Tokens generated per second, last 10 s.",
           tokens_per_second());
    metric(os, "t6_active_sequences", "gauge", "Sequences holding a cache slot.",
           double(active_sequences.load()));
    metric(os, "t6_queued_requests", "gauge", "Requests waiting for a cache slot.",
           double(queued_requests.load()));
    metric(os, "t6_batch_size_peak", "gauge", "Largest decode batch so far.",
           double(peak_batch.load()));
    metric(os, "t6_cache_slots", "gauge", "Cache slots (concurrent sequences).", double(slots));
    metric(os, "t6_kv_cache_bytes_in_use", "gauge", "KV cache bytes holding tokens.",
           double(cache_bytes_in_use.load()));
    metric(os, "t6_kv_cache_bytes_budget", "gauge", "KV cache bytes allocated.",
           double(cache_bytes_budget));
    metric(os, "t6_kv_block_tokens", "gauge", "Tokens per KV cache block.",
           double(kv_block_tokens));
    metric(os, "t6_kv_blocks_total", "gauge", "KV cache blocks in the pool.",
           double(kv_blocks_total));
    metric(os, "t6_kv_blocks_in_use", "gauge", "KV cache blocks held by sequences.",
           double(kv_blocks_in_use.load()));
    metric(os, "t6_kv_blocks_free", "gauge",
           "KV cache blocks free (cached prefix blocks included).", double(kv_blocks_free.load()));
    metric(os, "t6_kv_blocks_cached", "gauge",
           "Free KV cache blocks still holding a reusable prompt prefix.",
           double(kv_blocks_cached.load()));
    metric(os, "t6_prefix_cache_hit_tokens_total", "counter",
           "Prompt tokens taken from the prefix cache instead of prefilled.",
           double(prefix_hit_tokens.load()));
    metric(os, "t6_prefix_cache_hit_blocks_total", "counter",
           "KV cache blocks shared from the prefix cache.", double(prefix_hit_blocks.load()));
    metric(os, "t6_preemptions_total", "counter",
           "Sequences preempted when the KV cache pool ran out (resumed by recompute).",
           double(preemptions.load()));
    metric(os, "t6_preempted_sequences", "gauge", "Preempted sequences waiting to resume.",
           double(preempted_sequences.load()));
    time_to_first_token.render(os, "t6_time_to_first_token_seconds",
                               "Seconds from a completion's submission to its first token.");
    inter_token_latency.render(os, "t6_inter_token_latency_seconds",
                               "Seconds between successive tokens of a completion.");
    for (const auto& f : sections_) f(os);
    std::lock_guard<std::mutex> lock(mu_);
    os << "# HELP t6_http_responses_total HTTP responses by status code.\n"
       << "# TYPE t6_http_responses_total counter\n";
    for (const auto& [code, n] : responses_)
        os << "t6_http_responses_total{code=\"" << code << "\"} " << n << '\n';
    return os.str();
}

}  // namespace t6::serve
