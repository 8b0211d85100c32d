// Training data: token files memory-mapped read-only, and the seeded sampler that draws batches
// of windows from them as nanoGPT's get_batch does:
//   ix = torch.randint(len(data) - block_size, (batch_size,))
//   x = data[i : i+T],  y = data[i+1 : i+1+T]
// Two file formats:
//  * nanoGPT: train.bin / val.bin, raw little-endian uint16 tokens, no header;
//  * llm.c shards: a header of 256 int32 ([0] magic 20240520, [1] version 1, [2] token count)
//    followed by the uint16 tokens; the file is exactly 1024 + 2 * count bytes. llm.c's uint32
//    variant (magic 20240801, version 7; LLaMA-3 vocabularies) is read too.
// Raw files are uint16 unless the folder's meta.json (written by `t6 prepare`) says
// "dtype": "uint32".
// A data folder holds either train.bin and val.bin, or shards whose names contain "train" /
// "val" (e.g. fineweb_train_000001.bin, tiny_shakespeare_val.bin), read in name order.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/rng.h"

namespace t6 {

inline constexpr int32_t kLlmcMagic = 20240520;
inline constexpr int32_t kLlmcVersion = 1;
inline constexpr int32_t kLlmcMagicU32 = 20240801;
inline constexpr int32_t kLlmcVersionU32 = 7;
inline constexpr size_t kLlmcHeaderBytes = 256 * sizeof(int32_t);

// auto: an llm.c header when the file starts with the magic number or its name is not
// train.bin / val.bin, else raw nanoGPT tokens.
enum class TokenFormat { automatic, nanogpt, llmc };
TokenFormat parse_token_format(const std::string& s, const std::string& where);
const char* token_format_name(TokenFormat f);

// One memory-mapped token file (read-only). Construction validates the format; a file of at most
// scan_limit tokens is also scanned once for ids >= vocab_size (a fast vectorised pass); larger
// files are checked window by window as batches are drawn (see check_range).
class TokenFile {
  public:
    static constexpr size_t kScanLimit = size_t(1) << 28;

    // raw_width: bytes per token of a headerless file (2, or 4 for uint32).
    TokenFile(const std::string& path, TokenFormat format, int vocab_size,
              size_t scan_limit = kScanLimit, int raw_width = 2);
    ~TokenFile();
    TokenFile(TokenFile&& o) noexcept;
    TokenFile& operator=(TokenFile&&) = delete;
    TokenFile(const TokenFile&) = delete;
    TokenFile& operator=(const TokenFile&) = delete;

    const std::string& path() const { return path_; }
    size_t size() const { return count_; }  // tokens
    int width() const { return width_; }    // bytes per token: 2 or 4
    uint32_t token(size_t i) const {
        return width_ == 2 ? reinterpret_cast<const uint16_t*>(data_)[i]
                           : reinterpret_cast<const uint32_t*>(data_)[i];
    }
    // x[t] = token(i + t), y[t] = token(i + 1 + t) for t < T.
    void copy_window(size_t i, int T, int32_t* x, int32_t* y) const;
    bool has_header() const { return header_; }
    bool scanned() const { return scanned_; }  // every id checked at open

    // Fails, naming the file and the token's position, if an id in [begin, begin+n) is
    // >= vocab_size.
    void check_range(size_t begin, size_t n) const;

  private:
    std::string path_;
    void* map_ = nullptr;
    size_t map_bytes_ = 0;
    const unsigned char* data_ = nullptr;
    int width_ = 2;
    size_t count_ = 0;
    bool header_ = false;
    bool scanned_ = false;
    int vocab_ = 0;
};

// The files of the two splits of a data folder (see above), in name order.
struct DataFiles {
    std::vector<std::string> train, val;
    int raw_width = 2;  // of headerless files: 4 when meta.json says "dtype": "uint32"
};
DataFiles find_data_files(const std::string& dir);

// Where a sampler is: its random state and the file it is reading.
struct SamplerState {
    std::array<uint64_t, 4> rng{};
    size_t file = 0;
    long long batches_in_file = 0;
    nlohmann::json to_json() const;
    static SamplerState from_json(const nlohmann::json& j, const std::string& where);
};

// The opened files of one split, in order. Fails if a file holds fewer than min_tokens tokens.
using TokenSplit = std::vector<TokenFile>;
std::shared_ptr<const TokenSplit> open_token_split(const std::vector<std::string>& paths,
                                                   TokenFormat format, int vocab_size,
                                                   size_t min_tokens, int raw_width = 2);

// Draws batches of B windows of T+1 tokens from the files of one split. Each file is visited for
// max(1, tokens / (B*T)) batches (about one pass over it), then the next file in order, cycling;
// with one file this is exactly nanoGPT's get_batch: window starts uniform in [0, len-T-1].
class BatchSampler {
  public:
    BatchSampler(std::shared_ptr<const TokenSplit> split, int B, int T, uint64_t seed);

    // x and y each hold B*T token ids (row-major [B, T]).
    void next(int32_t* x, int32_t* y);

    SamplerState state() const;
    void set_state(const SamplerState& s, const std::string& where);
    size_t total_tokens() const;
    size_t num_files() const { return files_->size(); }
    int batch() const { return B_; }
    int seq_len() const { return T_; }

  private:
    long long batches_per_visit(size_t file) const;
    std::shared_ptr<const TokenSplit> files_;
    int B_, T_;
    Rng rng_;
    size_t file_ = 0;
    long long batches_in_file_ = 0;
};

}  // namespace t6
