// `t6 bench serve` end to end (the paged KV cache, docs/paged-cache.md): a paged pool admits
// more short sequences than contiguous slots of the maximum context, prefix reuse holds fewer
// blocks; bad arguments are one-line errors.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_cli_util.h"
#include "test_util.h"

using namespace t6;

namespace {

const std::string kT6 = T6_BINARY;

TEST(CliBenchServe, PagedAdmitsMoreAndPrefixReuseHoldsFewerBlocks) {
    auto r = test::run_command(kT6 +
                               " bench serve --preset tiny-t6 --kv-budget 2MiB --context 64 "
                               "--max-context 256 --steps 1 --prefix-requests 3 "
                               "--prefix-tokens 40 --threads 1 --json");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto j = test::last_json(r.out);
    // 4416 bytes per token: 2 MiB holds 1 slot of 256 tokens, 14 blocks of 32 = 7 sequences of 64.
    EXPECT_EQ(j["kv_bytes_per_token"].get<long>(), 4416);
    EXPECT_EQ(j["contiguous_sequences"].get<long>(), 1);
    EXPECT_EQ(j["pool_blocks"].get<long>(), 14);
    EXPECT_EQ(j["paged_sequences"].get<long>(), 7);
    EXPECT_GT(j["paged_tokens_per_s"].get<double>(), 0.0);
    // 48-token prompts in blocks of 32: the first holds 2 blocks, the others share its full one.
    const auto& p = j["prefix"];
    EXPECT_EQ(p["blocks_one_request"].get<long>(), 2);
    EXPECT_EQ(p["blocks_with_reuse"].get<long>(), 4);
    EXPECT_EQ(p["blocks_without_reuse"].get<long>(), 6);
}

TEST(CliBenchServe, BadArgumentsAreOneLineErrors) {
    test::expect_one_line_error(test::run_command(kT6 + " bench serve --context 1"), "--context");
    test::expect_one_line_error(test::run_command(kT6 + " bench serve --block-tokens 0"),
                                "--block-tokens");
    test::expect_one_line_error(
        test::run_command(kT6 + " bench serve --preset tiny-t6 --kv-budget 1KiB"), "budget");
    auto r = test::run_command(kT6 + " bench serve --help");
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.out.find("usage: t6"), std::string::npos);
}

}  // namespace
