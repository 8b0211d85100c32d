#include "text/token_files.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace t6::text {

TokenFileWriter::TokenFileWriter(std::string dir, std::string split, bool shards, bool u32,
                                 int64_t shard_tokens)
    : dir_(std::move(dir)),
      split_(std::move(split)),
      shards_(shards),
      u32_(u32),
      shard_tokens_(shard_tokens) {
    if (shards_ && (shard_tokens_ <= 0 || shard_tokens_ > INT32_MAX))
        fail("--shard-tokens must be in 1..", INT32_MAX);
}

TokenFileWriter::~TokenFileWriter() {
    if (committed_) return;
    if (f_) std::fclose(f_);
    for (const auto& p : temp_paths_) std::remove(p.c_str());
}

void TokenFileWriter::open_file() {
    char index[16];
    std::snprintf(index, sizeof index, "%06zu", final_names_.size());
    std::string name = shards_ ? split_ + "_" + index + ".bin" : split_ + ".bin";
    std::string tmp = cat(dir_, "/.", name, ".tmp-", ::getpid());
    f_ = std::fopen(tmp.c_str(), "wb");
    if (!f_) fail(tmp, ": cannot create (", std::strerror(errno), ")");
    temp_paths_.push_back(tmp);
    final_names_.push_back(name);
    in_file_ = 0;
    if (shards_) {
        int32_t header[kShardHeaderInts] = {};
        if (std::fwrite(header, sizeof header, 1, f_) != 1) fail(tmp, ": write failed");
    }
}

void TokenFileWriter::close_file() {
    if (!f_) return;
    const std::string& tmp = temp_paths_.back();
    if (shards_) {
        int32_t header[3] = {u32_ ? kShardMagicU32 : kShardMagicU16,
                             u32_ ? kShardVersionU32 : kShardVersionU16, int32_t(in_file_)};
        if (std::fseek(f_, 0, SEEK_SET) != 0 || std::fwrite(header, sizeof header, 1, f_) != 1)
            fail(tmp, ": cannot write the shard header");
    }
    bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
    ok = (std::fclose(f_) == 0) && ok;
    f_ = nullptr;
    if (!ok) fail(tmp, ": write failed (", std::strerror(errno), ")");
}

void TokenFileWriter::write(const int32_t* ids, size_t n) {
    const size_t width = u32_ ? 4 : 2;
    while (n > 0) {
        if (!f_ || (shards_ && in_file_ == shard_tokens_)) {
            close_file();
            open_file();
        }
        size_t take = shards_ ? std::min<size_t>(n, size_t(shard_tokens_ - in_file_)) : n;
        buf_.resize(take * width);
        for (size_t i = 0; i < take; ++i) {
            uint32_t v = uint32_t(ids[i]);
            if (u32_) {
                std::memcpy(&buf_[4 * i], &v, 4);  // little-endian hosts (x86-64, aarch64)
            } else {
                uint16_t h = uint16_t(v);
                std::memcpy(&buf_[2 * i], &h, 2);
            }
        }
        if (std::fwrite(buf_.data(), 1, buf_.size(), f_) != buf_.size())
            fail(temp_paths_.back(), ": write failed (", std::strerror(errno), ")");
        in_file_ += int64_t(take);
        total_ += int64_t(take);
        ids += take;
        n -= take;
    }
}

void TokenFileWriter::commit() {
    if (!f_ && final_names_.empty()) open_file();  // an empty split still gets its file
    close_file();
    for (size_t i = 0; i < temp_paths_.size(); ++i) {
        std::string dst = dir_ + "/" + final_names_[i];
        if (std::rename(temp_paths_[i].c_str(), dst.c_str()) != 0)
            fail(dst, ": cannot rename into place (", std::strerror(errno), ")");
    }
    committed_ = true;
}

}  // namespace t6::text
