#include "text/doc_reader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/pretokenize.h"
#include "text/utf8.h"

namespace fs = std::filesystem;

namespace t6::text {

namespace {

constexpr size_t kBlockBytes = size_t(1) << 20;

bool ends_with(const std::string& s, const char* suffix) {
    size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool starts_with_space(const std::string& s) {
    if (s.empty()) return true;
    int32_t cp;
    utf8_next(s, 0, cp);
    return char_class(cp) == CharClass::space;
}

// True if `s` ends with a newline that is not preceded by white space: a text cut just after it
// splits the GPT-2 pre-tokens exactly where the whole text would, provided the next text starts
// with a non-space (a trailing run of two or more spaces at the end of a text stays one piece,
// while inside a text its last character would go to the next piece).
bool ends_with_lone_newline(const std::string& s) {
    if (s.empty() || s.back() != '\n') return false;
    if (s.size() == 1) return true;
    size_t i = s.size() - 2;
    for (int back = 0; back < 3 && i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80;
         ++back)
        --i;
    int32_t cp;
    utf8_next(s, i, cp);
    return char_class(cp) != CharClass::space;
}

bool all_space(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        int32_t cp;
        i += size_t(utf8_next(s, i, cp));
        if (char_class(cp) != CharClass::space) return false;
    }
    return true;
}

}  // namespace

DocReader::DocReader(std::vector<std::string> inputs, DocReaderOptions opt)
    : inputs_(std::move(inputs)), opt_(std::move(opt)) {
    if (inputs_.empty()) fail("no input files (give FILE... or - for stdin)");
    if (opt_.input_format != "auto" && opt_.input_format != "text" && opt_.input_format != "jsonl")
        fail("input format '", opt_.input_format, "' is not auto, text or jsonl");
    if (opt_.docs != "file" && opt_.docs != "line" && opt_.docs != "blank")
        fail("--docs '", opt_.docs, "' is not file, line or blank");
    if (opt_.piece_bytes < 16) opt_.piece_bytes = 16;
    for (const auto& p : inputs_) {
        if (p == "-") {
            reads_stdin_ = true;
            continue;
        }
        std::error_code ec;
        if (!fs::is_regular_file(p, ec)) fail(p, ": no such file");
        total_bytes_ += fs::file_size(p, ec);
    }
    if (reads_stdin_) total_bytes_ = 0;
}

DocReader::~DocReader() {
    if (f_ && f_ != stdin) std::fclose(f_);
}

std::string DocReader::where(uint64_t line) const {
    return cat(name_, ":", line);
}

bool DocReader::open_next_input() {
    if (f_) {
        if (f_ != stdin) std::fclose(f_);
        f_ = nullptr;
        bytes_done_ += file_bytes_;
        file_bytes_ = 0;
    }
    if (input_index_ >= inputs_.size()) return false;
    const std::string& p = inputs_[input_index_++];
    if (p == "-") {
        f_ = stdin;
        name_ = "<stdin>";
    } else {
        f_ = std::fopen(p.c_str(), "rb");
        if (!f_) fail(p, ": cannot open (", std::strerror(errno), ")");
        name_ = p;
    }
    jsonl_ = opt_.input_format == "jsonl" ||
             (opt_.input_format == "auto" && (ends_with(p, ".jsonl") || ends_with(p, ".json")));
    buf_.clear();
    buf_pos_ = 0;
    eof_ = false;
    line_no_ = 0;
    in_doc_ = false;
    prev_blank_ = true;
    have_pending_ = false;
    return true;
}

bool DocReader::read_line(Line& line, size_t max_len) {
    if (!f_) return false;
    while (true) {
        const char* start = buf_.data() + buf_pos_;
        size_t avail = buf_.size() - buf_pos_;
        const void* nl = std::memchr(start, '\n', std::min(avail, max_len));
        size_t take = 0;
        bool complete = true;
        if (nl) {
            take = size_t(static_cast<const char*>(nl) - start) + 1;
        } else if (avail >= max_len) {
            // A long line: return a part of it, ending on a character boundary.
            take = max_len;
            for (int back = 0;
                 back < 3 && take > 1 && (static_cast<unsigned char>(start[take]) & 0xC0) == 0x80;
                 ++back)
                --take;
            complete = false;
        } else if (eof_) {
            if (avail == 0) return false;
            take = avail;
        } else {
            // Refill: keep the unread tail, append a block.
            buf_.erase(0, buf_pos_);
            buf_pos_ = 0;
            size_t old = buf_.size();
            buf_.resize(old + kBlockBytes);
            size_t got = std::fread(buf_.data() + old, 1, kBlockBytes, f_);
            buf_.resize(old + got);
            if (got < kBlockBytes) {
                if (std::ferror(f_)) fail(name_, ": read error (", std::strerror(errno), ")");
                eof_ = true;
            }
            continue;
        }
        line.text.assign(start, take);
        line.number = line_no_ + 1;
        line.complete = complete;
        if (complete) ++line_no_;
        buf_pos_ += take;
        file_bytes_ += take;
        return true;
    }
}

bool DocReader::next(DocPiece& piece) {
    while (true) {
        if (!f_ && !open_next_input()) return false;
        bool got = jsonl_ ? next_jsonl(piece) : next_text(piece);
        if (got) return true;
        if (!open_next_input()) return false;
    }
}

// One JSON object per line; returns false at the end of the current input.
bool DocReader::next_jsonl(DocPiece& piece) {
    Line line;
    while (read_line(line, SIZE_MAX)) {
        if (all_space(line.text)) continue;
        size_t bad = utf8_first_invalid(line.text);
        if (bad != std::string::npos)
            fail(where(line.number), ": invalid UTF-8 at column ", bad + 1);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line.text);
        } catch (const nlohmann::json::parse_error& e) {
            std::string msg = e.what();
            size_t colon = msg.find("parse error");
            fail(where(line.number), ": not valid JSON (",
                 colon == std::string::npos ? msg : msg.substr(colon), ")");
        }
        if (!j.is_object()) fail(where(line.number), ": not a JSON object");
        auto it = j.find(opt_.field);
        if (it == j.end()) fail(where(line.number), ": no field '", opt_.field, "'");
        if (!it->is_string())
            fail(where(line.number), ": field '", opt_.field, "' is not a string");
        piece.text = it->get<std::string>();
        piece.doc_start = true;
        piece.file = name_;
        piece.line = line.number;
        ++documents_;
        return true;
    }
    return false;
}

// Text input; returns false at the end of the current input with nothing pending.
bool DocReader::next_text(DocPiece& piece) {
    piece.text.clear();
    piece.doc_start = false;
    bool started = false;
    const size_t P = opt_.piece_bytes;
    while (true) {
        Line line;
        if (have_pending_) {
            line = std::move(pending_);
            have_pending_ = false;
        } else if (!read_line(line, P)) {
            in_doc_ = false;  // a document never spans two inputs
            return started;
        } else if (opt_.require_utf8) {
            size_t bad = utf8_first_invalid(line.text);
            if (bad != std::string::npos)
                fail(where(line.number), ": invalid UTF-8 at column ", bad + 1);
        }
        if (opt_.docs == "line") {
            bool doc_start = !in_doc_;
            in_doc_ = !line.complete;
            std::string& t = line.text;
            if (line.complete && !t.empty() && t.back() == '\n') {
                t.pop_back();
                if (!t.empty() && t.back() == '\r') t.pop_back();
            }
            if (t.empty()) continue;
            piece.text = std::move(t);
            piece.doc_start = doc_start;
            piece.file = name_;
            piece.line = line.number;
            if (doc_start) ++documents_;
            return true;
        }
        const bool blank = line.complete && all_space(line.text);
        const bool new_doc = !in_doc_ || (opt_.docs == "blank" && prev_blank_ && !blank);
        const bool cut = started && piece.text.size() >= P &&
                         ((ends_with_lone_newline(piece.text) && !starts_with_space(line.text)) ||
                          piece.text.size() >= 4 * P);
        if (started && (new_doc || cut)) {
            pending_ = std::move(line);
            have_pending_ = true;
            if (new_doc) in_doc_ = false;
            return true;
        }
        if (new_doc) {
            piece.doc_start = true;
            in_doc_ = true;
            ++documents_;
        }
        if (!started) {
            started = true;
            piece.file = name_;
            piece.line = line.number;
        }
        piece.text += line.text;
        prev_blank_ = blank;
    }
}

}  // namespace t6::text
