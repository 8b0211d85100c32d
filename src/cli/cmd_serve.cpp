// t6 serve: an OpenAI-compatible HTTP server (POST /v1/completions, /v1/chat/completions,
// /tokenize, /detokenize; GET /v1/models, /health, /metrics) with continuous batching over the KV
// cache. SIGTERM/SIGINT: stop taking requests, let those in flight finish for up to
// --shutdown-grace seconds, cancel the rest, exit 0.
#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/model_arg.h"
#include "cli/tokenizer_arg.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/stop_signal.h"
#include "core/threads.h"
#include "model/checkpoint.h"
#include "serve/http_server.h"
#include "serve/scheduler.h"
#include "serve/slot_plan.h"

namespace t6::cli {

namespace {

std::string default_model_id(const ModelChoice& m) {
    namespace fs = std::filesystem;
    if (!m.is_checkpoint) return m.source;
    fs::path p(m.source);
    if (p.filename().empty()) p = p.parent_path();
    return p.stem().string();
}

// Whether `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost).
bool is_loopback_host(const std::string& host) {
    if (host == "localhost" || host == "::1" || host == "[::1]") return true;
    in_addr a{};
    return inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

}  // namespace

int cmd_serve(int argc, char** argv) {
    ArgParser p("serve", "--model CHECKPOINT [options]",
                "Serves the model over HTTP with the OpenAI completions and chat APIs (POST "
                "/v1/completions, /v1/chat/completions, /tokenize, /detokenize; GET /v1/models, "
                "/health, /metrics), batching every "
                "request in flight into one decode step (continuous batching). The KV cache is a "
                "pool of --kv-budget bytes in blocks of --block-tokens tokens, taken by each "
                "sequence as it grows; a request is admitted when the pool has blocks for its "
                "prompt (prompts starting like an earlier one share its cached blocks), and "
                "when the pool runs out the youngest sequence is preempted and later resumed "
                "(docs/paged-cache.md). SIGTERM/SIGINT shut down gracefully.");
    add_model_options(p);
    p.option("host", "ADDR", "address to listen on", "127.0.0.1");
    p.option("port", "N", "port; 0 = any free port (printed at start)", "8080");
    p.option("kv-budget", "BYTES", "memory for the KV cache, e.g. 2GiB", "2GiB");
    p.option("max-context", "N", "tokens per sequence (prompt + completion)",
             "the model's block_size");
    p.option("max-slots", "N", "at most this many concurrent sequences", "256");
    p.option("block-tokens", "N",
             "tokens per KV cache block; 0: one block of --max-context tokens per sequence "
             "(contiguous slots: the budget / (max_context x record) sequences)",
             "32");
    p.flag("no-prefix-cache", "do not share cached prompt-prefix blocks between requests");
    p.option("cache", "TYPE",
             "KV cache element type: f32, bf16 or q8 (int8 rows with a scale each)", "f32");
    p.option("weights", "TYPE",
             "decoding weights: f32, bf16, q8, q4, q8a8 or q4a8 (quantized at load)", "f32");
    p.option("queue", "N", "requests that may wait for a slot (beyond: 503 + Retry-After)", "64");
    p.option("api-key", "KEY",
             "require 'Authorization: Bearer KEY' (default: $T6_API_KEY; none if unset)");
    p.option("model-name", "NAME", "the model id clients pass", "the checkpoint's file name");
    p.option("max-connections", "N",
             "open connections at once (one thread each; beyond: 503 and close)", "512");
    p.option("max-body", "BYTES", "largest request body (any encoding; beyond: 413)", "1MiB");
    p.option("header-timeout", "S", "request line and headers must arrive within S seconds", "10");
    p.option("body-timeout", "S", "a request body must arrive within S seconds", "30");
    p.option("idle-timeout", "S", "keep-alive connections idle for S seconds are closed", "30");
    p.option("shutdown-grace", "S", "seconds in-flight requests get to finish at shutdown", "10");
    p.option("tokenizer", "NAME", "gpt2, bytes or a tokenizer file (default: the checkpoint's)");
    p.option("chat-template", "FILE",
             "chat template JSON for /v1/chat/completions (docs/serving.md; default: the "
             "checkpoint's 'chat_template' metadata, else a plain User:/Assistant: template)");
    p.option("threads", "N", "compute threads", "all cores");
    p.flag("deterministic",
           "decode each sequence in its own single-row step, so a request's text is bit for bit "
           "the same whatever it is batched with (batched GEMM rows can differ from single-row "
           "ones in the last bits); lower throughput");
    p.option("throttle-ms", "N", "sleep N ms after each decode step (tests, demos)", "0");
    p.parse(argc, argv, 0);
    if (p.has("threads"))
        set_num_threads(int(check_thread_count(p.get_int64("threads"), "t6 serve: --threads")));

    ModelChoice m = resolve_model_choice(p, "serve");
    std::unique_ptr<Model> model = load_or_init_model(m, "serve", 0);
    const ModelConfig& cfg = model->config();
    auto tok =
        resolve_tokenizer(p.get("tokenizer"), m.is_checkpoint ? m.source : "", cfg.vocab_size);

    serve::SchedulerOptions so;
    so.max_context = p.has("max-context") ? p.get_int("max-context") : cfg.block_size;
    so.cache = parse_cache_type(p.get("cache"));
    so.weights = parse_weight_type(p.get("weights"));
    so.queue = p.get_int("queue");
    so.throttle_ms = p.get_int("throttle-ms");
    so.row_by_row = p.has("deterministic");
    if (so.queue < 0) fail("t6 serve: --queue must be >= 0");
    const size_t per_token = size_t(kv_record_bytes(cfg, so.cache)) * cfg.n_layer;
    const double budget = parse_bytes(p.get("kv-budget"), "--kv-budget");
    so.block_tokens = p.get_int("block-tokens");
    if (so.block_tokens < 0) fail("t6 serve: --block-tokens must be >= 0");
    const serve::SlotPlan plan =
        so.block_tokens > 0
            ? serve::plan_paged(budget, per_token, so.block_tokens, so.max_context,
                                p.get_int("max-slots"))
            : serve::plan_slots(budget, per_token, so.max_context, p.get_int("max-slots"),
                                kv_contiguous_tokens(cfg, so.cache, so.max_context));
    so.max_slots = plan.slots;
    so.kv_blocks = long(plan.pool_blocks);
    so.prefix_cache = so.block_tokens > 0 && !p.has("no-prefix-cache");

    serve::ServerOptions ho;
    ho.host = p.get("host");
    ho.port = p.get_int("port");
    if (p.has("api-key")) {
        ho.api_key = p.get("api-key");
        if (ho.api_key.empty())
            fail(
                "t6 serve: --api-key is empty, which would let anyone in; give a key, or leave "
                "the option out to serve without one");
    } else if (const char* k = std::getenv("T6_API_KEY")) {
        ho.api_key = k;
        if (ho.api_key.empty())
            fail(
                "t6 serve: T6_API_KEY is set but empty, which would let anyone in; set a key, "
                "or unset it to serve without one");
    }
    if (p.has("chat-template")) {
        const std::string path = p.get("chat-template");
        if (!std::filesystem::is_regular_file(path))
            fail("t6 serve: --chat-template ", path, ": no such file");
        ho.chat_template =
            serve::ChatTemplate::parse(read_file_text(path), "--chat-template " + path);
    } else if (m.is_checkpoint) {
        const auto meta = checkpoint_metadata(m.source);
        if (const auto it = meta.find("chat_template"); it != meta.end())
            ho.chat_template =
                serve::ChatTemplate::parse(it->second, m.source + ": metadata 'chat_template'");
    }
    ho.model_id = p.has("model-name") ? p.get("model-name") : default_model_id(m);
    ho.max_connections = p.get_int("max-connections");
    ho.max_body_bytes = size_t(parse_bytes(p.get("max-body"), "--max-body"));
    if (ho.port < 0 || ho.port > 65535) fail("t6 serve: --port must be in 0..65535");
    if (ho.max_connections < 1) fail("t6 serve: --max-connections must be >= 1");
    const auto seconds = [&](const char* name) {
        const double x = p.get_double(name);
        if (!(x > 0 && x <= 86400)) fail("t6 serve: --", name, " must be in (0, 86400] seconds");
        return x;
    };
    ho.header_timeout_s = seconds("header-timeout");
    ho.body_timeout_s = seconds("body-timeout");
    ho.idle_timeout_s = seconds("idle-timeout");
    const double grace = p.get_double("shutdown-grace");
    if (!(grace >= 0)) fail("t6 serve: --shutdown-grace must be >= 0");

    serve::Metrics metrics;
    serve::Scheduler scheduler(*model, *tok, so, metrics);
    serve::HttpServer server(scheduler, *tok, metrics, ho);
    const int port = server.bind();
    std::signal(SIGPIPE, SIG_IGN);
    enable_graceful_stop();  // core/stop_signal.h: a second signal ends the process at once
    const std::string paging =
        so.block_tokens > 0
            ? cat("paged: ", plan.pool_blocks, " blocks of ", so.block_tokens,
                  " tokens, prefix cache ", so.prefix_cache ? "on" : "off",
                  "; contiguous slots would hold ", plan.budget_slots)
            : cat("contiguous; the ", human_bytes(budget), " budget holds ", plan.budget_slots);
    std::fprintf(stderr,
                 "[t6 serve] %s as '%s' | %d slots x %d tokens (KV cache %s, %s per token, %s; "
                 "%s) | queue %d | chat template: %s | %d threads, OpenMP wait policy %s%s%s\n",
                 cfg.describe().c_str(), ho.model_id.c_str(), plan.slots, so.max_context,
                 human_bytes(double(plan.bytes)).c_str(), human_bytes(double(per_token)).c_str(),
                 cache_type_name(so.cache), paging.c_str(), so.queue,
                 ho.chat_template.source.c_str(), num_threads(), omp_wait_policy().c_str(),
                 so.row_by_row ? " | deterministic (row-by-row steps)" : "",
                 ho.api_key.empty() ? "" : " | API key required");
    if (ho.api_key.empty() && !is_loopback_host(ho.host))
        std::fprintf(stderr,
                     "[t6 serve] warning: listening on %s without an API key: anyone who can "
                     "reach this port can use the model (set --api-key or T6_API_KEY)\n",
                     ho.host.c_str());
    std::printf("t6 serve: listening on http://%s:%d\n", ho.host.c_str(), port);
    std::fflush(stdout);

    std::thread http([&] { server.run(); });
    while (stop_signal() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::fprintf(stderr, "[t6 serve] %s: shutting down (in-flight requests get %.3g s)\n",
                 stop_signal() == SIGINT ? "SIGINT" : "SIGTERM", grace);
    server.start_draining();
    scheduler.shutdown(std::chrono::milliseconds(long(grace * 1000)));
    server.wait_handlers(2000);  // let handlers write their last bytes
    server.stop();
    http.join();
    std::fprintf(stderr, "[t6 serve] stopped: %llu requests, %llu tokens generated\n",
                 (unsigned long long)metrics.requests_total.load(),
                 (unsigned long long)metrics.tokens_generated.load());
    return 0;
}

}  // namespace t6::cli
