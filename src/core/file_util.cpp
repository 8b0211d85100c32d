#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "core/error.h"

namespace t6 {

namespace {

std::string errno_str(int err) {
    return std::strerror(err);
}

// Closes a file descriptor on scope exit unless released.
struct FdGuard {
    int fd = -1;
    ~FdGuard() {
        if (fd >= 0) ::close(fd);
    }
};

// Reads up to n bytes into dst, retrying on EINTR and short reads; returns the count read (less
// than n only at end of file).
size_t read_fully(int fd, unsigned char* dst, size_t n, const std::string& path) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, dst + got, n - got);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail(path, ": read failed: ", errno_str(errno));
        }
        if (r == 0) break;
        got += size_t(r);
    }
    return got;
}

void write_fully(int fd, const void* src, size_t n, const std::string& tmp) {
    const unsigned char* p = static_cast<const unsigned char*>(src);
    while (n > 0) {
        // Large writes are split so a single call never exceeds what the kernel accepts at once.
        size_t chunk = n < (size_t(1) << 30) ? n : (size_t(1) << 30);
        ssize_t w = ::write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail(tmp, ": write failed: ", errno_str(errno));
        }
        p += w;
        n -= size_t(w);
    }
}

std::string parent_dir(const std::string& path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

}  // namespace

std::vector<unsigned char> read_file_bytes(const std::string& path) {
    if (path.empty()) fail("read: empty file name");
    FdGuard g;
    g.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (g.fd < 0) fail(path, ": cannot open: ", errno_str(errno));
    struct stat st {};
    if (::fstat(g.fd, &st) != 0) fail(path, ": cannot stat: ", errno_str(errno));
    if (S_ISDIR(st.st_mode)) fail(path, ": is a directory, not a file");

    std::vector<unsigned char> bytes;
    try {
        if (S_ISREG(st.st_mode)) {
            // Regular file: one allocation and one read of the known size.
            bytes.resize(size_t(st.st_size));
            bytes.resize(read_fully(g.fd, bytes.data(), bytes.size(), path));
        } else {
            // Pipe or device: read until end of file.
            unsigned char buf[1 << 16];
            for (;;) {
                size_t got = read_fully(g.fd, buf, sizeof buf, path);
                bytes.insert(bytes.end(), buf, buf + got);
                if (got < sizeof buf) break;
            }
        }
    } catch (const std::bad_alloc&) {
        fail(path, ": out of memory reading ", st.st_size, " bytes");
    } catch (const std::length_error&) {
        fail(path, ": out of memory reading ", st.st_size, " bytes");
    }
    return bytes;
}

std::string read_file_text(const std::string& path) {
    std::vector<unsigned char> b = read_file_bytes(path);
    return std::string(b.begin(), b.end());
}

void write_file_atomic_pieces(const std::string& path, const std::vector<ByteSpan>& pieces) {
    if (path.empty()) fail("write: empty file name");
    const std::string tmp = cat(path, ".tmp.", ::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) fail(path, ": cannot create temporary file ", tmp, ": ", errno_str(errno));
    try {
        for (const ByteSpan& p : pieces) {
            if (p.size == 0) continue;
            T6_CHECK(p.data != nullptr, "null data for ", p.size, " bytes");
            write_fully(fd, p.data, p.size, tmp);
        }
        if (::fsync(fd) != 0) fail(tmp, ": fsync failed: ", errno_str(errno));
        int rc = ::close(fd);
        fd = -1;
        if (rc != 0) fail(tmp, ": close failed: ", errno_str(errno));
        if (::rename(tmp.c_str(), path.c_str()) != 0)
            fail(path, ": cannot rename ", tmp, " over it: ", errno_str(errno));
    } catch (...) {
        if (fd >= 0) ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    // Make the rename itself durable. Best effort: the file is already in place, and some file
    // systems do not support fsync on a folder.
    int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
}

void write_file_atomic(const std::string& path, const void* bytes, size_t n) {
    write_file_atomic_pieces(path, {ByteSpan{bytes, n}});
}

void write_file_atomic(const std::string& path, const std::string& text) {
    write_file_atomic_pieces(path, {ByteSpan{text.data(), text.size()}});
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return !path.empty() && ::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

}  // namespace t6
