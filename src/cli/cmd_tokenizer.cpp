// t6 tokenizer: train a tokenizer on a corpus (byte-level BPE or nanoGPT's char-level), and show
// what a tokenizer is.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/text_arg.h"
#include "core/error.h"
#include "core/file_util.h"
#include "text/bpe_trainer.h"

namespace t6::cli {

namespace {

int tokenizer_train(int argc, char** argv) {
    ArgParser p("tokenizer train", "[FILE...] --vocab-size N --out FILE [options]",
                "Trains a tokenizer on text or JSONL files and writes it as a JSON file that "
                "`t6 prepare --tokenizer FILE` (and t6 tokenize) load. bpe: byte-level BPE with "
                "GPT-2's pre-tokenizer; ids 0..255 are bytes, the last id is <|endoftext|>. "
                "char: nanoGPT's shakespeare_char vocabulary (the sorted set of characters).");
    p.option("input", "FILES", "comma-separated input files (or give them as arguments)");
    p.option("kind", "K", "bpe | char", "bpe");
    p.option("vocab-size", "N", "bpe: ids in all (256 bytes + merges + <|endoftext|>)");
    p.option("out", "FILE", "the tokenizer file to write");
    p.flag("quiet", "no progress on stderr");
    add_input_options(p);
    p.parse(argc, argv, 0);
    std::vector<std::string> inputs = input_paths(p);
    if (inputs.empty()) fail("t6 tokenizer train: no input files (give FILE... or --input)");
    if (!p.has("out")) fail("t6 tokenizer train: --out FILE is required");
    const std::string kind = p.get("kind");
    if (kind != "bpe" && kind != "char") fail("t6 tokenizer train: --kind must be bpe or char");
    if (kind == "bpe" && !p.has("vocab-size"))
        fail("t6 tokenizer train: --vocab-size N is required for bpe");

    text::DocReader reader(inputs, input_options(p));
    text::DocPiece piece;
    text::BpeTrainer bpe;
    text::CharVocabBuilder chars;
    while (reader.next(piece)) {
        if (kind == "bpe")
            bpe.add_text(piece.text);
        else
            chars.add_text(piece.text);
    }
    nlohmann::json spec =
        kind == "bpe" ? bpe.train(p.get_int("vocab-size"), !p.has("quiet")) : chars.spec();
    write_file_atomic(p.get("out"), spec.dump(1) + "\n");
    std::printf("wrote %s: %s tokenizer, vocab_size %d, from %llu documents (%llu bytes)\n",
                p.get("out").c_str(), kind.c_str(), spec["vocab_size"].get<int>(),
                (unsigned long long)reader.documents(), (unsigned long long)reader.bytes_read());
    return 0;
}

int tokenizer_info(int argc, char** argv) {
    ArgParser p("tokenizer info", "[options]",
                "Shows a tokenizer's kind, vocabulary size and "
                "end-of-text id.");
    add_tokenizer_options(p, true);
    p.flag("json", "print one JSON object");
    p.parse(argc, argv, 0);
    auto tok = tokenizer_from_options(p, "tokenizer info");
    nlohmann::json j = {
        {"kind", tok->kind()}, {"vocab_size", tok->vocab_size()}, {"eot", tok->eot()}};
    if (p.has("json"))
        std::printf("%s\n", j.dump().c_str());
    else
        std::printf("kind %s\nvocab_size %d\neot %d\n", tok->kind().c_str(), tok->vocab_size(),
                    tok->eot());
    return 0;
}

}  // namespace

int cmd_tokenizer(int argc, char** argv) {
    std::string sub = argc > 0 ? argv[0] : "";
    if (sub == "train") return tokenizer_train(argc - 1, argv + 1);
    if (sub == "info") return tokenizer_info(argc - 1, argv + 1);
    if (sub == "--help" || sub == "-h") {
        std::printf("usage: t6 tokenizer train|info [options]   (t6 tokenizer train --help)\n");
        return 0;
    }
    fail("t6 tokenizer: expected a subcommand, train or info (see t6 tokenizer --help)");
}

}  // namespace t6::cli
