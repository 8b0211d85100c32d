#include "text/bpe_trainer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "core/error.h"
#include "text/byte_unicode.h"
#include "text/pretokenize.h"
#include "text/utf8.h"

namespace t6::text {

void BpeTrainer::add_text(std::string_view text) {
    std::vector<uint32_t> ends;
    pretokenize(text, ends);
    uint32_t begin = 0;
    for (uint32_t end : ends) {
        auto piece = text.substr(begin, end - begin);
        auto it = counts_.find(std::string(piece));
        if (it == counts_.end())
            counts_.emplace(std::string(piece), 1);
        else
            ++it->second;
        begin = end;
    }
}

namespace {

uint64_t key(int32_t a, int32_t b) {
    return uint64_t(uint32_t(a)) << 32 | uint32_t(b);
}

}  // namespace

// Incremental BPE training: pair counts and, per pair, the words it occurs in are updated only
// for the words a merge touches; a max-heap with lazy deletion picks the next pair.
nlohmann::json BpeTrainer::train(int vocab_size, bool progress) const {
    if (vocab_size < 257)
        fail("--vocab-size ", vocab_size,
             " is too small: byte-level BPE needs at least 257 ids "
             "(256 bytes + <|endoftext|>)");
    // Words in a fixed order (sorted) so training is deterministic.
    std::vector<std::pair<std::string, int64_t>> sorted(counts_.begin(), counts_.end());
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::vector<int32_t>> words(sorted.size());
    std::vector<int64_t> freq(sorted.size());
    std::unordered_map<uint64_t, int64_t> pair_count;
    std::unordered_map<uint64_t, std::vector<int32_t>> where;
    for (size_t w = 0; w < sorted.size(); ++w) {
        const std::string& s = sorted[w].first;
        freq[w] = sorted[w].second;
        for (unsigned char c : s) words[w].push_back(c);
        for (size_t i = 0; i + 1 < words[w].size(); ++i) {
            uint64_t k = key(words[w][i], words[w][i + 1]);
            pair_count[k] += freq[w];
            where[k].push_back(int32_t(w));
        }
    }
    struct Entry {
        int64_t count;
        uint64_t pair;
        bool operator<(const Entry& o) const {  // max count first, then the smaller pair
            return count != o.count ? count < o.count : pair > o.pair;
        }
    };
    std::priority_queue<Entry> heap;
    for (const auto& [k, c] : pair_count) heap.push({c, k});

    std::vector<std::string> token(256);
    for (int b = 0; b < 256; ++b) token[size_t(b)] = std::string(1, char(b));
    nlohmann::json merges = nlohmann::json::array();
    const int n_merges = vocab_size - 257;
    std::vector<int32_t> stamp(words.size(), -1);
    auto add = [&](const std::vector<int32_t>& wd, int32_t w, int64_t f) {
        for (size_t i = 0; i + 1 < wd.size(); ++i) {
            uint64_t k = key(wd[i], wd[i + 1]);
            int64_t& c = pair_count[k];
            c += f;
            if (f > 0) where[k].push_back(w);
            heap.push({c, k});
        }
    };
    for (int m = 0; m < n_merges; ++m) {
        // The most frequent pair whose heap entry is current.
        Entry top{0, 0};
        while (!heap.empty()) {
            top = heap.top();
            heap.pop();
            auto it = pair_count.find(top.pair);
            if (it != pair_count.end() && it->second == top.count) break;
            top.count = 0;
        }
        if (top.count < 2) {
            if (progress)
                std::fprintf(stderr,
                             "tokenizer train: no pair occurs twice after %d merges; the "
                             "vocabulary has %d ids\n",
                             m, 257 + m);
            break;
        }
        const int32_t a = int32_t(top.pair >> 32), b = int32_t(top.pair & 0xFFFFFFFFu);
        const int32_t id = int32_t(256 + m);
        token.push_back(token[size_t(a)] + token[size_t(b)]);
        merges.push_back(map_bytes(token[size_t(a)]) + " " + map_bytes(token[size_t(b)]));
        std::vector<int32_t> touched = std::move(where[top.pair]);
        where.erase(top.pair);
        for (int32_t w : touched) {
            if (stamp[size_t(w)] == m) continue;  // listed twice
            stamp[size_t(w)] = m;
            std::vector<int32_t>& wd = words[size_t(w)];
            bool has = false;
            for (size_t i = 0; i + 1 < wd.size() && !has; ++i) has = wd[i] == a && wd[i + 1] == b;
            if (!has) continue;
            add(wd, w, -freq[size_t(w)]);
            size_t o = 0;
            for (size_t i = 0; i < wd.size();) {
                if (i + 1 < wd.size() && wd[i] == a && wd[i + 1] == b) {
                    wd[o++] = id;
                    i += 2;
                } else {
                    wd[o++] = wd[i++];
                }
            }
            wd.resize(o);
            add(wd, w, freq[size_t(w)]);
        }
        pair_count.erase(top.pair);
        if (progress && (m + 1) % 1000 == 0)
            std::fprintf(stderr, "tokenizer train: %d / %d merges\n", m + 1, n_merges);
    }
    const int vocab = int(257 + merges.size());
    return {{"format", "t6-bpe"},  {"version", 1},     {"pretokenizer", "gpt2"},
            {"vocab_size", vocab}, {"eot", vocab - 1}, {"merges", merges}};
}

void CharVocabBuilder::add_text(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        int32_t cp;
        i += size_t(utf8_next(text, i, cp));
        if (cp >= 0) seen_[size_t(cp)] = true;
    }
}

nlohmann::json CharVocabBuilder::spec() const {
    std::string chars;
    int n = 0;
    for (int32_t cp = 0; cp < 0x110000; ++cp)
        if (seen_[size_t(cp)]) {
            utf8_append(chars, cp);
            ++n;
        }
    if (n == 0) fail("the input has no characters");
    return {{"format", "t6-char"}, {"version", 1}, {"vocab_size", n}, {"chars", chars}};
}

}  // namespace t6::text
