// Command-line parsing shared by every t6 subcommand: --name VALUE / --name=VALUE options,
// boolean flags, positional arguments, and a generated --help. Unknown options and missing
// values are one-line errors naming the argument.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace t6::cli {

// Thrown after --help was printed; main() exits 0.
struct HelpShown {};

class ArgParser {
  public:
    ArgParser(std::string command, std::string synopsis, std::string description);
    ArgParser& option(const std::string& name, const std::string& metavar, const std::string& help,
                      const std::string& default_value = "");
    ArgParser& flag(const std::string& name, const std::string& help);
    ArgParser& positional(const std::string& name, const std::string& help);
    ArgParser& epilog(const std::string& text);

    // Parses argv[first..argc). Extra positionals are kept in positionals() (e.g. key=value
    // overrides).
    void parse(int argc, char** argv, int first);

    bool has(const std::string& name) const;  // option given or flag set
    std::string get(const std::string& name) const;
    int get_int(const std::string& name) const;
    long long get_int64(const std::string& name) const;
    double get_double(const std::string& name) const;
    bool flag_set(const std::string& name) const { return has(name); }
    const std::vector<std::string>& positionals() const { return pos_values_; }
    std::string help() const;

  private:
    struct Opt {
        std::string metavar, help, def;
        bool is_flag = false;
    };
    std::string command_, synopsis_, description_, epilog_;
    std::vector<std::string> order_;
    std::map<std::string, Opt> opts_;
    std::vector<std::pair<std::string, std::string>> pos_specs_;
    std::map<std::string, std::string> values_;
    std::vector<std::string> pos_values_;
};

}  // namespace t6::cli
