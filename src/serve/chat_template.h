// Chat templates of `t6 serve` (/v1/chat/completions): how a list of messages becomes one prompt,
// and where the assistant's turn ends. Not Jinja: a small JSON format (docs/serving.md):
//   {"bos": "",                                       text before everything
//    "system":    {"prefix": "", "suffix": "\n\n"},   around each message of that role
//    "user":      {"prefix": "User: ", "suffix": "\n\n"},
//    "assistant": {"prefix": "Assistant: ", "suffix": "\n\n"},
//    "generation_prompt": "Assistant:",                after the last message
//    "stop": ["\n\n"]}                                 end-of-turn strings: generation stops there
// Every key is optional (missing ones take the default's value above, the default template for
// base models). A template comes from --chat-template FILE, else the checkpoint's metadata key
// "chat_template" (the same JSON), else the default.
#pragma once
#include <string>
#include <vector>

namespace t6::serve {

struct ChatMessage {
    std::string role, content;  // role: system, user or assistant
};

struct ChatTemplate {
    struct Affixes {
        std::string prefix, suffix;
    };
    std::string bos;
    Affixes system{"", "\n\n"}, user{"User: ", "\n\n"}, assistant{"Assistant: ", "\n\n"};
    std::string generation_prompt = "Assistant:";
    std::vector<std::string> stop{"\n\n"};
    std::string source = "default";  // where it came from (for the start-up line)

    // Parses the JSON format; fails (t6::Error naming `where` and the key) on bad input.
    static ChatTemplate parse(const std::string& json_text, const std::string& where);
    std::string render(const std::vector<ChatMessage>& messages) const;
};

}  // namespace t6::serve
