// For the end-to-end tests (test_cli_*.cpp, which CMake gives T6_BINARY, the t6 program under
// test): run `t6 <args>` through the shell, read its --json line, check its one-line errors, and
// write small checkpoints for it to load.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "model/checkpoint.h"
#include "model/model.h"
#include "test_util.h"

namespace t6::test {

inline CommandResult run_t6(const std::string& args) {
    return run_command(std::string("'") + T6_BINARY + "' " + args);
}

// The JSON object on the last non-empty line of a command's stdout (the --json convention).
inline nlohmann::json last_json(const std::string& out) {
    const size_t end = out.find_last_not_of('\n');
    if (end == std::string::npos) return nlohmann::json::parse(std::string());  // throws
    const size_t nl = out.rfind('\n', end);
    const size_t begin = nl == std::string::npos ? 0 : nl + 1;
    return nlohmann::json::parse(out.substr(begin, end + 1 - begin));
}

// The bad-input convention: exit status 1 and one line on stderr, "t6: error: ...", containing
// needle.
inline void expect_one_line_error(const CommandResult& r, const std::string& needle) {
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(r.err.rfind("t6: error: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

// A tiny byte-level checkpoint (vocabulary 256, 2 layers, 2 heads of 16, block 64) written to
// dir/name: the official initialisation, or, with random_seed != 0, random weights everywhere
// (so that generated texts differ from seed to seed).
inline std::string write_tiny_checkpoint(const TempDir& dir,
                                         const std::string& name = "model.safetensors",
                                         AttentionKind kind = AttentionKind::tpa, int n_embd = 32,
                                         unsigned random_seed = 0) {
    ModelConfig c;
    c.attention = kind;
    c.vocab_size = 256;
    c.n_layer = 2;
    c.n_embd = n_embd;
    c.n_head = 2;
    c.head_dim = 16;
    c.block_size = 64;
    Model m(c);
    m.init_weights(3);
    if (random_seed != 0) {
        const auto v = random_vector(m.num_params(), random_seed, 0.2f);
        std::copy(v.begin(), v.end(), m.params());
    }
    const std::string path = dir.file(name);
    save_weights(path, m, {{"tokenizer", R"({"kind":"bytes"})"}});
    return path;
}

}  // namespace t6::test
