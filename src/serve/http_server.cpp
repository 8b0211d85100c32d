#include "serve/http_server.h"

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "serve/auth.h"
#include "serve/connection.h"
#include "serve/openai.h"

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
        if (req.method == "POST" && req.path == "/v1/completions") return false;
        GuardedServer::close_after_response();
        const bool known = req.path == "/health" || req.path == "/metrics" ||
                           req.path == "/v1/models" || req.path == "/v1/completions";
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
        http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res,
                                            const httplib::ContentReader& reader) {
            try {
                completions(req, res, read_body(reader));
            } catch (const ApiError& e) {
                send_error(res, e, opt.retry_after_s);
            } catch (const std::exception& e) {
                send_error(res, ApiError(500, e.what(), "", "", "server_error"), opt.retry_after_s);
            }
        });
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

    std::shared_ptr<CompletionJob> make_job(const CompletionRequest& r) {
        auto job = std::make_shared<CompletionJob>();
        job->prompt = tok.encode_with_special(r.prompt);
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
        job->stop = r.stop;
        job->ignore_eos = r.ignore_eos;
        return job;
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

    void completions(const httplib::Request&, httplib::Response& res, const std::string& body) {
        const CompletionRequest r =
            parse_completion_request(body, opt.model_id, scheduler.max_context());
        auto job = make_job(r);
        submit(job);
        const std::string id = completion_id(), model = opt.model_id;
        const int64_t t = unix_time();
        const int prompt_tokens = int(job->prompt.size());
        const std::string prefix = r.echo ? r.prompt : "";
        if (!r.stream) {
            handlers++;
            std::unique_lock<std::mutex> lock(job->mu);
            // Checks every 100 ms whether the client is still there: one that hung up (timed
            // out, was killed) gives up its slot rather than holding it to the end.
            while (!job->cv.wait_for(lock, std::chrono::milliseconds(100),
                                     [&] { return job->done; })) {
                if (!GuardedServer::client_gone()) continue;
                lock.unlock();
                job->cancelled = true;
                scheduler.wake();
                handlers--;
                GuardedServer::close_after_response();
                res.status = 499;  // nginx's "client closed request"; nobody reads it
                return;
            }
            handlers--;
            if (job->finish_reason == "cancelled" || job->finish_reason == "error")
                throw failure(*job);
            res.set_content(
                dump(completion_response(id, t, model, prefix + job->text, job->finish_reason,
                                         {prompt_tokens, job->completion_tokens})),
                kJson);
            return;
        }
        struct Progress {
            size_t sent = 0;
            bool started = false;
        };
        auto st = std::make_shared<Progress>();
        handlers++;
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [this, job, st, id, model, t, prompt_tokens, prefix, r](size_t,
                                                                    httplib::DataSink& sink) {
                std::string delta;
                bool done = false;
                {
                    std::unique_lock<std::mutex> lock(job->mu);
                    job->cv.wait_for(lock, std::chrono::milliseconds(100),
                                     [&] { return job->done || job->text.size() > st->sent; });
                    delta = job->text.substr(st->sent);
                    st->sent = job->text.size();
                    done = job->done;
                }
                if (!st->started) {
                    delta = prefix + delta;
                    st->started = true;
                }
                if (!delta.empty()) {
                    const std::string e = sse_event(completion_chunk(id, t, model, delta, {}));
                    if (!sink.write(e.data(), e.size())) return false;
                }
                if (!done) return sink.is_writable();
                std::string tail;
                const Usage usage{prompt_tokens, job->completion_tokens};
                if (job->finish_reason == "cancelled" || job->finish_reason == "error") {
                    tail = sse_event(error_body(failure(*job)));
                } else {
                    tail = sse_event(completion_chunk(id, t, model, "", job->finish_reason, usage));
                    if (r.include_usage) tail += sse_event(usage_chunk(id, t, model, usage));
                }
                tail += "data: [DONE]\n\n";
                if (!sink.write(tail.data(), tail.size())) return false;
                sink.done();
                return true;
            },
            [this, job](bool) {
                // Ended, or the client went away: a job still running gives up its slot.
                if (!job->done) {
                    job->cancelled = true;
                    scheduler.wake();
                }
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
