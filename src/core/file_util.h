// Small file helpers with one-line errors naming the file.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace t6 {

std::vector<unsigned char> read_file_bytes(const std::string& path);
std::string read_file_text(const std::string& path);

// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
// folder. On any failure the temporary is removed and `path` is untouched.
void write_file_atomic(const std::string& path, const void* bytes, size_t n);
void write_file_atomic(const std::string& path, const std::string& text);

// Same, for content made of several pieces written one after another (e.g. a header followed by
// tensor data), without joining them in memory first.
struct ByteSpan {
    const void* data = nullptr;
    size_t size = 0;
};
void write_file_atomic_pieces(const std::string& path, const std::vector<ByteSpan>& pieces);

// True if `path` exists and is not a directory.
bool file_exists(const std::string& path);

}  // namespace t6
