#include "serve/connection.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace t6::serve {

namespace {

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

int ms_until(Clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now());
    return int(std::clamp<long long>(ms.count(), 0, 1 << 30));
}

// One connection's socket as an httplib::Stream: buffered reads under the limits of the request
// being read, writes that give up after io_timeout without progress.
class ConnStream final : public httplib::Stream {
  public:
    ConnStream(socket_t fd, const ConnectionLimits& lim) : fd_(fd), lim_(lim) {}

    // Waits up to `timeout` for the first byte of a request (or EOF); false: none came, or
    // `stopping` was raised meanwhile.
    bool wait_request(Clock::duration timeout, const std::atomic<bool>& stopping) {
        if (pos_ < in_.size()) return true;
        const auto end = Clock::now() + timeout;
        while (!stopping) {
            const int left = ms_until(end);
            if (left <= 0) return false;
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, std::min(left, 100));  // 100 ms: notice `stopping`
            if (r > 0) return true;
            if (r < 0 && errno != EINTR) return false;
        }
        return false;
    }

    // Arms the limits of a new request: the header block first.
    void begin_request() {
        header_ = true;
        newlines_ = 0;
        reading_ = true;
        deadline_ = Clock::now() + seconds(lim_.header_timeout_s);
        budget_ = lim_.max_header_bytes;
    }

    bool failed() const { return failed_; }
    bool must_close() const { return must_close_; }
    void set_must_close() { must_close_ = true; }
    bool has_unread_input() const { return pos_ < in_.size(); }

    // Whether the peer has closed (or reset) the connection; never blocks, never consumes.
    bool peer_closed() const {
        pollfd p{fd_, POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) <= 0) return false;
        if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return true;
        if (!(p.revents & POLLIN)) return false;
        char c;
        const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
    }

    bool is_readable() const override {
        if (pos_ < in_.size()) return true;
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, 0) > 0;
    }

    bool is_writable() const override {
        if (peer_closed()) return false;
        pollfd p{fd_, POLLOUT, 0};
        return ::poll(&p, 1, int(lim_.io_timeout_s * 1000)) > 0 && (p.revents & POLLOUT);
    }

    ssize_t read(char* ptr, size_t size) override {
        if (size == 0) return 0;
        if (pos_ == in_.size() && !fill()) return -1;
        size_t k = std::min(size, in_.size() - pos_);
        if (reading_) {
            if (header_) {
                // The header block ends at an empty line; the body's limits start there.
                // (httplib reads the header a byte at a time, so this stops at the boundary.)
                for (size_t i = 0; i < k; i++) {
                    const char c = in_[pos_ + i];
                    if (c == '\n') {
                        if (++newlines_ == 2) {
                            k = i + 1;
                            break;
                        }
                    } else if (c != '\r') {
                        newlines_ = 0;
                    }
                }
            }
            if (k > budget_) return over_limit();
            budget_ -= k;
            if (header_ && newlines_ == 2) {
                header_ = false;
                deadline_ = Clock::now() + seconds(lim_.body_timeout_s);
                // Chunk framing costs at most a few bytes per chunk: 8x the payload is a
                // generous bound that still keeps any body's buffering bounded.
                budget_ = 8 * lim_.max_body_bytes + 4096;
            }
        }
        std::memcpy(ptr, in_.data() + pos_, k);
        pos_ += k;
        if (pos_ == in_.size()) {
            in_.clear();
            pos_ = 0;
        }
        return ssize_t(k);
    }

    ssize_t write(const char* ptr, size_t size) override {
        reading_ = false;  // the request has been read: its limits are done with
        size_t off = 0;
        while (off < size) {
            pollfd p{fd_, POLLOUT, 0};
            const int r = ::poll(&p, 1, int(lim_.io_timeout_s * 1000));
            if (r < 0 && errno == EINTR) continue;
            // -1, never 0: httplib retries a write that returns 0, forever.
            if (r <= 0 || !(p.revents & POLLOUT)) return write_failed();
            const ssize_t n = ::send(fd_, ptr + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
            if (n <= 0) return write_failed();
            off += size_t(n);
        }
        return ssize_t(size);
    }

    void get_remote_ip_and_port(std::string& ip, int& port) const override {
        address(::getpeername, ip, port);
    }
    void get_local_ip_and_port(std::string& ip, int& port) const override {
        address(::getsockname, ip, port);
    }
    socket_t socket() const override { return fd_; }

  private:
    // Reads what the socket has into the buffer. Fails at EOF, on a reset, after io_timeout
    // without a byte, and (while a request is read) at its deadline.
    bool fill() {
        char buf[16384];
        for (;;) {
            int wait = int(lim_.io_timeout_s * 1000);
            if (reading_) {
                const int left = ms_until(deadline_);
                if (left <= 0) return fail_io();
                wait = std::min(wait, left);
            }
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, wait);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) return fail_io();
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (n <= 0) return fail_io();  // EOF or reset
            in_.assign(buf, size_t(n));
            pos_ = 0;
            return true;
        }
    }
    ssize_t write_failed() {
        fail_io();
        return -1;
    }
    ssize_t over_limit() {
        failed_ = must_close_ = true;
        return -1;
    }
    bool fail_io() {
        failed_ = must_close_ = true;
        return false;
    }
    template <typename F>
    void address(F f, std::string& ip, int& port) const {
        sockaddr_storage a{};
        socklen_t len = sizeof a;
        ip.clear();
        port = 0;
        if (f(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) return;
        char s[INET6_ADDRSTRLEN] = {};
        if (a.ss_family == AF_INET) {
            auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
            ::inet_ntop(AF_INET, &v4->sin_addr, s, sizeof s);
            port = ntohs(v4->sin_port);
        } else if (a.ss_family == AF_INET6) {
            auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
            ::inet_ntop(AF_INET6, &v6->sin6_addr, s, sizeof s);
            port = ntohs(v6->sin6_port);
        }
        ip = s;
    }

    socket_t fd_;
    const ConnectionLimits& lim_;
    std::string in_;
    size_t pos_ = 0;
    bool reading_ = false, header_ = false;
    int newlines_ = 0;
    Clock::time_point deadline_{};
    size_t budget_ = 0;
    bool failed_ = false, must_close_ = false;
};

thread_local ConnStream* tl_stream = nullptr;
thread_local int tl_rank = 0;  // the open connections, this one included, when it was accepted

// Closes a connection without a reset: stop sending, read (and drop) what the client still
// sends until it closes its side, for at most 2 s and 1 MiB, then close.
void lingering_close(socket_t fd) {
    {
        ::shutdown(fd, SHUT_WR);
        const auto end = Clock::now() + std::chrono::seconds(2);
        char buf[16384];
        size_t drained = 0;
        while (drained < (1u << 20)) {
            const int left = ms_until(end);
            if (left <= 0) break;
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, left) <= 0) break;
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            drained += size_t(n);
        }
    }
    ::close(fd);
}

// One thread per connection, created on demand up to `max_threads` and kept for reuse; a
// connection beyond that waits for a thread (the budget check turns those away quickly).
class ConnectionThreads final : public httplib::TaskQueue {
  public:
    ConnectionThreads(size_t max_threads, std::atomic<int>& open)
        : max_(max_threads), open_(open) {}
    // Runs on the accepting thread, so connections are counted in the order they came.
    void enqueue(std::function<void()> fn) override {
        const int rank = ++open_;
        std::lock_guard<std::mutex> lock(mu_);
        jobs_.push_back([fn = std::move(fn), rank] {
            tl_rank = rank;
            fn();
        });
        if (jobs_.size() > idle_ && threads_.size() < max_)
            threads_.emplace_back([this] { work(); });
        cv_.notify_one();
    }
    void shutdown() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            done_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
        threads_.clear();
    }

  private:
    void work() {
        for (;;) {
            std::function<void()> fn;
            {
                std::unique_lock<std::mutex> lock(mu_);
                idle_++;
                cv_.wait(lock, [&] { return done_ || !jobs_.empty(); });
                idle_--;
                if (jobs_.empty()) return;  // done
                fn = std::move(jobs_.front());
                jobs_.pop_front();
            }
            fn();
        }
    }
    size_t max_;
    std::atomic<int>& open_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    size_t idle_ = 0;
    bool done_ = false;
};

// The answer to a connection beyond the budget.
std::string busy_response() {
    const std::string body =
        R"({"error":{"message":"Too many open connections. Retry later.","type":"server_error",)"
        R"("param":null,"code":"server_busy"}})";
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: "
           "1\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

GuardedServer::GuardedServer(const ConnectionLimits& limits) : lim_(limits) {
    new_task_queue = [this] {
        return new ConnectionThreads(size_t(lim_.max_connections) + 16, open_);
    };
    set_payload_max_length(lim_.max_body_bytes);
    // What the Keep-Alive response header advertises.
    set_keep_alive_timeout(time_t(lim_.idle_timeout_s));
    set_keep_alive_max_count(size_t(lim_.max_requests));
}

void GuardedServer::widen_backlog() {
    ::listen(svr_sock_, 511);  // on a listening socket, listen() only changes the backlog
}

bool GuardedServer::client_gone() {
    return tl_stream && tl_stream->peer_closed();
}

void GuardedServer::close_after_response() {
    if (tl_stream) tl_stream->set_must_close();
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
    // Counted when accepted (ConnectionThreads::enqueue); uncounted when closed.
    struct Uncount {
        std::atomic<int>& n;
        ~Uncount() { n--; }
    } uncount{open_};
    if (tl_rank > lim_.max_connections) {
        static const std::string busy = busy_response();
        ::send(sock, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        lingering_close(sock);
        return true;
    }
    ConnStream strm(sock, lim_);
    tl_stream = &strm;
    for (int served = 0; served < lim_.max_requests; served++) {
        const double wait = served == 0 ? lim_.header_timeout_s : lim_.idle_timeout_s;
        if (!strm.wait_request(seconds(wait), stopping_)) break;
        strm.begin_request();
        bool closed = false;
        const bool last = served + 1 >= lim_.max_requests || stopping_;
        const bool ok = process_request(strm, last, closed, [](httplib::Request&) {});
        if (!ok || closed || last || strm.must_close() || strm.failed()) break;
    }
    tl_stream = nullptr;
    lingering_close(sock);
    return true;
}

}  // namespace t6::serve
