#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"

namespace fs = std::filesystem;

namespace t6 {

namespace {

std::string holder_text(int fd) {
    char buf[256] = {};
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string s(buf, n > 0 ? size_t(n) : 0);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s.empty() ? "another process" : s;
}

}  // namespace

RunLock::RunLock(const std::string& out_dir) {
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec) fail(out_dir, ": cannot create out_dir: ", ec.message());
    const std::string path = (fs::path(out_dir) / "train.lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(path, ": cannot open the out_dir lock: ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        const std::string holder = holder_text(fd_);
        ::close(fd_);
        fd_ = -1;
        if (err == EWOULDBLOCK)
            fail(out_dir, ": in use by another training (", holder, "; lock ", path,
                 "): wait for it to end or choose another out_dir");
        fail(path, ": cannot lock: ", std::strerror(err));
    }
    char host[128] = "?";
    ::gethostname(host, sizeof host - 1);
    char when[32] = "";
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&now, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const std::string text = cat("t6 train pid ", ::getpid(), " on ", host, " since ", when, "\n");
    // Best effort: the lock itself is the flock; the text only names the holder.
    if (::ftruncate(fd_, 0) == 0) {
        [[maybe_unused]] const ssize_t w = ::pwrite(fd_, text.data(), text.size(), 0);
    }
}

RunLock::~RunLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace t6
