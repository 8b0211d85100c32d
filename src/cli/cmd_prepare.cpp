// t6 prepare: text files, JSONL or stdin -> tokenized train/val token files (nanoGPT .bin or
// llm.c shards) and a meta.json recording the tokenizer, so later commands need only --data.
#include <unistd.h>

#include <cstdio>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/format.h"
#include "cli/text_arg.h"
#include "core/error.h"
#include "text/bpe_trainer.h"
#include "text/prepare.h"
#include "text/tokenizer.h"

namespace t6::cli {

int cmd_prepare(int argc, char** argv) {
    ArgParser p("prepare", "FILE... --out DIR [options]",
                "Tokenizes text or JSONL files (or - for stdin) into training data: train/val "
                "token files and DIR/meta.json (tokenizer, dtype, counts). The tokenizer is "
                "recorded, so training, evaluation and generation need only --data DIR.");
    p.option("out", "DIR", "output folder (created if needed)");
    p.option("input", "FILES", "comma-separated input files (or give them as arguments)");
    p.option("tokenizer", "NAME|FILE",
             "gpt2, char (nanoGPT's shakespeare_char: the sorted characters of the input), or a "
             "file from `t6 tokenizer train`",
             "gpt2");
    p.option("layout", "L",
             "bin: nanoGPT train.bin/val.bin, raw uint16 (uint32 above 65536 ids); shards: llm.c "
             "shards with a 1 KiB header",
             "bin");
    p.option("shard-tokens", "N", "tokens per shard (--layout shards)", "100000000");
    p.option("val-fraction", "F", "fraction of the data for validation", "0.1");
    p.option("split", "S",
             "tail: the last F of the characters (nanoGPT); docs: every (1/F)-th document; "
             "default tail for files, docs for stdin",
             "auto");
    p.option("eot", "E",
             "where <|endoftext|> goes: prepend (before each document, as llm.c) | append | none",
             "prepend if the tokenizer has one");
    p.option("threads", "N", "encoding threads", "all cores");
    p.flag("quiet", "no progress line on stderr (shown when stderr is a terminal)");
    add_input_options(p);
    p.parse(argc, argv, 0);

    text::PrepareOptions o;
    o.inputs = input_paths(p);
    if (o.inputs.empty()) fail("t6 prepare: no input files (give FILE... or - for stdin)");
    if (!p.has("out")) fail("t6 prepare: --out DIR is required");
    o.out_dir = p.get("out");
    o.reader = input_options(p);
    o.layout = p.get("layout");
    o.shard_tokens = p.get_int64("shard-tokens");
    o.val_fraction = p.get_double("val-fraction");
    o.split = p.get("split");
    o.eot = p.has("eot") ? p.get("eot") : "auto";
    o.threads = p.has("threads") ? p.get_int("threads") : 0;
    o.progress = !p.has("quiet") && ::isatty(2);  // a live line on terminals only

    std::unique_ptr<Tokenizer> tok;
    if (p.get("tokenizer") == "char") {
        // nanoGPT's shakespeare_char: the vocabulary is the sorted set of the input's characters.
        text::DocReader reader(o.inputs, o.reader);
        if (reader.reads_stdin())
            fail("t6 prepare: --tokenizer char reads the input twice, which stdin does not allow");
        text::CharVocabBuilder chars;
        text::DocPiece piece;
        while (reader.next(piece)) chars.add_text(piece.text);
        tok = load_tokenizer_spec(chars.spec(), "char vocabulary");
    } else {
        tok = load_tokenizer(p.get("tokenizer"));
    }
    text::PrepareResult r = text::prepare_data(*tok, o);
    std::printf(
        "wrote %s: %s train + %s val tokens (%s tokenizer, vocab %d) from %s documents, "
        "%s in %.1f s\n",
        r.meta_path.c_str(), with_commas(r.train_tokens).c_str(), with_commas(r.val_tokens).c_str(),
        tok->kind().c_str(), tok->vocab_size(), with_commas((long long)r.documents).c_str(),
        human_bytes(double(r.input_bytes)).c_str(), r.seconds);
    return 0;
}

}  // namespace t6::cli
