// t6 tokenize: text -> token ids and ids -> text with any t6 tokenizer, for inspection and
// scripting; --bench measures encoding speed.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/text_arg.h"
#include "core/error.h"
#include "core/file_util.h"

namespace t6::cli {

namespace {

std::string read_stdin() {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

std::string input_text(const ArgParser& p) {
    if (p.has("file")) return p.get("file") == "-" ? read_stdin() : read_file_text(p.get("file"));
    if (!p.positionals().empty()) {
        std::string s;
        for (size_t i = 0; i < p.positionals().size(); ++i)
            s += (i ? " " : "") + p.positionals()[i];
        return s;
    }
    return read_stdin();
}

std::vector<int32_t> parse_ids(const std::string& s, const Tokenizer& tok) {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (std::isspace(static_cast<unsigned char>(s[i])) || s[i] == ',' ||
                                s[i] == '[' || s[i] == ']'))
            ++i;
        if (i >= s.size()) break;
        size_t j = i;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
        if (j == i) fail("t6 tokenize --decode: '", s.substr(i, 20), "' is not a token id");
        // Digits only, so the id is >= 0; more than 10 digits cannot be a vocabulary id (and
        // would overflow the conversion).
        const std::string digits = s.substr(i, j - i);
        const long long v = digits.size() > 10 ? -1 : std::stoll(digits);
        if (v < 0 || v >= tok.vocab_size())
            fail("t6 tokenize --decode: id ",
                 digits.size() > 24 ? digits.substr(0, 24) + "..." : digits,
                 " is outside the vocabulary (0..", tok.vocab_size() - 1, ")");
        ids.push_back(int32_t(v));
        i = j;
    }
    return ids;
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// Encoding speed on a file: one thread on the whole text (cold cache, then warm), and all
// threads over ~64 KiB pieces cut at line starts.
int run_bench(const ArgParser& p, const Tokenizer& tok) {
    std::string text = read_file_text(p.get("bench"));
    const double mb = double(text.size()) / 1e6;
    std::vector<int32_t> ids;
    double t0 = now_s();
    tok.encode(text, ids);
    double cold = now_s() - t0;
    double warm = 1e30;
    for (int r = 0; r < 3; ++r) {
        std::vector<int32_t> again;
        t0 = now_s();
        tok.encode(text, again);
        warm = std::min(warm, now_s() - t0);
    }
    std::vector<std::string_view> pieces;
    for (size_t pos = 0; pos < text.size();) {
        size_t end = std::min(text.size(), pos + (64u << 10));
        // Cut after a newline with non-space (ASCII here) on both sides: the pre-tokenizer
        // splits there anyway, so the pieces' tokens are the whole text's.
        auto ok = [&](size_t e) {
            return text[e - 1] == '\n' && e >= 2 && !std::isspace((unsigned char)text[e - 2]) &&
                   !(text[e - 2] & 0x80) && !std::isspace((unsigned char)text[e]) &&
                   !(text[e] & 0x80);
        };
        while (end < text.size() && !ok(end)) ++end;
        pieces.emplace_back(text.data() + pos, end - pos);
        pos = end;
    }
    const int threads = p.has("threads") ? p.get_int("threads") : omp_get_max_threads();
    std::vector<std::vector<int32_t>> out(pieces.size());
    t0 = now_s();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (size_t i = 0; i < pieces.size(); ++i) tok.encode(pieces[i], out[i]);
    double par = now_s() - t0;
    size_t par_tokens = 0;
    for (const auto& o : out) par_tokens += o.size();
    if (par_tokens != ids.size())
        fail("t6 tokenize --bench: pieces gave ", par_tokens, " tokens, the whole text ",
             ids.size());
    nlohmann::json j = {{"file", p.get("bench")},
                        {"tokenizer", tok.kind()},
                        {"bytes", text.size()},
                        {"tokens", ids.size()},
                        {"mb_per_s_1thread_cold", mb / cold},
                        {"mb_per_s_1thread", mb / warm},
                        {"threads", threads},
                        {"mb_per_s_threads", mb / par}};
    if (p.has("json")) {
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s: %zu bytes -> %zu tokens (%s)\n", p.get("bench").c_str(), text.size(),
                    ids.size(), tok.kind().c_str());
        std::printf("encode, 1 thread:  %.1f MB/s (first pass, empty cache: %.1f MB/s)\n",
                    mb / warm, mb / cold);
        std::printf("encode, %d threads: %.1f MB/s\n", threads, mb / par);
    }
    return 0;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
    ArgParser p("tokenize", "[TEXT...] [options]",
                "Encodes text (TEXT, --file, or stdin) to token ids, or decodes ids (--decode) to "
                "text. Prints ids separated by spaces, or JSON with --json.");
    add_tokenizer_options(p, true);
    p.option("file", "FILE", "read the text (or ids) from FILE ('-' = stdin)");
    p.flag("decode", "the input is token ids (separated by spaces or commas); print the text");
    p.flag("special", "encode each literal <|endoftext|> as the end-of-text id");
    p.flag("json", "print JSON: {\"ids\": [...], \"count\": n} or {\"text\": ...}");
    p.option("bench", "FILE", "measure encoding speed (MB/s) on FILE");
    p.option("threads", "N", "threads for --bench", "all cores");
    p.parse(argc, argv, 0);
    auto tok = tokenizer_from_options(p, "tokenize");
    if (p.has("bench")) return run_bench(p, *tok);
    std::string in = input_text(p);
    if (p.has("decode")) {
        std::string text = tok->decode(parse_ids(in, *tok));
        if (p.has("json")) {
            // Invalid UTF-8 (a sequence cut inside a character) is shown with U+FFFD.
            std::printf("%s\n", nlohmann::json{{"text", text}}
                                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                                    .c_str());
        } else {
            std::fwrite(text.data(), 1, text.size(), stdout);
        }
        return 0;
    }
    std::vector<int32_t> ids = p.has("special") ? tok->encode_with_special(in) : tok->encode(in);
    if (p.has("json")) {
        std::printf("%s\n", nlohmann::json{{"ids", ids}, {"count", ids.size()}}.dump().c_str());
    } else {
        for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
        std::printf("\n");
    }
    return 0;
}

}  // namespace t6::cli
