#include "train/token_data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_util.h"
#include "text/data_meta.h"

namespace fs = std::filesystem;

namespace t6 {

TokenFormat parse_token_format(const std::string& s, const std::string& where) {
    if (s == "auto") return TokenFormat::automatic;
    if (s == "nanogpt") return TokenFormat::nanogpt;
    if (s == "llmc") return TokenFormat::llmc;
    fail(where, ": data_format '", s, "' is not one of auto, nanogpt, llmc");
}

const char* token_format_name(TokenFormat f) {
    switch (f) {
        case TokenFormat::automatic:
            return "auto";
        case TokenFormat::nanogpt:
            return "nanogpt";
        case TokenFormat::llmc:
            return "llmc";
    }
    return "?";
}

TokenFile::TokenFile(const std::string& path, TokenFormat format, int vocab_size, size_t scan_limit,
                     int raw_width)
    : path_(path), vocab_(vocab_size) {
    T6_CHECK(raw_width == 2 || raw_width == 4);
    // A FIFO or device would block open() or read forever: only regular files (checked before
    // opening, and again on the open descriptor; O_NONBLOCK keeps a FIFO's open from waiting).
    struct stat pre {};
    if (::stat(path.c_str(), &pre) == 0 && !S_ISREG(pre.st_mode))
        fail(path, ": not a regular file (token data must be a file, not a pipe or device)");
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) fail(path, ": cannot open token file: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(path, ": not a regular file (token data must be a file, not a pipe or device)");
    }
    map_bytes_ = size_t(st.st_size);
    if (map_bytes_ > 0) {
        map_ = ::mmap(nullptr, map_bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map_ == MAP_FAILED) {
            map_ = nullptr;
            int err = errno;
            ::close(fd);
            fail(path, ": mmap failed: ", std::strerror(err));
        }
        ::madvise(map_, map_bytes_, MADV_RANDOM);  // windows are read at random places
    }
    ::close(fd);
    try {
        const auto* bytes = static_cast<const unsigned char*>(map_);
        int32_t head[3] = {0, 0, 0};
        if (map_bytes_ >= sizeof(head)) std::memcpy(head, bytes, sizeof(head));
        const bool magic_ok = head[0] == kLlmcMagic || head[0] == kLlmcMagicU32;
        const std::string name = fs::path(path).filename().string();
        if (format == TokenFormat::automatic)
            format = (magic_ok || (name != "train.bin" && name != "val.bin"))
                         ? TokenFormat::llmc
                         : TokenFormat::nanogpt;
        if (format == TokenFormat::llmc) {
            if (map_bytes_ < kLlmcHeaderBytes)
                fail(path, ": ", map_bytes_, " bytes is too short for an llm.c token file (",
                     kLlmcHeaderBytes,
                     "-byte header; a raw nanoGPT file is named train.bin or val.bin, ",
                     "or set data_format=nanogpt in t6 train, --format nanogpt in t6 eval ppl)");
            if (!magic_ok)
                fail(path, ": bad magic number ", head[0], " in the header (llm.c token files ",
                     "start with ", kLlmcMagic, "; a raw nanoGPT file is named train.bin or ",
                     "val.bin; for any other name set data_format=nanogpt in t6 train, --format "
                     "nanogpt in t6 eval ppl)");
            const bool u32 = head[0] == kLlmcMagicU32;
            const int32_t want_version = u32 ? kLlmcVersionU32 : kLlmcVersion;
            if (head[1] != want_version)
                fail(path, ": unsupported llm.c token file version ", head[1], " (magic ", head[0],
                     " goes with version ", want_version, ")");
            if (head[2] < 0) fail(path, ": negative token count ", head[2], " in the header");
            width_ = u32 ? 4 : 2;
            const size_t want = kLlmcHeaderBytes + size_t(width_) * size_t(head[2]);
            if (map_bytes_ != want)
                fail(path, ": file size ", map_bytes_, " bytes disagrees with the header's ",
                     "token count ", head[2], " (expected ", want, " bytes)");
            header_ = true;
            count_ = size_t(head[2]);
            data_ = bytes + kLlmcHeaderBytes;
        } else {
            width_ = raw_width;
            if (map_bytes_ % size_t(width_) != 0)
                fail(path, ": size ", map_bytes_, " bytes is not a whole number of ",
                     width_ == 2 ? "uint16" : "uint32", " tokens");
            count_ = map_bytes_ / size_t(width_);
            data_ = bytes;
        }
        if (count_ <= scan_limit) {
            check_range(0, count_);
            scanned_ = true;
        }
    } catch (...) {
        if (map_) ::munmap(map_, map_bytes_);
        throw;
    }
}

TokenFile::TokenFile(TokenFile&& o) noexcept
    : path_(std::move(o.path_)),
      map_(o.map_),
      map_bytes_(o.map_bytes_),
      data_(o.data_),
      width_(o.width_),
      count_(o.count_),
      header_(o.header_),
      scanned_(o.scanned_),
      vocab_(o.vocab_) {
    o.map_ = nullptr;
    o.map_bytes_ = 0;
}

TokenFile::~TokenFile() {
    if (map_) ::munmap(map_, map_bytes_);
}

namespace {

// The largest id in t[0..n), a branch-free vectorised pass (parallel for large ranges).
template <typename U>
U max_id(const U* t, size_t n) {
    U mx = 0;
#pragma omp parallel for simd reduction(max : mx) schedule(static) if (n > (1u << 20))
    for (size_t i = 0; i < n; i++) mx = std::max(mx, t[i]);
    return mx;
}

}  // namespace

void TokenFile::check_range(size_t begin, size_t n) const {
    const uint32_t mx = width_ == 2 ? max_id(reinterpret_cast<const uint16_t*>(data_) + begin, n)
                                    : max_id(reinterpret_cast<const uint32_t*>(data_) + begin, n);
    if (mx < uint32_t(vocab_)) return;
    for (size_t i = begin; i < begin + n; i++)  // only on failure: find the first bad position
        if (token(i) >= uint32_t(vocab_))
            fail(path_, ": token id ", token(i), " at token position ", i,
                 " is >= the model's vocab_size ", vocab_);
}

void TokenFile::copy_window(size_t i, int T, int32_t* x, int32_t* y) const {
    if (width_ == 2) {
        const uint16_t* w = reinterpret_cast<const uint16_t*>(data_) + i;
        for (int t = 0; t < T; t++) x[t] = w[t], y[t] = w[t + 1];
    } else {
        const uint32_t* w = reinterpret_cast<const uint32_t*>(data_) + i;
        for (int t = 0; t < T; t++) x[t] = int32_t(w[t]), y[t] = int32_t(w[t + 1]);
    }
}

DataFiles find_data_files(const std::string& dir) {
    if (dir.empty()) fail("no training data given (set data=FOLDER)");
    if (!fs::is_directory(dir)) fail(dir, ": data folder not found");
    DataFiles d;
    // `t6 prepare` records the token width of headerless files in meta.json.
    const nlohmann::json meta = read_data_meta(dir);
    if (meta.is_object() && meta.contains("dtype")) {
        if (meta["dtype"] == "uint32")
            d.raw_width = 4;
        else if (meta["dtype"] != "uint16")
            fail((fs::path(dir) / "meta.json").string(), ": dtype ", meta["dtype"].dump(),
                 " is not \"uint16\" or \"uint32\"");
    }
    if (fs::exists(fs::path(dir) / "train.bin") || fs::exists(fs::path(dir) / "val.bin")) {
        for (const char* n : {"train.bin", "val.bin"})
            if (!fs::exists(fs::path(dir) / n)) fail(dir, ": has no ", n, " (nanoGPT layout)");
        d.train = {(fs::path(dir) / "train.bin").string()};
        d.val = {(fs::path(dir) / "val.bin").string()};
        return d;
    }
    for (const auto& e : fs::directory_iterator(dir)) {
        if (!e.is_regular_file() || e.path().extension() != ".bin") continue;
        const std::string name = e.path().filename().string();
        if (name.find("train") != std::string::npos)
            d.train.push_back(e.path().string());
        else if (name.find("val") != std::string::npos)
            d.val.push_back(e.path().string());
    }
    std::sort(d.train.begin(), d.train.end());
    std::sort(d.val.begin(), d.val.end());
    if (d.train.empty())
        fail(dir, ": no train.bin and no *train*.bin shards (see t6 train --help, data)");
    if (d.val.empty()) fail(dir, ": no val.bin and no *val*.bin shards");
    return d;
}

nlohmann::json SamplerState::to_json() const {
    nlohmann::json r = nlohmann::json::array();
    for (uint64_t w : rng) r.push_back(std::to_string(w));  // strings: JSON numbers are doubles
    return {{"rng", r}, {"file", file}, {"batches_in_file", batches_in_file}};
}

SamplerState SamplerState::from_json(const nlohmann::json& j, const std::string& where) {
    SamplerState s;
    try {
        const auto& r = j.at("rng");
        if (!r.is_array() || r.size() != 4) fail(where, ": sampler rng must hold 4 words");
        for (size_t i = 0; i < 4; i++) s.rng[i] = std::stoull(r[i].get<std::string>());
        s.file = j.at("file").get<size_t>();
        s.batches_in_file = j.at("batches_in_file").get<long long>();
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        fail(where, ": bad sampler state (", e.what(), ")");
    }
    return s;
}

std::shared_ptr<const TokenSplit> open_token_split(const std::vector<std::string>& paths,
                                                   TokenFormat format, int vocab_size,
                                                   size_t min_tokens, int raw_width) {
    auto split = std::make_shared<TokenSplit>();
    for (const auto& p : paths) {
        split->emplace_back(p, format, vocab_size, TokenFile::kScanLimit, raw_width);
        if (split->back().size() < min_tokens)
            fail(p, ": has ", split->back().size(),
                 " tokens, fewer than seq_len + 1 = ", min_tokens);
    }
    if (split->empty()) fail("no token files given");
    return split;
}

BatchSampler::BatchSampler(std::shared_ptr<const TokenSplit> split, int B, int T, uint64_t seed)
    : files_(std::move(split)), B_(B), T_(T), rng_(seed) {
    T6_CHECK(B > 0 && T > 0 && files_ && !files_->empty());
    for (const auto& f : *files_)
        if (f.size() < size_t(T) + 1)
            fail(f.path(), ": has ", f.size(), " tokens, fewer than seq_len + 1 = ", T + 1);
}

long long BatchSampler::batches_per_visit(size_t file) const {
    return std::max<long long>(1, (long long)((*files_)[file].size() / (size_t(B_) * T_)));
}

void BatchSampler::next(int32_t* x, int32_t* y) {
    if (batches_in_file_ >= batches_per_visit(file_)) {
        file_ = (file_ + 1) % files_->size();
        batches_in_file_ = 0;
    }
    const TokenFile& f = (*files_)[file_];
    const size_t span = f.size() - size_t(T_);  // starts in [0, len - T - 1]
    for (int b = 0; b < B_; b++) {
        const size_t i = size_t(rng_.below(span));
        if (!f.scanned()) f.check_range(i, size_t(T_) + 1);
        f.copy_window(i, T_, x + size_t(b) * T_, y + size_t(b) * T_);
    }
    batches_in_file_++;
}

SamplerState BatchSampler::state() const {
    SamplerState s;
    s.rng = rng_.state();
    s.file = file_;
    s.batches_in_file = batches_in_file_;
    return s;
}

void BatchSampler::set_state(const SamplerState& s, const std::string& where) {
    if (s.file >= files_->size())
        fail(where, ": sampler file index ", s.file, " but the split has ", files_->size(),
             " files (was the data folder changed?)");
    rng_.set_state(s.rng);
    file_ = s.file;
    batches_in_file_ = s.batches_in_file;
}

size_t BatchSampler::total_tokens() const {
    size_t n = 0;
    for (const auto& f : *files_) n += f.size();
    return n;
}

}  // namespace t6
