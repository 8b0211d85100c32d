#include "test_util.h"

#include <sys/wait.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

namespace fs = std::filesystem;

namespace t6::test {

std::string shared_dir() {
    const char* env = std::getenv("T6_SHARED");
    std::string dir = env && *env ? env : std::string(T6_SOURCE_DIR) + "/../shared";
    return fs::is_directory(dir) ? dir : std::string();
}

std::vector<std::string> conformance_models(const std::string& file) {
    std::vector<std::string> names = {"llama_gqa", "llama_mha", "llama_mla", "llama_mqa",
                                      "t6",        "t6_kvonly", "t6_rank1"};
    const std::string root = shared_dir();
    if (!root.empty() && fs::is_directory(root + "/conformance"))
        for (const auto& e : fs::directory_iterator(root + "/conformance"))
            if (fs::exists(e.path() / file)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

bool ci_mode() {
    const char* env = std::getenv("CI");
    if (env == nullptr) return false;
    const std::string v = env;
    return !(v.empty() || v == "0" || v == "false");
}

TempDir::TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "t6test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
}

double rel_error(const float* a, const float* b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = double(a[i]) - double(b[i]);
        num += d * d;
        den += double(b[i]) * double(b[i]);
    }
    if (den == 0) return std::sqrt(num);
    return std::sqrt(num / den);
}

double max_abs_diff(const float* a, const float* b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
    return m;
}

CommandResult run_command(const std::string& cmd) {
    TempDir tmp;
    const std::string out = tmp.file("stdout"), err = tmp.file("stderr");
    int rc = std::system(("( " + cmd + " ) >" + out + " 2>" + err + " </dev/null").c_str());
    CommandResult r;
    r.status = (rc != -1 && WIFEXITED(rc)) ? WEXITSTATUS(rc) : -1;
    auto slurp = [](const std::string& path) {
        std::ifstream f(path, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    };
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

std::vector<float> random_vector(size_t n, unsigned seed, float scale) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

}  // namespace t6::test
