#include "cli/args.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace t6::cli {

ArgParser::ArgParser(std::string command, std::string synopsis, std::string description)
    : command_(std::move(command)),
      synopsis_(std::move(synopsis)),
      description_(std::move(description)) {}

ArgParser& ArgParser::option(const std::string& name, const std::string& metavar,
                             const std::string& help, const std::string& default_value) {
    opts_[name] = {metavar, help, default_value, false};
    order_.push_back(name);
    return *this;
}

ArgParser& ArgParser::flag(const std::string& name, const std::string& help) {
    opts_[name] = {"", help, "", true};
    order_.push_back(name);
    return *this;
}

ArgParser& ArgParser::positional(const std::string& name, const std::string& help) {
    pos_specs_.push_back({name, help});
    return *this;
}

ArgParser& ArgParser::epilog(const std::string& text) {
    epilog_ = text;
    return *this;
}

std::string ArgParser::help() const {
    std::string s = "usage: t6 " + command_ + " " + synopsis_ + "\n\n" + description_ + "\n";
    if (!pos_specs_.empty()) {
        s += "\narguments:\n";
        for (const auto& [n, h] : pos_specs_) {
            std::string left = "  " + n;
            left.resize(std::max<size_t>(left.size() + 2, 28), ' ');
            s += left + h + "\n";
        }
    }
    s += "\noptions:\n";
    for (const auto& name : order_) {
        const Opt& o = opts_.at(name);
        std::string left = "  --" + name + (o.is_flag ? "" : " " + o.metavar);
        left.resize(std::max<size_t>(left.size() + 2, 28), ' ');
        s += left + o.help;
        if (!o.def.empty()) s += " (default " + o.def + ")";
        s += "\n";
    }
    s += "  --help                    show this help\n";
    if (!epilog_.empty()) s += "\n" + epilog_ + "\n";
    return s;
}

void ArgParser::parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(help().c_str(), stdout);
            throw HelpShown{};
        }
        if (a.rfind("--", 0) == 0 && a.size() > 2) {
            std::string name = a.substr(2), value;
            bool inline_value = false;
            if (auto eq = name.find('='); eq != std::string::npos) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
                inline_value = true;
            }
            auto it = opts_.find(name);
            if (it == opts_.end())
                fail("t6 ", command_, ": unknown option --", name, " (see t6 ", command_,
                     " --help)");
            if (it->second.is_flag) {
                if (inline_value) fail("t6 ", command_, ": --", name, " takes no value");
                values_[name] = "1";
            } else {
                if (!inline_value) {
                    if (i + 1 >= argc)
                        fail("t6 ", command_, ": --", name, " needs a value (", it->second.metavar,
                             ")");
                    value = argv[++i];
                }
                values_[name] = value;
            }
        } else {
            pos_values_.push_back(a);
        }
    }
}

bool ArgParser::has(const std::string& name) const {
    return values_.count(name) > 0;
}

std::string ArgParser::get(const std::string& name) const {
    auto it = values_.find(name);
    if (it != values_.end()) return it->second;
    auto o = opts_.find(name);
    return o == opts_.end() ? "" : o->second.def;
}

long long ArgParser::get_int64(const std::string& name) const {
    std::string v = get(name);
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0)
        fail("t6 ", command_, ": --", name, " must be an integer, got '", v, "'");
    return x;
}

int ArgParser::get_int(const std::string& name) const {
    long long x = get_int64(name);
    if (x < -2147483647LL || x > 2147483647LL)
        fail("t6 ", command_, ": --", name, " = ", x, " is out of range");
    return int(x);
}

double ArgParser::get_double(const std::string& name) const {
    std::string v = get(name);
    errno = 0;
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || errno != 0)
        fail("t6 ", command_, ": --", name, " must be a number, got '", v, "'");
    return x;
}

}  // namespace t6::cli
