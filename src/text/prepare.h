// `t6 prepare`: text -> token files for training (see token_files.h for the file layouts) plus
// <out>/meta.json:
//   {"format": "t6-data", "version": 1, "layout": "bin"|"shards", "dtype": "uint16"|"uint32",
//    "vocab_size": V, "eot": id or -1, "eot_placement": "prepend"|"append"|"none",
//    "tokenizer": <spec, see tokenizer.h>, "split": "tail"|"docs", "val_fraction": f,
//    "train": {"files": [...], "tokens": n}, "val": {"files": [...], "tokens": n},
//    "documents": n, "input_bytes": n, "inputs": [...],
//    "shard_header": {"magic": m, "version": v, "header_bytes": 1024}   (shards only)}
// Splits: "tail" puts the last val_fraction of the characters (code points) in validation, as
// nanoGPT's shakespeare_char does (files only: it counts characters in a first pass); "docs" puts
// document i in validation when floor((i+1)f) > floor(i f) (exactly a fraction f, spread evenly;
// works on stdin). The <|endoftext|> id goes before each document ("prepend", as llm.c), after it
// ("append", as nanoGPT's openwebtext) or nowhere.
// Streaming: pieces of documents are read, encoded in parallel in batches, and written in order;
// memory does not grow with the input. On any error the partial outputs are removed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/doc_reader.h"
#include "text/tokenizer.h"

namespace t6::text {

struct PrepareOptions {
    std::vector<std::string> inputs;  // files, or "-" for stdin
    std::string out_dir;
    DocReaderOptions reader;
    std::string layout = "bin";        // bin | shards
    int64_t shard_tokens = 100000000;  // llm.c's default
    double val_fraction = 0.1;
    std::string split = "auto";  // auto (tail for files, docs for stdin) | tail | docs
    std::string eot = "auto";  // auto (prepend if the tokenizer has one) | prepend | append | none
    int threads = 0;           // 0: all cores
    bool progress = false;     // a progress line on stderr
};

struct PrepareResult {
    int64_t train_tokens = 0, val_tokens = 0;
    uint64_t documents = 0, input_bytes = 0;
    double seconds = 0;
    std::string meta_path;
};

PrepareResult prepare_data(const Tokenizer& tok, const PrepareOptions& opt);

}  // namespace t6::text
