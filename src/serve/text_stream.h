// Turns the bytes of generated tokens into the text a completion releases, piece by piece:
//   - valid UTF-8 only: a character split across tokens is held until it is complete, and bytes
//     that cannot form a character become U+FFFD (so every piece can go into a JSON string);
//   - stop sequences: text that may be the start of a stop sequence is held back until it is
//     known not to be one; when one appears, the text before it is released and the rest is
//     dropped.
// The released pieces concatenate to the same text however the bytes were split into tokens,
// so a streamed completion equals the non-streamed one.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace t6::serve {

// Incremental UTF-8 sanitizer (strict: no overlong forms, surrogates or code points above
// U+10FFFF; each invalid byte becomes one U+FFFD).
class Utf8Sanitizer {
  public:
    // Appends bytes; returns the complete characters now available.
    std::string push(std::string_view bytes);
    // Returns what is left (an unfinished character becomes U+FFFD per byte).
    std::string flush();

  private:
    std::string drain(bool final);
    std::string pending_;
};

class TextStream {
  public:
    explicit TextStream(std::vector<std::string> stop = {});
    // Adds one token's bytes; returns the text that can be released now.
    std::string push(std::string_view token_bytes);
    // Releases everything held back (end of generation).
    std::string finish();
    // A stop sequence appeared: nothing more will be released.
    bool stopped() const { return stopped_; }

  private:
    std::string release(std::string text, bool final);
    std::vector<std::string> stop_;
    Utf8Sanitizer utf8_;
    std::string held_;
    bool stopped_ = false;
};

}  // namespace t6::serve
