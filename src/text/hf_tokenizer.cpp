#include "text/hf_tokenizer.h"

#include <array>
#include <cctype>
#include <cstdio>
#include <unordered_map>

#include "core/error.h"
#include "text/byte_unicode.h"
#include "text/pretokenize.h"
#include "text/utf8.h"

namespace t6 {

using nlohmann::json;

namespace {

const std::string kSpace = "\xe2\x96\x81";  // "▁" U+2581, SentencePiece's space marker

enum class Family { byte_level, sentencepiece };

// One step of the byte-level pre-tokenizer chain.
enum class Split { digits, bytelevel_regex, llama3_regex, qwen2_regex };

std::string type_of(const json& j) {
    return j.is_object() && j.contains("type") && j["type"].is_string()
               ? j["type"].get<std::string>()
               : "";
}

// Split pieces of the Llama-3 (max_digits 3) / Qwen2 (max_digits 1) pattern
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
// over code points (classes as text/pretokenize.h); appends piece end offsets.
void split_llama3(std::string_view s, int max_digits, std::vector<uint32_t>& ends) {
    std::vector<int32_t> cps;
    std::vector<uint32_t> at;  // byte offset of each code point, plus the end
    for (size_t i = 0; i < s.size();) {
        int32_t cp;
        int n = text::utf8_next(s, i, cp);
        cps.push_back(cp);
        at.push_back(uint32_t(i));
        i += size_t(n);
    }
    at.push_back(uint32_t(s.size()));
    const size_t n = cps.size();
    auto cls = [&](size_t k) { return text::char_class(cps[k]); };
    auto is_nl = [&](size_t k) { return cps[k] == '\r' || cps[k] == '\n'; };
    auto lower = [&](size_t k) { return cps[k] < 128 ? char(std::tolower(cps[k])) : '\0'; };
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (cps[i] == '\'' && i + 1 < n) {
            char a = lower(i + 1), b = i + 2 < n ? lower(i + 2) : '\0';
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
                j = i + 3;
            else if (a == 's' || a == 't' || a == 'm' || a == 'd')
                j = i + 2;
        }
        if (j == i) {
            // [^\r\n\p{L}\p{N}]?\p{L}+
            size_t k = i;
            if (cls(k) != text::CharClass::letter && cls(k) != text::CharClass::number && !is_nl(k))
                k++;
            if (k < n && cls(k) == text::CharClass::letter) {
                while (k < n && cls(k) == text::CharClass::letter) k++;
                j = k;
            }
        }
        if (j == i && cls(i) == text::CharClass::number) {  // \p{N}{1,max}
            j = i;
            while (j < n && j - i < size_t(max_digits) && cls(j) == text::CharClass::number) j++;
        }
        if (j == i) {  //  ?[^\s\p{L}\p{N}]+[\r\n]*
            size_t k = i + (cps[i] == ' ' ? 1 : 0);
            size_t k0 = k;
            while (k < n && cls(k) == text::CharClass::other) k++;
            if (k > k0) {
                while (k < n && is_nl(k)) k++;
                j = k;
            }
        }
        if (j == i && cls(i) == text::CharClass::space) {
            size_t e = i;
            while (e < n && cls(e) == text::CharClass::space) e++;
            // \s*[\r\n]+ : up to the last newline of the run
            size_t last_nl = n;
            for (size_t k = i; k < e; k++)
                if (is_nl(k)) last_nl = k;
            if (last_nl != n) {
                j = last_nl + 1;
            } else if (e < n && e - i > 1) {
                j = e - 1;  // \s+(?!\S): leave the last space for the next piece
            } else {
                j = e;  // \s+
            }
        }
        if (j == i) j = i + 1;  // any other single character
        ends.push_back(at[j]);
        i = j;
    }
}

class HfTokenizer : public Tokenizer {
  public:
    HfTokenizer(const json& tj, int eos, const std::string& where) : eos_(eos), where_(where) {
        if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
            fail(where, ": not a tokenizer.json (no 'model' object)");
        const json& m = tj["model"];
        const std::string type = type_of(m);
        if (type != "BPE")
            fail(where, ": model type '", type.empty() ? m.value("type", json()).dump() : type,
                 "' is not supported (BPE only: byte-level or SentencePiece-style)");
        if (!m.contains("vocab") || !m["vocab"].is_object())
            fail(where, ": model.vocab must be an object");
        for (auto& [tok, id] : m["vocab"].items()) {
            if (!id.is_number_integer() || id.get<long long>() < 0 ||
                id.get<long long>() >= (1 << 24))
                fail(where, ": vocab entry '", tok, "' has id ", id.dump());
            add_token(tok, id.get<int>());
        }
        if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
            for (const auto& a : tj["added_tokens"]) {
                if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
                    !a.contains("content") || !a["content"].is_string())
                    fail(where, ": malformed added_tokens entry ", a.dump().substr(0, 80));
                const int id = a["id"].get<int>();
                if (id < 0 || id >= (1 << 24)) fail(where, ": added token id ", id);
                if (size_t(id) >= pieces_.size()) pieces_.resize(size_t(id) + 1);
                pieces_[size_t(id)] = a["content"].get<std::string>();
                added_[size_t(id)] = true;
                ids_.emplace(a["content"].get<std::string>(), id);
            }
        byte_fallback_ = m.value("byte_fallback", false);
        ignore_merges_ = m.value("ignore_merges", false);
        if (m.contains("unk_token") && m["unk_token"].is_string()) {
            auto it = ids_.find(m["unk_token"].get<std::string>());
            if (it != ids_.end()) unk_ = it->second;
        }
        fuse_unk_ = m.value("fuse_unk", false);
        read_family(tj);
        read_merges(m);
        // Decoding: byte-level tokens map back through GPT-2's alphabet; SentencePiece tokens
        // turn "▁" into a space and <0xXX> into the byte.
        bytes_.resize(pieces_.size());
        for (size_t id = 0; id < pieces_.size(); id++) {
            const std::string& p = pieces_[id];
            if (added_[id]) {
                bytes_[id] = p;
            } else if (family_ == Family::byte_level) {
                if (!text::unmap_bytes(p, bytes_[id])) bytes_[id] = p;
            } else if (p.size() == 6 && p.rfind("<0x", 0) == 0 && p[5] == '>' &&
                       std::isxdigit(static_cast<unsigned char>(p[3])) &&
                       std::isxdigit(static_cast<unsigned char>(p[4]))) {
                bytes_[id] = std::string(1, char(std::stoi(p.substr(3, 2), nullptr, 16)));
            } else {
                std::string s;
                for (size_t k = 0; k < p.size();)
                    if (p.compare(k, kSpace.size(), kSpace) == 0) {
                        s += ' ';
                        k += kSpace.size();
                    } else {
                        s += p[k++];
                    }
                bytes_[id] = s;
            }
        }
        if (family_ == Family::byte_level)
            for (int b = 0; b < 256; b++) {
                auto it = ids_.find(text::map_bytes(std::string(1, char(b))));
                if (it == ids_.end())
                    fail(where, ": byte-level vocabulary has no token for byte ", b);
                byte_ids_[size_t(b)] = it->second;
            }
        if (byte_fallback_)
            for (int b = 0; b < 256; b++) {
                char name[8];
                std::snprintf(name, sizeof name, "<0x%02X>", b);
                auto it = ids_.find(name);
                if (it == ids_.end())
                    fail(where, ": byte_fallback is set but ", name, " is missing");
                byte_ids_[size_t(b)] = it->second;
            }
        if (eos_ >= int(pieces_.size()))
            fail(where, ": eos_token_id ", eos_, " is outside the vocabulary of ", pieces_.size());
    }

    std::string kind() const override { return "hf"; }
    int vocab_size() const override { return int(pieces_.size()); }
    int eot() const override { return eos_; }

    void encode(std::string_view text, std::vector<int32_t>& out) const override {
        if (family_ == Family::sentencepiece) {
            std::string s = normalize_sp(text);
            if (!sp_split_) {
                encode_piece(s, out);
                return;
            }
            size_t start = 0;  // Metaspace split: a piece starts at every "▁"
            for (size_t k = kSpace.size(); k <= s.size(); k++)
                if (k == s.size() || s.compare(k, kSpace.size(), kSpace) == 0) {
                    if (k > start) encode_piece(std::string_view(s).substr(start, k - start), out);
                    start = k;
                }
            return;
        }
        std::string s(text);
        if (add_prefix_space_ && !s.empty() && s[0] != ' ') s = " " + s;
        std::vector<std::string_view> pieces = {s}, next;
        std::vector<uint32_t> ends;
        for (Split step : splits_) {
            next.clear();
            for (std::string_view p : pieces) {
                ends.clear();
                if (step == Split::digits) {
                    for (size_t k = 0; k < p.size();) {  // each ASCII digit its own piece
                        size_t e = k + 1;
                        if (!(p[k] >= '0' && p[k] <= '9'))
                            while (e < p.size() && !(p[e] >= '0' && p[e] <= '9')) e++;
                        ends.push_back(uint32_t(e));
                        k = e;
                    }
                } else if (step == Split::bytelevel_regex) {
                    text::pretokenize(p, ends);
                } else {
                    split_llama3(p, step == Split::llama3_regex ? 3 : 1, ends);
                }
                uint32_t b = 0;
                for (uint32_t e : ends) {
                    next.push_back(p.substr(b, e - b));
                    b = e;
                }
            }
            pieces.swap(next);
        }
        for (std::string_view p : pieces) encode_piece(p, out);
    }

    std::string token_bytes(int32_t id) const override {
        if (id < 0 || size_t(id) >= bytes_.size())
            fail("token id ", id, " is outside the vocabulary (0..", bytes_.size() - 1, ")");
        return bytes_[size_t(id)];
    }

    json spec() const override {
        return {{"format", "hf-tokenizer"},
                {"eot", eos_ < 0 ? json() : json(eos_)},
                {"tokenizer", stored_}};
    }

    json stored_;  // the tokenizer.json it was made from (less what encoding does not use)

  private:
    void add_token(const std::string& tok, int id) {
        if (size_t(id) >= pieces_.size()) pieces_.resize(size_t(id) + 1);
        pieces_[size_t(id)] = tok;
        ids_[tok] = id;
    }

    void read_family(const json& tj) {
        const json pre = tj.value("pre_tokenizer", json());
        const json norm = tj.value("normalizer", json());
        std::vector<json> steps;
        if (type_of(pre) == "Sequence" && pre.contains("pretokenizers") &&
            pre["pretokenizers"].is_array())
            for (const auto& p : pre["pretokenizers"]) steps.push_back(p);
        else if (!pre.is_null())
            steps.push_back(pre);
        bool bytelevel = false;
        for (const auto& p : steps) {
            const std::string t = type_of(p);
            if (t == "ByteLevel") {
                bytelevel = true;
                add_prefix_space_ = p.value("add_prefix_space", false);
                if (p.value("use_regex", true)) splits_.push_back(Split::bytelevel_regex);
            } else if (t == "Digits") {
                if (!p.value("individual_digits", false))
                    fail(where_,
                         ": pre_tokenizer Digits without individual_digits is not supported");
                splits_.push_back(Split::digits);
            } else if (t == "Split") {
                const std::string re = p.contains("pattern") && p["pattern"].is_object() &&
                                               p["pattern"].contains("Regex") &&
                                               p["pattern"]["Regex"].is_string()
                                           ? p["pattern"]["Regex"].get<std::string>()
                                           : "";
                if (re.find("\\p{N}{1,3}") != std::string::npos &&
                    re.find("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+") != std::string::npos)
                    splits_.push_back(Split::llama3_regex);
                else if (re.find("\\p{N}|") != std::string::npos &&
                         re.find("[^\\r\\n\\p{L}\\p{N}]?\\p{L}+") != std::string::npos)
                    splits_.push_back(Split::qwen2_regex);
                else
                    fail(where_, ": pre_tokenizer Split with pattern ",
                         p.value("pattern", json()).dump().substr(0, 60),
                         " is not supported (GPT-2, Llama-3 and Qwen2 patterns only)");
            } else if (t == "Metaspace") {
                sp_metaspace_ = true;
                sp_split_ = p.value("split", true);
                const std::string scheme =
                    p.value("prepend_scheme",
                            std::string(p.value("add_prefix_space", true) ? "always" : "never"));
                sp_prepend_ = scheme != "never";
            } else {
                fail(where_, ": pre_tokenizer '", t.empty() ? p.dump().substr(0, 40) : t,
                     "' is not supported");
            }
        }
        family_ = bytelevel ? Family::byte_level : Family::sentencepiece;
        if (!bytelevel && !sp_metaspace_ && !byte_fallback_ && norm.is_null())
            fail(where_,
                 ": neither a byte-level (ByteLevel pre-tokenizer) nor a SentencePiece-style "
                 "(byte_fallback, Metaspace or a ▁ normalizer) BPE tokenizer");
        // Normalizers: SentencePiece's Prepend("▁") and Replace(" ", "▁"); NFC is accepted and
        // not applied (text is taken as already NFC).
        std::vector<json> ns;
        if (type_of(norm) == "Sequence" && norm.contains("normalizers") &&
            norm["normalizers"].is_array())
            for (const auto& n : norm["normalizers"]) ns.push_back(n);
        else if (!norm.is_null())
            ns.push_back(norm);
        for (const auto& n : ns) {
            const std::string t = type_of(n);
            if (t == "Prepend" && n.value("prepend", std::string()) == kSpace) {
                norm_prepend_ = true;
            } else if (t == "Replace" && n.contains("pattern") && n["pattern"].is_object() &&
                       n["pattern"].value("String", std::string()) == " " &&
                       n.value("content", std::string()) == kSpace) {
                norm_replace_ = true;
            } else if (t == "NFC") {
            } else {
                fail(where_, ": normalizer '", t.empty() ? n.dump().substr(0, 40) : t,
                     "' is not supported (Prepend ▁, Replace ' ' -> ▁, NFC)");
            }
        }
    }

    void read_merges(const json& m) {
        if (!m.contains("merges") || !m["merges"].is_array())
            fail(where_, ": model.merges must be an array");
        int rank = 0;
        for (const auto& e : m["merges"]) {
            std::string a, b;
            if (e.is_string()) {
                const std::string s = e.get<std::string>();
                const size_t sp = s.find(' ');
                if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                    fail(where_, ": merge '", s, "' is not two tokens separated by a space");
                a = s.substr(0, sp);
                b = s.substr(sp + 1);
            } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
                a = e[0];
                b = e[1];
            } else {
                fail(where_, ": malformed merge ", e.dump().substr(0, 60));
            }
            auto ia = ids_.find(a), ib = ids_.find(b), im = ids_.find(a + b);
            if (ia == ids_.end() || ib == ids_.end() || im == ids_.end())
                fail(where_, ": merge '", a, " ", b, "' uses a token missing from the vocabulary");
            ranks_.emplace(key(ia->second, ib->second), std::pair<int, int>{rank++, im->second});
        }
    }

    static uint64_t key(int a, int b) { return uint64_t(uint32_t(a)) << 32 | uint32_t(b); }

    std::string normalize_sp(std::string_view text) const {
        std::string s;
        const bool prepend = norm_prepend_ || (sp_metaspace_ && sp_prepend_);
        const bool replace = norm_replace_ || sp_metaspace_;
        if (prepend && !text.empty()) s = kSpace;
        for (char ch : text)
            if (replace && ch == ' ')
                s += kSpace;
            else
                s += ch;
        return s;
    }

    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
        if (piece.empty()) return;
        if (ignore_merges_) {
            auto it = ids_.find(family_ == Family::byte_level ? text::map_bytes(piece)
                                                              : std::string(piece));
            if (it != ids_.end()) {
                out.push_back(it->second);
                return;
            }
        }
        std::vector<int32_t> syms;
        if (family_ == Family::byte_level) {
            for (unsigned char b : piece) syms.push_back(byte_ids_[b]);
        } else {
            for (size_t i = 0; i < piece.size();) {
                int32_t cp;
                const size_t n = size_t(text::utf8_next(piece, i, cp));
                auto it = ids_.find(std::string(piece.substr(i, n)));
                if (it != ids_.end()) {
                    syms.push_back(it->second);
                } else if (byte_fallback_) {
                    for (size_t k = 0; k < n; k++)
                        syms.push_back(byte_ids_[static_cast<unsigned char>(piece[i + k])]);
                } else if (unk_ >= 0) {
                    if (!(fuse_unk_ && !syms.empty() && syms.back() == unk_)) syms.push_back(unk_);
                } else {
                    fail(where_, ": character not in the vocabulary and no byte_fallback or unk");
                }
                i += n;
            }
        }
        // Lowest rank first, leftmost first.
        while (syms.size() > 1) {
            int best = -1, at = -1, merged = -1;
            for (size_t i = 0; i + 1 < syms.size(); i++) {
                auto it = ranks_.find(key(syms[i], syms[i + 1]));
                if (it != ranks_.end() && (best < 0 || it->second.first < best)) {
                    best = it->second.first;
                    merged = it->second.second;
                    at = int(i);
                }
            }
            if (best < 0) break;
            syms[size_t(at)] = merged;
            syms.erase(syms.begin() + at + 1);
        }
        out.insert(out.end(), syms.begin(), syms.end());
    }

    int eos_;
    std::string where_;
    Family family_ = Family::byte_level;
    std::vector<Split> splits_;
    bool add_prefix_space_ = false, byte_fallback_ = false, ignore_merges_ = false,
         fuse_unk_ = false;
    bool sp_metaspace_ = false, sp_split_ = false, sp_prepend_ = true, norm_prepend_ = false,
         norm_replace_ = false;
    int unk_ = -1;
    std::vector<std::string> pieces_, bytes_;
    std::unordered_map<size_t, bool> added_;
    std::unordered_map<std::string, int> ids_;
    std::unordered_map<uint64_t, std::pair<int, int>> ranks_;  // pair -> (rank, merged id)
    std::array<int32_t, 256> byte_ids_{};
};

json stored_part(const json& tj) {
    json s = json::object();
    for (const char* k : {"added_tokens", "normalizer", "pre_tokenizer", "decoder", "model"})
        if (tj.contains(k)) s[k] = tj[k];
    return s;
}

}  // namespace

bool is_hf_tokenizer_json(const json& j) {
    return j.is_object() && j.contains("model") && j["model"].is_object();
}

json hf_tokenizer_spec(const json& tj, int eos, const std::string& where) {
    HfTokenizer t(tj, eos, where);  // validates
    return {{"format", "hf-tokenizer"},
            {"eot", eos < 0 ? json() : json(eos)},
            {"tokenizer", stored_part(tj)}};
}

std::unique_ptr<Tokenizer> make_hf_tokenizer(const json& spec, const std::string& where) {
    if (!spec.contains("tokenizer")) fail(where, ": hf-tokenizer spec without 'tokenizer'");
    int eos = -1;
    if (spec.contains("eot") && spec["eot"].is_number_integer()) eos = spec["eot"].get<int>();
    auto t = std::make_unique<HfTokenizer>(spec["tokenizer"], eos, where);
    t->stored_ = spec["tokenizer"];
    return t;
}

}  // namespace t6
