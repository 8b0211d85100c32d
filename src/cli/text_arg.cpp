#include "cli/text_arg.h"

#include "cli/tokenizer_arg.h"
#include "core/error.h"
#include "core/strings.h"
#include "text/resolve_tokenizer.h"

namespace t6::cli {

void add_tokenizer_options(ArgParser& p, bool with_sources) {
    p.option("tokenizer", "NAME|FILE", "gpt2, or a tokenizer file from `t6 tokenizer train`",
             "gpt2");
    if (!with_sources) return;
    p.option("data", "DIR", "use the tokenizer recorded in DIR/meta.json (from t6 prepare)");
    p.option("checkpoint", "PATH", "use the tokenizer recorded in a t6 checkpoint");
}

std::unique_ptr<Tokenizer> tokenizer_from_options(const ArgParser& p, const std::string& command) {
    int given = int(p.has("tokenizer")) + int(p.has("data")) + int(p.has("checkpoint"));
    if (given > 1) fail("t6 ", command, ": give only one of --tokenizer, --data, --checkpoint");
    // The one source given must record a tokenizer; none given: --tokenizer's default.
    TokenizerSources s;
    s.sources_required = true;
    if (p.has("data")) {
        s.data_dir = p.get("data");
    } else if (p.has("checkpoint")) {
        s.checkpoint = p.get("checkpoint");
        s.checkpoint_spec = checkpoint_tokenizer_spec(s.checkpoint);
    } else {
        s.name = p.get("tokenizer");
    }
    return t6::resolve_tokenizer(s);
}

void add_input_options(ArgParser& p) {
    p.option("input-format", "F", "auto (.jsonl/.json files are JSONL) | text | jsonl", "auto");
    p.option("field", "NAME", "JSONL: the field holding each document's text", "text");
    p.option("docs", "MODE", "text: what a document is: file | line | blank (blank-line separated)",
             "file");
}

text::DocReaderOptions input_options(const ArgParser& p) {
    text::DocReaderOptions o;
    o.input_format = p.get("input-format");
    o.field = p.get("field");
    o.docs = p.get("docs");
    return o;
}

std::vector<std::string> input_paths(const ArgParser& p) {
    std::vector<std::string> v = p.positionals();
    if (p.has("input"))
        for (auto& s : split_list(p.get("input"))) v.push_back(std::move(s));
    return v;
}

}  // namespace t6::cli
