// The connection layer of `t6 serve`: an httplib::Server whose connections are read through a
// stream that enforces what cpp-httplib 0.11 does not (its only guard is a 5 s timeout per
// read, so a client sending a header line every 3 s held a worker forever, and chunked bodies
// had no size limit). Modelled on nginx:
//   - a connection budget (nginx worker_connections): one thread per open connection, up to
//     max_connections; beyond it a connection gets 503 and is closed at once;
//   - client_header_timeout: the request line and headers must arrive within header_timeout_s
//     of their first byte, and be at most max_header_bytes;
//   - client_body_timeout: the body must arrive within body_timeout_s, and no read may wait
//     more than io_timeout_s; its bytes on the wire (chunk framing included) are capped, so no
//     encoding can make the server buffer more than a bounded multiple of max_body_bytes;
//   - keepalive_timeout / keepalive_requests: idle keep-alive connections close after
//     idle_timeout_s, and after max_requests requests;
//   - lingering close: a connection closing with unread input first shuts down its sending
//     side and drains what the client still sends (briefly), so the client reads the response
//     (e.g. a 413) instead of a "connection reset by peer".
// Handlers can ask, on their own thread, whether their client hung up (client_gone) and have
// the connection closed after the response (close_after_response).
#pragma once
#include <httplib.h>

#include <atomic>
#include <cstddef>

namespace t6::serve {

struct ConnectionLimits {
    int max_connections = 512;
    double header_timeout_s = 10;
    double body_timeout_s = 30;
    double idle_timeout_s = 30;
    double io_timeout_s = 5;
    size_t max_header_bytes = 64 << 10;
    size_t max_body_bytes = 1 << 20;
    int max_requests = 1000;
};

class GuardedServer : public httplib::Server {
  public:
    explicit GuardedServer(const ConnectionLimits& limits);
    // Idle keep-alive connections close; responses in progress say "Connection: close".
    void begin_shutdown() { stopping_ = true; }
    int open_connections() const { return open_; }
    // After binding: a listen backlog of 511 (nginx's), not httplib's 5, so a burst of
    // connections is not answered with dropped SYNs (a 1 s retransmit for the client).
    void widen_backlog();

    // On a handler's thread: whether the client of this request has closed its connection.
    static bool client_gone();
    // On a handler's thread: close the connection after this response (input left unread).
    static void close_after_response();

  private:
    bool process_and_close_socket(socket_t sock) override;

    ConnectionLimits lim_;
    std::atomic<bool> stopping_{false};
    std::atomic<int> open_{0};
};

}  // namespace t6::serve
