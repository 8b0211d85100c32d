#include "serve/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "core/error.h"
#include "serve/auth.h"
#include "serve/connection.h"
#include "serve/logprobs.h"
#include "serve/openai.h"
#include "text/utf8.h"

namespace t6::serve {

using nlohmann::json;

namespace {

constexpr const char* kJson = "application/json";

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void send_error(httplib::Response& res, const ApiError& e, int retry_after_s) {
    res.status = e.status;
    if (e.status == 503) res.set_header("Retry-After", std::to_string(retry_after_s));
    res.set_content(dump(error_body(e)), kJson);
}

// Messages for errors httplib produces itself (no route, body too large, bad request line).
std::string default_message(const httplib::Request& req, int status) {
    switch (status) {
        case 404:
            return "Invalid URL (" + req.method + " " + req.path + ")";
        case 413:
            return "The request body is too large.";
        case 414:
            return "The request URI is too long.";
        case 400:
            return "The request could not be parsed.";
        default:
            return "HTTP error " + std::to_string(status) + ".";
    }
}

// The client's X-Request-Id when it is a sane one (1..128 printable ASCII characters), else a
// new "req-" + 24 hex digits.
std::string request_id(const httplib::Request& req) {
    const std::string given = req.get_header_value("X-Request-Id");
    bool ok = !given.empty() && given.size() <= 128;
    for (unsigned char c : given) ok = ok && c > 32 && c < 127;
    if (ok) return given;
    static thread_local std::mt19937_64 rng(std::random_device{}());
    std::string id = "req-";
    for (int i = 0; i < 24; i++) id += "0123456789abcdef"[rng() & 15];
    return id;
}

// One choice of a request: its job, and what its text starts with (completions' echo).
struct Choice {
    std::shared_ptr<CompletionJob> job;
    std::string echo;
    size_t prompt_chars = 0;  // code points of the prompt: text_offset of the first new token
};

// The POST routes that take a request body.
bool takes_body(const std::string& path) {
    return path == "/v1/completions" || path == "/v1/chat/completions" || path == "/tokenize" ||
           path == "/detokenize";
}

}  // namespace

struct HttpServer::Impl {
    Scheduler& scheduler;
    const Tokenizer& tok;
    Metrics& metrics;
    ServerOptions opt;
    GuardedServer http;
    int64_t created = unix_time();
    std::atomic<bool> draining{false};
    std::atomic<int> handlers{0};  // completions whose response is still being produced

    Impl(Scheduler& s, const Tokenizer& t, Metrics& m, ServerOptions o)
        : scheduler(s), tok(t), metrics(m), opt(std::move(o)), http(limits(opt)) {}

    static ConnectionLimits limits(const ServerOptions& o) {
        ConnectionLimits l;
        l.max_connections = o.max_connections;
        l.max_body_bytes = o.max_body_bytes;
        l.header_timeout_s = o.header_timeout_s;
        l.body_timeout_s = o.body_timeout_s;
        l.idle_timeout_s = o.idle_timeout_s;
        return l;
    }

    // Refuses, before any of it is read, a body no handler would take: one over --max-body
    // by its Content-Length, or one sent anywhere but POST /v1/completions. Such a response
    // closes the connection, as the body stays unread. Returns whether it answered.
    bool refuse_body(const httplib::Request& req, httplib::Response& res) {
        const bool chunked = req.has_header("Transfer-Encoding");
        const std::string len = req.get_header_value("Content-Length");
        const bool has_length = !len.empty() && len.find_first_not_of('0') != std::string::npos;
        if (!chunked && !has_length) return false;
        if (has_length) {
            char* end = nullptr;
            errno = 0;
            const unsigned long long n = std::strtoull(len.c_str(), &end, 10);
            if (errno != 0 || *end != '\0' || n > opt.max_body_bytes) {
                GuardedServer::close_after_response();
                send_error(res, ApiError(413, default_message(req, 413)), opt.retry_after_s);
                return true;
            }
        }
        if (req.method == "POST" && takes_body(req.path)) return false;
        GuardedServer::close_after_response();
        const bool known = req.path == "/health" || req.path == "/metrics" ||
                           req.path == "/v1/models" || req.path == "/tokenizer_info" ||
                           takes_body(req.path);
        send_error(res,
                   known ? ApiError(400, cat(req.method, " ", req.path, " takes no request body"))
                         : ApiError(404, default_message(req, 404)),
                   opt.retry_after_s);
        return true;
    }

    // Runs a handler; an ApiError (or any exception) becomes an OpenAI error body.
    template <typename F>
    httplib::Server::Handler guarded(F f) {
        return [this, f](const httplib::Request& req, httplib::Response& res) {
            try {
                (this->*f)(req, res);
            } catch (const ApiError& e) {
                send_error(res, e, opt.retry_after_s);
            } catch (const std::exception& e) {
                send_error(res, ApiError(500, e.what(), "", "", "server_error"), opt.retry_after_s);
            }
        };
    }

    void routes() {
        http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            res.set_header("X-Request-Id", request_id(req));
            if (refuse_body(req, res)) return httplib::Server::HandlerResponse::Handled;
            if (opt.api_key.empty() || req.path == "/health")
                return httplib::Server::HandlerResponse::Unhandled;
            if (bearer_matches(req.get_header_value("Authorization"), opt.api_key))
                return httplib::Server::HandlerResponse::Unhandled;
            send_error(res,
                       ApiError(401,
                                "Incorrect API key provided. Pass it as 'Authorization: Bearer "
                                "KEY'.",
                                "", "invalid_api_key"),
                       opt.retry_after_s);
            return httplib::Server::HandlerResponse::Handled;
        });
        http.set_error_handler(httplib::Server::HandlerWithResponse(
            [](const httplib::Request& req, httplib::Response& res) {
                if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
                ApiError e(res.status, default_message(req, res.status));
                if (res.status >= 500) e.type = "server_error";
                res.set_content(dump(error_body(e)), kJson);
                return httplib::Server::HandlerResponse::Handled;
            }));
        http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
            metrics.count_response(res.status);
        });
        http.Get("/health", guarded(&Impl::health));
        http.Get("/metrics", guarded(&Impl::get_metrics));
        http.Get("/v1/models", guarded(&Impl::models));
        http.Get("/tokenizer_info", guarded(&Impl::tokenizer_info));
        post("/v1/completions", &Impl::completions);
        post("/v1/chat/completions", &Impl::chat_completions);
        post("/tokenize", &Impl::tokenize);
        post("/detokenize", &Impl::detokenize);
    }

    using PostHandler = void (Impl::*)(httplib::Response&, const std::string&);
    void post(const char* path, PostHandler f) {
        http.Post(path, [this, f](const httplib::Request&, httplib::Response& res,
                                  const httplib::ContentReader& reader) {
            try {
                (this->*f)(res, read_body(reader));
            } catch (const ApiError& e) {
                send_error(res, e, opt.retry_after_s);
            } catch (const std::exception& e) {
                send_error(res, ApiError(500, e.what(), "", "", "server_error"), opt.retry_after_s);
            }
        });
    }

    int vocab() const { return tok.vocab_size(); }

    // vLLM's GET /tokenizer_info, what lm-evaluation-harness probes (with /tokenize) to use the
    // server's tokenizer (its tokenizer_backend "remote").
    void tokenizer_info(const httplib::Request&, httplib::Response& res) {
        const json eos = tok.eot() >= 0 ? json(tok.token_bytes(tok.eot())) : json(nullptr);
        res.set_content(dump({{"tokenizer_class", tok.kind()},
                              {"eos_token", eos},
                              {"bos_token", nullptr},
                              {"pad_token", nullptr},
                              {"model_max_length", scheduler.max_context()},
                              {"vocab_size", tok.vocab_size()}}),
                        kJson);
    }

    void tokenize(httplib::Response& res, const std::string& body) {
        const std::vector<int32_t> ids =
            tok.encode_with_special(parse_tokenize_request(body, opt.model_id));
        res.set_content(dump({{"tokens", ids},
                              {"count", ids.size()},
                              {"max_model_len", scheduler.max_context()}}),
                        kJson);
    }

    void detokenize(httplib::Response& res, const std::string& body) {
        const std::string text = tok.decode(parse_detokenize_request(body, opt.model_id, vocab()));
        res.set_content(dump({{"prompt", text}, {"content", text}}), kJson);
    }

    void health(const httplib::Request&, httplib::Response& res) {
        if (draining)
            throw ApiError(503, "The server is shutting down.", "", "shutting_down",
                           "server_error");
        res.set_content(dump({{"status", "ok"}}), kJson);
    }

    void get_metrics(const httplib::Request&, httplib::Response& res) {
        res.set_content(metrics.prometheus(), "text/plain; version=0.0.4");
    }

    void models(const httplib::Request&, httplib::Response& res) {
        res.set_content(dump(model_list(opt.model_id, created)), kJson);
    }

    // A job for one choice of `prompt` (choice i samples with seed + i).
    std::shared_ptr<CompletionJob> make_job(std::vector<int32_t> prompt, const GenerationParams& r,
                                            int i) {
        auto job = std::make_shared<CompletionJob>();
        job->prompt = std::move(prompt);
        if (job->prompt.empty()) {
            if (tok.eot() < 0) throw ApiError(400, "prompt must not be empty", "prompt");
            job->prompt.push_back(tok.eot());  // like OpenAI: an empty prompt is <|endoftext|>
        }
        const int ctx = scheduler.max_context();
        const long need = long(job->prompt.size()) + r.max_tokens;
        if (need > ctx)
            throw ApiError(400,
                           cat("This model's maximum context length is ", ctx,
                               " tokens, however you requested ", need, " tokens (",
                               job->prompt.size(), " in your prompt; ", r.max_tokens,
                               " for the completion). Please reduce your prompt; or completion "
                               "length."),
                           "prompt", "context_length_exceeded");
        job->max_tokens = r.max_tokens;
        job->sampling = r.sampling;
        job->sampling.seed += uint64_t(i);
        job->stop = r.stop;
        job->ignore_eos = r.ignore_eos;
        job->logprobs = r.logprobs;
        job->presence_penalty = r.presence_penalty;
        job->frequency_penalty = r.frequency_penalty;
        job->logit_bias = r.logit_bias;
        return job;
    }

    // Submits every choice's job; when one is refused, the ones already queued are cancelled.
    void submit_all(const std::vector<Choice>& choices) {
        for (size_t i = 0; i < choices.size(); i++) {
            try {
                submit(choices[i].job);
            } catch (const ApiError&) {
                for (size_t k = 0; k < i; k++) choices[k].job->cancelled = true;
                scheduler.wake();
                throw;
            }
        }
    }

    // Waits for every choice; false (after cancelling them and answering 499) when the client
    // hung up first.
    bool wait_all(const std::vector<Choice>& choices, httplib::Response& res) {
        handlers++;
        for (const auto& c : choices) {
            std::unique_lock<std::mutex> lock(c.job->mu);
            // Checks every 100 ms whether the client is still there: one that hung up (timed
            // out, was killed) gives up its slots rather than holding them to the end.
            while (!c.job->cv.wait_for(lock, std::chrono::milliseconds(100),
                                       [&] { return c.job->done; })) {
                if (!GuardedServer::client_gone()) continue;
                lock.unlock();
                for (const auto& d : choices) d.job->cancelled = true;
                scheduler.wake();
                handlers--;
                GuardedServer::close_after_response();
                res.status = 499;  // nginx's "client closed request"; nobody reads it
                return false;
            }
        }
        handlers--;
        for (const auto& c : choices)
            if (c.job->finish_reason == "cancelled" || c.job->finish_reason == "error")
                throw failure(*c.job);
        return true;
    }

    Usage usage_of(const std::vector<Choice>& choices, int prompt_tokens) {
        Usage u{prompt_tokens, 0};
        for (const auto& c : choices) {
            std::lock_guard<std::mutex> lock(c.job->mu);
            u.completion_tokens += c.job->completion_tokens;
        }
        return u;
    }

    void submit(const std::shared_ptr<CompletionJob>& job) {
        if (draining) {
            metrics.requests_rejected++;
            throw ApiError(503, "The server is shutting down.", "", "shutting_down",
                           "server_error");
        }
        switch (scheduler.submit(job)) {
            case Scheduler::Submit::ok:
                break;
            case Scheduler::Submit::queue_full:
                metrics.requests_rejected++;
                throw ApiError(503,
                               cat("The server is busy: all ", scheduler.max_slots(),
                                   " cache slots are in use and the queue is full. Retry later."),
                               "", "server_busy", "server_error");
            case Scheduler::Submit::shutting_down:
                metrics.requests_rejected++;
                throw ApiError(503, "The server is shutting down.", "", "shutting_down",
                               "server_error");
        }
        metrics.requests_total++;
    }

    // The error a job that did not finish normally turns into.
    static ApiError failure(const CompletionJob& job) {
        if (job.finish_reason == "cancelled")
            return ApiError(503, "The server shut down before the completion finished.", "",
                            "shutting_down", "server_error");
        return ApiError(500, "Generation failed: " + job.error, "", "", "server_error");
    }

    // The request body, whatever its encoding, read up to --max-body: 413 the moment a chunked
    // body passes it (the rest is never read; the connection closes after the answer).
    std::string read_body(const httplib::ContentReader& reader) {
        std::string body;
        bool too_large = false;
        const bool ok = reader([&](const char* data, size_t n) {
            if (n > opt.max_body_bytes - body.size()) {
                too_large = true;
                return false;
            }
            body.append(data, n);
            return true;
        });
        if (too_large) {
            GuardedServer::close_after_response();
            throw ApiError(413, "The request body is too large.");
        }
        if (!ok) {
            GuardedServer::close_after_response();
            throw ApiError(400, "The request body could not be read.");
        }
        return body;
    }

    void completions(httplib::Response& res, const std::string& body) {
        const CompletionRequest r =
            parse_completion_request(body, opt.model_id, scheduler.max_context(), vocab());
        std::vector<Choice> choices;
        int prompt_tokens = 0;
        for (const Prompt& p : r.prompts) {
            std::vector<int32_t> ids = p.tokens ? p.ids : tok.encode_with_special(p.text);
            const std::string text = p.tokens ? tok.decode(p.ids) : p.text;
            for (int i = 0; i < r.n; i++) {
                Choice c;
                c.job = make_job(ids, r, i);
                // Echo with logprobs scores the prompt: every position's logprob.
                c.job->score_prompt = r.echo && r.logprobs >= 0;
                if (r.echo) c.echo = text;
                c.prompt_chars = text::utf8_lead_bytes(text);
                if (i == 0) prompt_tokens += int(c.job->prompt.size());
                choices.push_back(std::move(c));
            }
        }
        submit_all(choices);
        const std::string id = completion_id(), model = opt.model_id;
        const int64_t t = unix_time();
        if (r.stream) return stream(res, std::move(choices), id, t, prompt_tokens, r, false);
        if (!wait_all(choices, res)) return;
        json out = json::array();
        for (size_t i = 0; i < choices.size(); i++) {
            const CompletionJob& job = *choices[i].job;
            json lp = nullptr;
            if (r.logprobs >= 0) {
                std::vector<TokenLogprob> all = job.prompt_logprobs;
                all.insert(all.end(), job.token_logprobs.begin(), job.token_logprobs.end());
                lp = completion_logprobs(tok, all, r.echo ? 0 : choices[i].prompt_chars);
            }
            out.push_back(
                completion_choice(int(i), choices[i].echo + job.text, job.finish_reason, lp));
        }
        res.set_content(dump(completion_response(id, t, model, std::move(out),
                                                 usage_of(choices, prompt_tokens))),
                        kJson);
    }

    void chat_completions(httplib::Response& res, const std::string& body) {
        ChatRequest r = parse_chat_request(body, opt.model_id, scheduler.max_context(), vocab());
        for (const auto& s : opt.chat_template.stop) r.stop.push_back(s);  // end of turn
        const std::vector<int32_t> ids =
            tok.encode_with_special(opt.chat_template.render(r.messages));
        std::vector<Choice> choices;
        for (int i = 0; i < r.n; i++) choices.push_back({make_job(ids, r, i), "", 0});
        const int prompt_tokens = int(choices[0].job->prompt.size());
        submit_all(choices);
        const std::string id = chat_completion_id(), model = opt.model_id;
        const int64_t t = unix_time();
        if (r.stream) return stream(res, std::move(choices), id, t, prompt_tokens, r, true);
        if (!wait_all(choices, res)) return;
        json out = json::array();
        for (size_t i = 0; i < choices.size(); i++) {
            const CompletionJob& job = *choices[i].job;
            out.push_back(chat_choice(
                int(i), job.text, job.finish_reason,
                r.chat_logprobs ? chat_logprobs(tok, job.token_logprobs) : json(nullptr)));
        }
        res.set_content(
            dump(chat_response(id, t, model, std::move(out), usage_of(choices, prompt_tokens))),
            kJson);
    }

    // Server-sent events for every choice as its text arrives (text_completion chunks, or
    // chat.completion.chunk ones with a role delta first), a finish chunk per choice, the usage
    // chunk if asked, then [DONE].
    void stream(httplib::Response& res, std::vector<Choice> choices, const std::string& id,
                int64_t t, int prompt_tokens, const GenerationParams& r, bool chat) {
        struct Progress {
            std::vector<size_t> sent, lp_sent, offset;
            std::vector<bool> started, finished;
        };
        auto st = std::make_shared<Progress>();
        const size_t n = choices.size();
        st->sent.assign(n, 0);
        st->lp_sent.assign(n, 0);
        st->offset.assign(n, 0);
        st->started.assign(n, false);
        st->finished.assign(n, false);
        for (size_t i = 0; i < n; i++)
            st->offset[i] = choices[i].echo.empty() ? choices[i].prompt_chars : 0;
        auto cs = std::make_shared<std::vector<Choice>>(std::move(choices));
        const bool want_lp = r.logprobs >= 0, usage = r.include_usage;
        const std::string model = opt.model_id;
        handlers++;
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [this, cs, st, id, model, t, prompt_tokens, want_lp, usage, chat](
                size_t, httplib::DataSink& sink) {
                // Wait (briefly) on the first choice still running.
                for (size_t i = 0; i < cs->size(); i++) {
                    if (st->finished[i]) continue;
                    CompletionJob& job = *(*cs)[i].job;
                    std::unique_lock<std::mutex> lock(job.mu);
                    job.cv.wait_for(lock, std::chrono::milliseconds(cs->size() > 1 ? 20 : 100),
                                    [&] { return job.done || job.text.size() > st->sent[i]; });
                    break;
                }
                std::string out;
                json last_finish;  // held back: the last one carries usage (completions)
                bool all_done = true;
                for (size_t i = 0; i < cs->size(); i++) {
                    if (st->finished[i]) continue;
                    CompletionJob& job = *(*cs)[i].job;
                    std::string delta;
                    std::vector<TokenLogprob> lps;
                    bool done = false;
                    {
                        std::lock_guard<std::mutex> lock(job.mu);
                        // An echoed prompt goes out with its logprobs, once they are there.
                        if (!st->started[i] && job.score_prompt && job.prompt_logprobs.empty() &&
                            !job.done) {
                            all_done = false;
                            continue;
                        }
                        delta = job.text.substr(st->sent[i]);
                        st->sent[i] = job.text.size();
                        done = job.done;
                        if (want_lp) {
                            if (!st->started[i] && !(*cs)[i].echo.empty())
                                lps = job.prompt_logprobs;
                            lps.insert(lps.end(), job.token_logprobs.begin() + long(st->lp_sent[i]),
                                       job.token_logprobs.end());
                            st->lp_sent[i] = job.token_logprobs.size();
                        }
                    }
                    if (done &&
                        (job.finish_reason == "cancelled" || job.finish_reason == "error")) {
                        out += sse_event(error_body(failure(job)));
                        out += "data: [DONE]\n\n";
                        if (!sink.write(out.data(), out.size())) return false;
                        sink.done();
                        return true;
                    }
                    const int idx = int(i);
                    if (!st->started[i]) {
                        st->started[i] = true;
                        if (chat)
                            out += sse_event(chat_chunk(id, t, model, idx,
                                                        {{"role", "assistant"}, {"content", ""}},
                                                        std::nullopt));
                        delta = (*cs)[i].echo + delta;
                    }
                    if (!delta.empty() || !lps.empty()) {
                        json lp = nullptr;
                        if (want_lp) {
                            lp = chat ? chat_logprobs(tok, lps)
                                      : completion_logprobs(tok, lps, st->offset[i]);
                            st->offset[i] += text_length(tok, lps);
                        }
                        out +=
                            sse_event(chat ? chat_chunk(id, t, model, idx, {{"content", delta}},
                                                        std::nullopt, lp)
                                           : completion_chunk(
                                                 id, t, model,
                                                 completion_choice(idx, delta, std::nullopt, lp)));
                    }
                    if (done) {
                        st->finished[i] = true;
                        if (!last_finish.is_null()) out += sse_event(last_finish);
                        last_finish =
                            chat ? chat_chunk(id, t, model, idx, json::object(), job.finish_reason)
                                 : completion_chunk(id, t, model,
                                                    completion_choice(idx, "", job.finish_reason));
                    } else {
                        all_done = false;
                    }
                }
                const bool finished =
                    std::all_of(st->finished.begin(), st->finished.end(), [](bool f) { return f; });
                if (!last_finish.is_null()) {
                    if (finished && !chat)
                        last_finish["usage"] = usage_of(*cs, prompt_tokens).as_json();
                    out += sse_event(last_finish);
                }
                if (!out.empty() && !sink.write(out.data(), out.size())) return false;
                if (!all_done) return sink.is_writable();
                std::string tail;
                if (usage)
                    tail +=
                        sse_event(usage_chunk(id, t, model, usage_of(*cs, prompt_tokens),
                                              chat ? "chat.completion.chunk" : "text_completion"));
                tail += "data: [DONE]\n\n";
                if (!sink.write(tail.data(), tail.size())) return false;
                sink.done();
                return true;
            },
            [this, cs](bool) {
                // Ended, or the client went away: jobs still running give up their slots.
                bool woke = false;
                for (const auto& c : *cs)
                    if (!c.job->done) {
                        c.job->cancelled = true;
                        woke = true;
                    }
                if (woke) scheduler.wake();
                handlers--;
            });
    }
};

HttpServer::HttpServer(Scheduler& scheduler, const Tokenizer& tok, Metrics& metrics,
                       ServerOptions o)
    : impl_(std::make_unique<Impl>(scheduler, tok, metrics, std::move(o))) {
    impl_->routes();
}

HttpServer::~HttpServer() {
    stop();
}

int HttpServer::bind() {
    const auto& o = impl_->opt;
    int port = o.port;
    if (port == 0)
        port = impl_->http.bind_to_any_port(o.host);
    else if (!impl_->http.bind_to_port(o.host, port))
        port = -1;
    if (port <= 0)
        fail("t6 serve: cannot listen on ", o.host, ":", o.port,
             " (address in use, or not an address of this machine)");
    impl_->http.widen_backlog();
    return port;
}

void HttpServer::run() {
    impl_->http.listen_after_bind();
}

void HttpServer::start_draining() {
    impl_->draining = true;
    impl_->http.begin_shutdown();
}

bool HttpServer::wait_handlers(int ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (impl_->handlers > 0 && std::chrono::steady_clock::now() < end)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return impl_->handlers == 0;
}

void HttpServer::stop() {
    impl_->http.begin_shutdown();  // idle keep-alive connections end now, not at their timeout
    if (impl_->http.is_running()) impl_->http.stop();
}

}  // namespace t6::serve
