#include "text/prepare.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/file_util.h"
#include "core/timing.h"
#include "text/token_files.h"
#include "text/utf8.h"

namespace fs = std::filesystem;

namespace t6::text {

namespace {

struct Item {
    std::string text;
    bool doc_start = false;
    bool val = false;
    std::string file;
    uint64_t line = 0;
    std::vector<int32_t> ids;
};

// Byte offset of code point number `k` of valid UTF-8 text.
size_t byte_offset_of_char(std::string_view s, uint64_t k) {
    size_t i = 0;
    for (uint64_t c = 0; c < k && i < s.size(); ++c) {
        int32_t cp;
        i += size_t(utf8_next(s, i, cp));
    }
    return i;
}

class Progress {
  public:
    explicit Progress(bool on) : on_(on), start_(std::chrono::steady_clock::now()) {}
    double seconds() const { return seconds_since(start_); }
    void update(const DocReader& r, int64_t tokens, bool final = false) {
        if (!on_) return;
        double s = seconds();
        if (!final && s - last_ < 0.25) return;
        last_ = s;
        double mb = double(r.bytes_read()) / 1e6;
        std::string pct =
            r.total_bytes()
                ? cat(int(100.0 * double(r.bytes_read()) / double(r.total_bytes())), "% ")
                : std::string();
        std::fprintf(stderr, "\rprepare: %s%.1f MB, %llu documents, %lld tokens, %.1f MB/s   %s",
                     pct.c_str(), mb, (unsigned long long)r.documents(), (long long)tokens,
                     s > 0 ? mb / s : 0.0, final ? "\n" : "");
        std::fflush(stderr);
    }

  private:
    bool on_;
    std::chrono::steady_clock::time_point start_;
    double last_ = -1;
};

void check_options(const Tokenizer& tok, PrepareOptions& o, bool stdin_input) {
    if (o.layout != "bin" && o.layout != "shards")
        fail("--layout '", o.layout, "' is not bin or shards");
    if (!(o.val_fraction >= 0 && o.val_fraction < 1))
        fail("--val-fraction ", o.val_fraction, " is not in [0, 1)");
    if (o.eot == "auto") o.eot = tok.eot() >= 0 ? "prepend" : "none";
    if (o.eot != "prepend" && o.eot != "append" && o.eot != "none")
        fail("--eot '", o.eot, "' is not prepend, append or none");
    if (o.eot != "none" && tok.eot() < 0)
        fail("--eot ", o.eot, ": the ", tok.kind(), " tokenizer has no <|endoftext|> token");
    if (o.split == "auto") o.split = stdin_input ? "docs" : "tail";
    if (o.split != "tail" && o.split != "docs") fail("--split '", o.split, "' is not tail or docs");
    if (o.split == "tail" && stdin_input)
        fail("--split tail needs the input's length, which stdin does not give; use --split docs");
    if (o.out_dir.empty()) fail("no output folder (--out DIR)");
}

// Removes shard files of an earlier run (same naming pattern) that this run did not write.
void remove_stale_shards(const std::string& dir, const std::vector<std::string>& keep) {
    static const std::regex pattern("(train|val)_[0-9]{6}\\.bin");
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (!std::regex_match(name, pattern)) continue;
        if (std::find(keep.begin(), keep.end(), name) == keep.end()) fs::remove(e.path());
    }
}

}  // namespace

PrepareResult prepare_data(const Tokenizer& tok, const PrepareOptions& opt_in) {
    PrepareOptions opt = opt_in;
    // The byte tokenizer encodes any bytes: text that is not UTF-8 is data for it, not an error.
    if (tok.kind() == "bytes") opt.reader.require_utf8 = false;
    DocReader reader(opt.inputs, opt.reader);
    check_options(tok, opt, reader.reads_stdin());
    std::error_code ec;
    fs::create_directories(opt.out_dir, ec);
    if (!fs::is_directory(opt.out_dir)) fail(opt.out_dir, ": cannot create the output folder");
    const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
    const bool u32 = tok.vocab_size() > 65536;
    const bool shards = opt.layout == "shards";

    // Tail split: count the characters first, to know where validation starts.
    uint64_t cut_char = 0;
    if (opt.split == "tail") {
        DocReader counter(opt.inputs, opt.reader);
        DocPiece p;
        uint64_t total = 0;
        while (counter.next(p)) total += utf8_length(p.text);
        cut_char = uint64_t(double(total) * (1.0 - opt.val_fraction));
    }

    TokenFileWriter train(opt.out_dir, "train", shards, u32, opt.shard_tokens);
    TokenFileWriter val(opt.out_dir, "val", shards, u32, opt.shard_tokens);
    Progress progress(opt.progress);
    const int32_t eot = tok.eot();
    uint64_t doc_index = 0, chars_seen = 0;
    bool cur_val = false, have_doc = false, last_val = false;
    const size_t batch_bytes = std::max<size_t>(size_t(4) << 20, size_t(threads) * (2u << 20));

    std::vector<Item> batch;
    DocPiece piece;
    bool more = true;
    while (more) {
        // Read a batch of pieces and decide the split of each.
        batch.clear();
        size_t bytes = 0;
        while (bytes < batch_bytes && batch.size() < 4096) {
            if (!reader.next(piece)) {
                more = false;
                break;
            }
            bytes += piece.text.size();
            Item it{std::move(piece.text), piece.doc_start, false, piece.file, piece.line, {}};
            if (opt.split == "docs") {
                if (it.doc_start) {
                    double f = opt.val_fraction;
                    cur_val =
                        std::floor(double(doc_index + 1) * f) > std::floor(double(doc_index) * f);
                    ++doc_index;
                }
                it.val = cur_val;
                batch.push_back(std::move(it));
                continue;
            }
            uint64_t n = chars_seen >= cut_char ? 0 : utf8_length(it.text);
            if (chars_seen >= cut_char || chars_seen + n <= cut_char) {
                it.val = chars_seen >= cut_char;
                chars_seen += n;
                batch.push_back(std::move(it));
                continue;
            }
            // The cut falls inside this piece: the head is training text, the tail validation.
            size_t at = byte_offset_of_char(it.text, cut_char - chars_seen);
            Item tail{it.text.substr(at), false, true, it.file, it.line, {}};
            it.text.resize(at);
            chars_seen = cut_char;
            batch.push_back(std::move(it));
            batch.push_back(std::move(tail));
        }

        // Encode in parallel; the first error (with its file:line) is rethrown.
        std::string error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (size_t i = 0; i < batch.size(); ++i) {
            try {
                tok.encode(batch[i].text, batch[i].ids);
            } catch (const std::exception& e) {
#pragma omp critical(t6_prepare_error)
                if (error.empty()) error = cat(batch[i].file, ":", batch[i].line, ": ", e.what());
            }
        }
        if (!error.empty()) fail(error);

        // Write in input order.
        for (Item& it : batch) {
            if (it.doc_start) {
                if (opt.eot == "append" && have_doc) (last_val ? val : train).write(&eot, 1);
                if (opt.eot == "prepend") (it.val ? val : train).write(&eot, 1);
                have_doc = true;
            }
            (it.val ? val : train).write(it.ids.data(), it.ids.size());
            last_val = it.val;
        }
        progress.update(reader, train.tokens() + val.tokens());
    }
    if (opt.eot == "append" && have_doc) (last_val ? val : train).write(&eot, 1);
    progress.update(reader, train.tokens() + val.tokens(), true);

    // An empty data set would only fail later, in training; nothing is written (the writers
    // remove their temporary files).
    if (train.tokens() == 0) {
        if (reader.documents() == 0 || val.tokens() == 0)
            fail("the input holds no text (", reader.documents(),
                 " documents, 0 tokens): nothing to prepare");
        fail("the training split is empty (all ", val.tokens(),
             " tokens went to validation): give more text or a smaller --val-fraction");
    }

    train.commit();
    val.commit();
    nlohmann::json meta = {{"format", "t6-data"},
                           {"version", 1},
                           {"layout", opt.layout},
                           {"dtype", u32 ? "uint32" : "uint16"},
                           {"vocab_size", tok.vocab_size()},
                           {"eot", eot},
                           {"eot_placement", opt.eot},
                           {"tokenizer", tok.spec()},
                           {"split", opt.split},
                           {"val_fraction", opt.val_fraction},
                           {"train", {{"files", train.files()}, {"tokens", train.tokens()}}},
                           {"val", {{"files", val.files()}, {"tokens", val.tokens()}}},
                           {"documents", reader.documents()},
                           {"input_bytes", reader.bytes_read()},
                           {"inputs", opt.inputs}};
    if (shards)
        meta["shard_header"] = {{"magic", u32 ? kShardMagicU32 : kShardMagicU16},
                                {"version", u32 ? kShardVersionU32 : kShardVersionU16},
                                {"header_bytes", kShardHeaderInts * 4}};
    PrepareResult res;
    res.meta_path = (fs::path(opt.out_dir) / "meta.json").string();
    write_file_atomic(res.meta_path, meta.dump(1) + "\n");
    if (shards) {
        std::vector<std::string> keep = train.files();
        keep.insert(keep.end(), val.files().begin(), val.files().end());
        remove_stale_shards(opt.out_dir, keep);
    }
    res.train_tokens = train.tokens();
    res.val_tokens = val.tokens();
    res.documents = reader.documents();
    res.input_bytes = reader.bytes_read();
    res.seconds = progress.seconds();
    return res;
}

}  // namespace t6::text
