// The HTTP side of `t6 serve` (cpp-httplib, through serve/connection.h for connection limits and
// timeouts): routes, API-key check, body limits, OpenAI-shaped error bodies, and streaming. Handler
// threads never touch the model: they validate and tokenize, hand a CompletionJob to the Scheduler,
// and wait on (or stream from) its channel.
//   POST /v1/completions   POST /v1/chat/completions   POST /tokenize   POST /detokenize
//   GET /v1/models   GET /tokenizer_info   GET /health   GET /metrics (Prometheus text)
// Every response carries X-Request-Id: the client's, or a new one.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "serve/chat_template.h"
#include "serve/metrics.h"
#include "serve/scheduler.h"
#include "text/tokenizer.h"

namespace t6::serve {

struct ServerOptions {
    std::string host = "127.0.0.1";
    int port = 8080;       // 0: any free port (bind() returns it)
    std::string api_key;   // empty: no authentication
    std::string model_id;  // the name clients pass as "model"
    size_t max_body_bytes = 1 << 20;
    int max_connections = 512;     // open connections (one thread each); beyond: 503 and close
    double header_timeout_s = 10;  // request line + headers, from their first byte
    double body_timeout_s = 30;    // the whole request body
    double idle_timeout_s = 30;    // keep-alive connections idle longer are closed
    int retry_after_s = 1;         // Retry-After of 503 responses
    ChatTemplate chat_template;    // messages -> prompt for /v1/chat/completions
};

class HttpServer {
  public:
    HttpServer(Scheduler& scheduler, const Tokenizer& tok, Metrics& metrics, ServerOptions o);
    ~HttpServer();
    // Binds the listening socket; returns the port. Fails (t6::Error) when it cannot.
    int bind();
    // Serves until stop(). Call after bind().
    void run();
    // New completions get 503 and /health reports it; requests in flight carry on.
    void start_draining();
    // Waits up to `ms` for handlers still writing responses; returns whether all finished.
    bool wait_handlers(int ms);
    // Closes the listening socket and ends run() once the handlers in flight have returned.
    void stop();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace t6::serve
