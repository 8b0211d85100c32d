// A `t6 serve` child process for the end-to-end server tests: started on a free loopback port
// (read from its stdout), with an HTTP client to it, killed at the end of the test.
#pragma once
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.h"

namespace t6::test {

using Clock = std::chrono::steady_clock;

inline std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// `t6 serve --port 0 ...` as a child process; the port is read from its first stdout line.
class Server {
  public:
    Server(const TempDir& dir, const std::string& ckpt, std::vector<std::string> args,
           std::vector<std::pair<std::string, std::string>> env = {})
        : env_(std::move(env)),
          out_(dir.file("serve" + std::to_string(counter_) + ".out")),
          err_(dir.file("serve" + std::to_string(counter_++) + ".err")) {
        std::vector<std::string> argv = {T6_BINARY, "serve", "--model",   ckpt,
                                         "--port",  "0",     "--threads", "1"};
        argv.insert(argv.end(), args.begin(), args.end());
        pid_ = fork();
        if (pid_ == 0) {
            if (!freopen(out_.c_str(), "w", stdout) || !freopen(err_.c_str(), "w", stderr))
                _exit(127);
            // The default OpenMP wait policy is part of what is tested.
            unsetenv("OMP_WAIT_POLICY");
            unsetenv("GOMP_SPINCOUNT");
            unsetenv("T6_OMP_ACTIVE");
            for (const auto& [k, v] : env_) setenv(k.c_str(), v.c_str(), 1);
            std::vector<char*> cargv;
            for (auto& a : argv) cargv.push_back(a.data());
            cargv.push_back(nullptr);
            execv(cargv[0], cargv.data());
            _exit(127);
        }
        // Start-up takes well under a second on a quiet machine; the limit only bounds a hang
        // (a loaded machine, e.g. a niced CI run beside other work, once took over 20 s).
        const auto end = Clock::now() + std::chrono::seconds(60);
        while (Clock::now() < end && port_ == 0 && alive()) {
            const std::string s = slurp(out_);
            const auto at = s.find("listening on http://");
            const auto colon = at == std::string::npos ? at : s.find(':', at + 20);
            if (colon != std::string::npos && s.find('\n', colon) != std::string::npos)
                port_ = std::stoi(s.substr(colon + 1));
            else
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    ~Server() {
        if (pid_ > 0 && alive()) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    int port() const { return port_; }
    std::string err() const { return slurp(err_); }
    bool alive() {
        if (exited_) return false;
        int st = 0;
        if (waitpid(pid_, &st, WNOHANG) == pid_) {
            exited_ = true;
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            return false;
        }
        return true;
    }
    // SIGTERM, then the exit status (-1: killed by a signal, -2: still running after `limit`).
    int terminate(std::chrono::seconds limit) {
        kill(pid_, SIGTERM);
        const auto end = Clock::now() + limit;
        while (alive() && Clock::now() < end)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return exited_ ? status_ : -2;
    }
    httplib::Client client(const std::string& key = "") const {
        httplib::Client c("127.0.0.1", port_);
        c.set_connection_timeout(5);
        c.set_read_timeout(20);
        c.set_write_timeout(5);
        if (!key.empty()) c.set_bearer_token_auth(key);
        return c;
    }

    // POSTs a JSON body; the parsed answer (status in *status).
    nlohmann::json post(const std::string& path, const nlohmann::json& body,
                        int* status = nullptr) const {
        auto c = client();
        c.set_read_timeout(30);
        auto r = c.Post(path, body.dump(), "application/json");
        if (!r) {
            ADD_FAILURE() << path << ": no response";
            return {};
        }
        if (status) *status = r->status;
        return nlohmann::json::parse(r->body);
    }

  private:
    static inline int counter_ = 0;
    std::vector<std::pair<std::string, std::string>> env_;
    std::string out_, err_;
    pid_t pid_ = -1;
    int port_ = 0;
    bool exited_ = false;
    int status_ = -1;
};

// The data: payloads of a server-sent-event body.
inline std::vector<std::string> sse_data(const std::string& body) {
    std::vector<std::string> out;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("data: ", 0) == 0) out.push_back(line.substr(6));
    return out;
}

}  // namespace t6::test
