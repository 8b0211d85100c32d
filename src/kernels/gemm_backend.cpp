#include "kernels/gemm_backend.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>

#include "core/error.h"
#include "core/simd.h"

extern "C" {
char* openblas_get_corename(void);
}

namespace t6 {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

struct Choice {
    GemmBackend backend = GemmBackend::openblas;
    std::string reason;
};

Choice choose() {
    const char* core_c = openblas_get_corename();
    const std::string core = core_c ? core_c : "?";
    const char* env = std::getenv("T6_GEMM");
    const std::string want = env ? env : "";
    if (want == "openblas") return {GemmBackend::openblas, "T6_GEMM=openblas"};
    if (want == "onednn") return {GemmBackend::onednn, "T6_GEMM=onednn"};
    if (!want.empty() && want != "auto")
        fail("T6_GEMM: unknown GEMM backend '", want, "' (expected openblas, onednn or auto)");
    // The CPU's own features, not the T6_SIMD cap: the cap governs t6's Highway kernels only.
    const bool cpu_fma = simd_cpu_best() >= SimdTarget::avx2;
    const bool cpu_avx512 = simd_cpu_best() >= SimdTarget::avx512;
    const GemmBackend b = gemm_backend_auto(core, cpu_fma, cpu_avx512);
    if (b == GemmBackend::onednn && cpu_avx512)
        return {b, cat("CPU with AVX-512: oneDNN's sgemm is faster there than OpenBLAS's ", core,
                       " kernel")};
    if (b == GemmBackend::onednn)
        return {b, cat("OpenBLAS chose its ", core,
                       " kernel (no AVX2/FMA) on a CPU with AVX2+FMA; oneDNN picks by features")};
    return {b, cat("OpenBLAS kernel ", core, " suits this CPU")};
}

const Choice& choice() {
    static std::once_flag once;
    static Choice c;
    std::call_once(once, [] { c = choose(); });
    return c;
}

}  // namespace

const char* gemm_backend_name(GemmBackend b) {
    return b == GemmBackend::onednn ? "onednn" : "openblas";
}

bool openblas_core_has_fma(const std::string& core) {
    // OpenBLAS 0.3.x DYNAMIC_ARCH x86-64 cores with AVX2+FMA (Haswell, Zen, Excavator) or
    // AVX-512 (SkylakeX, Cooperlake, SapphireRapids) kernels.
    static const char* const kFma[] = {"haswell",  "zen",        "excavator",
                                       "skylakex", "cooperlake", "sapphirerapids"};
    const std::string c = lower(core);
    for (const char* k : kFma)
        if (c == k) return true;
    return false;
}

GemmBackend gemm_backend_auto(const std::string& openblas_core, bool cpu_has_avx2_fma,
                              bool cpu_has_avx512) {
    if (cpu_has_avx512) return GemmBackend::onednn;
    if (cpu_has_avx2_fma && !openblas_core_has_fma(openblas_core)) return GemmBackend::onednn;
    return GemmBackend::openblas;
}

GemmBackend gemm_backend() {
    return choice().backend;
}

std::string gemm_backend_reason() {
    return choice().reason;
}

}  // namespace t6
