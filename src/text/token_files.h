// Token files written by `t6 prepare` (and read by training):
//  - nanoGPT layout: train.bin / val.bin, raw little-endian token ids, no header; uint16 when the
//    vocabulary has at most 65536 ids, else uint32 (meta.json's "dtype" says which).
//  - llm.c shards: train_000000.bin, ... / val_000000.bin, ...: a header of 256 little-endian
//    int32 (header[0] magic, header[1] version, header[2] number of tokens, the rest 0) followed
//    by the tokens. uint16 tokens: magic 20240520, version 1 (llm.c's GPT-2 files); uint32 tokens:
//    magic 20240801, version 7 (llm.c's LLaMA-3 files).
// Files are written under temporary names and renamed only by commit(); a writer destroyed
// without commit() removes what it wrote.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace t6::text {

inline constexpr int32_t kShardMagicU16 = 20240520, kShardVersionU16 = 1;
inline constexpr int32_t kShardMagicU32 = 20240801, kShardVersionU32 = 7;
inline constexpr size_t kShardHeaderInts = 256;

class TokenFileWriter {
  public:
    // bin: `dir/<split>.bin`; shards: `dir/<split>_NNNNNN.bin` of at most shard_tokens tokens.
    TokenFileWriter(std::string dir, std::string split, bool shards, bool u32,
                    int64_t shard_tokens);
    ~TokenFileWriter();
    TokenFileWriter(const TokenFileWriter&) = delete;
    TokenFileWriter& operator=(const TokenFileWriter&) = delete;

    void write(const int32_t* ids, size_t n);
    // Closes the last file and renames every file to its final name.
    void commit();

    int64_t tokens() const { return total_; }
    const std::vector<std::string>& files() const { return final_names_; }  // base names

  private:
    void open_file();
    void close_file();
    std::string dir_, split_;
    bool shards_, u32_;
    int64_t shard_tokens_;
    std::FILE* f_ = nullptr;
    int64_t in_file_ = 0, total_ = 0;
    std::vector<std::string> temp_paths_, final_names_;
    std::vector<unsigned char> buf_;
    bool committed_ = false;
};

}  // namespace t6::text
