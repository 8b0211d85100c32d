// Helpers shared by the training tests: a tiny model, synthetic token files, a tiny run setup.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/token_data.h"
#include "train/train_config.h"

namespace t6::test {

// n_layer 2, n_embd 64, T6 with 4 heads of 16, vocabulary `vocab`, block 64.
inline ModelConfig tiny_train_model(int vocab = 64) {
    nlohmann::json j = {{"attention", "tpa"}, {"vocab_size", vocab}, {"n_layer", 2},
                        {"n_embd", 64},       {"n_head", 4},         {"head_dim", 16},
                        {"q_rank", 6},        {"rank", 2},           {"block_size", 64}};
    return config_from_json(j, "tiny test model");
}

inline void write_bytes(const std::string& path, const void* data, size_t n) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write " + path);
    if (n) std::fwrite(data, 1, n, f);
    std::fclose(f);
}

// nanoGPT: raw uint16.
inline void write_raw_tokens(const std::string& path, const std::vector<uint16_t>& t) {
    write_bytes(path, t.data(), t.size() * 2);
}

// llm.c: 256 int32 header, then uint16 tokens; header fields overridable for bad-input tests.
inline void write_llmc_tokens(const std::string& path, const std::vector<uint16_t>& t,
                              int32_t magic = kLlmcMagic, int32_t version = kLlmcVersion,
                              int64_t count = -1) {
    std::vector<int32_t> header(256, 0);
    header[0] = magic;
    header[1] = version;
    header[2] = int32_t(count < 0 ? int64_t(t.size()) : count);
    std::vector<unsigned char> bytes(1024 + t.size() * 2);
    std::memcpy(bytes.data(), header.data(), 1024);
    if (!t.empty()) std::memcpy(bytes.data() + 1024, t.data(), t.size() * 2);
    write_bytes(path, bytes.data(), bytes.size());
}

// A learnable stream: a fixed pseudo-random "sentence" of `period` tokens repeated, with a
// deterministic 1-in-16 substitution so the data are not a pure copy task.
inline std::vector<uint16_t> repetitive_tokens(size_t n, int vocab, unsigned noise_seed,
                                               int period = 23) {
    std::vector<uint16_t> sentence(period);
    uint64_t s = 12345;
    auto next = [&]() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return uint32_t(s >> 33);
    };
    for (auto& t : sentence) t = uint16_t(next() % vocab);
    s = noise_seed * 2654435761ull + 1;
    std::vector<uint16_t> out(n);
    for (size_t i = 0; i < n; i++)
        out[i] = (next() % 16 == 0) ? uint16_t(next() % vocab) : sentence[i % period];
    return out;
}

// train.bin / val.bin in `dir`.
inline void write_repetitive_dataset(const std::string& dir, int vocab, size_t n_train = 20000,
                                     size_t n_val = 4000) {
    write_raw_tokens(dir + "/train.bin", repetitive_tokens(n_train, vocab, 1));
    write_raw_tokens(dir + "/val.bin", repetitive_tokens(n_val, vocab, 2));
}

// A short run of the tiny model on `data`, everything small enough for a test.
inline TrainSetup tiny_setup(const std::string& data, const std::string& out_dir) {
    TrainSetup s;
    s.model = tiny_train_model();
    s.model_given = true;
    s.train.data = data;
    s.train.out_dir = out_dir;
    s.train.batch_size = 4;
    s.train.seq_len = 32;
    s.train.max_iters = 12;
    s.train.warmup_iters = 3;
    s.train.learning_rate = 3e-3;
    s.train.min_lr = 3e-4;
    s.train.eval_interval = 4;
    s.train.eval_iters = 2;
    s.train.log_interval = 4;
    s.train.keep_last = 2;
    s.train.threads = 1;
    return s;
}

}  // namespace t6::test
