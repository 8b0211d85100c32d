// Streaming input for `t6 prepare` and `t6 tokenizer train`: text files, JSONL files or stdin
// ("-"), read in blocks and returned as documents cut into pieces of bounded size, so memory stays
// constant however large the input (except one JSONL line, which is read whole).
//  - text input, --docs file: each file is one document; line: each non-empty line is one
//    (without its newline); blank: a new document starts at each non-blank line that follows a
//    blank line (documents keep their newlines, so together they are the file's text).
//  - JSONL input: one JSON object per line, the document is its string field (default "text");
//    blank lines are skipped.
// Long documents are cut after a newline that follows a non-space and precedes one (a place
// where the GPT-2 pre-tokenizer splits anyway, so the tokens are the same as encoding the whole
// document), or, if a document has no such place for 4 piece sizes, at a character boundary.
// Errors are one line naming file:line: invalid UTF-8, a line that is not JSON, a missing or
// non-string field.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace t6::text {

struct DocReaderOptions {
    std::string input_format = "auto";  // auto (.jsonl/.json: jsonl, else text) | text | jsonl
    std::string field = "text";         // JSONL field holding the document
    std::string docs = "file";          // text input: file | line | blank
    size_t piece_bytes = size_t(1) << 20;
    // Text input must be UTF-8 (checked line by line), unless the tokenizer encodes any bytes
    // (the byte tokenizer); JSONL is always UTF-8.
    bool require_utf8 = true;
};

struct DocPiece {
    std::string text;
    bool doc_start = false;  // first piece of a document
    std::string file;        // where it starts, for error messages
    uint64_t line = 0;
};

class DocReader {
  public:
    DocReader(std::vector<std::string> inputs, DocReaderOptions opt);
    ~DocReader();

    // The next piece; false at the end of the last input.
    bool next(DocPiece& piece);

    uint64_t bytes_read() const { return bytes_done_ + line_reader_bytes(); }
    uint64_t total_bytes() const { return total_bytes_; }  // 0 when reading stdin
    uint64_t documents() const { return documents_; }
    bool reads_stdin() const { return reads_stdin_; }

  private:
    struct Line {
        std::string text;
        uint64_t number = 0;
        bool complete = true;  // false: the rest of a long line follows
    };
    bool open_next_input();
    bool read_line(Line& line, size_t max_len);
    bool next_text(DocPiece& piece);
    bool next_jsonl(DocPiece& piece);
    uint64_t line_reader_bytes() const { return file_bytes_; }
    std::string where(uint64_t line) const;

    std::vector<std::string> inputs_;
    DocReaderOptions opt_;
    size_t input_index_ = 0;
    std::FILE* f_ = nullptr;
    bool jsonl_ = false;
    std::string name_;
    std::string buf_;
    size_t buf_pos_ = 0;
    bool eof_ = false;
    uint64_t line_no_ = 0;
    uint64_t file_bytes_ = 0, bytes_done_ = 0, total_bytes_ = 0, documents_ = 0;
    bool reads_stdin_ = false;
    // Text mode state.
    bool have_pending_ = false;
    Line pending_;
    bool in_doc_ = false;
    bool prev_blank_ = true;
};

}  // namespace t6::text
