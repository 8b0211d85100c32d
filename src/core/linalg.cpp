#include "core/linalg.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace t6 {

bool cholesky_solve(std::vector<double>& G, int n, std::vector<double>& Rhs, int m) {
    // G = L L^T, L stored in the lower triangle of G.
    for (int j = 0; j < n; j++) {
        double* gj = &G[size_t(j) * n];
        double d = gj[j];
        for (int k = 0; k < j; k++) d -= gj[k] * gj[k];
        if (!(d > 0)) return false;
        const double ljj = std::sqrt(d);
        gj[j] = ljj;
        for (int i = j + 1; i < n; i++) {
            double* gi = &G[size_t(i) * n];
            double s = gi[j];
            for (int k = 0; k < j; k++) s -= gi[k] * gj[k];
            gi[j] = s / ljj;
        }
    }
    // Forward: L Y = Rhs; backward: L^T X = Y (row-wise over the m right-hand sides).
    for (int i = 0; i < n; i++) {
        const double* gi = &G[size_t(i) * n];
        double* yi = &Rhs[size_t(i) * m];
        for (int k = 0; k < i; k++) {
            const double l = gi[k];
            const double* yk = &Rhs[size_t(k) * m];
            for (int j = 0; j < m; j++) yi[j] -= l * yk[j];
        }
        for (int j = 0; j < m; j++) yi[j] /= gi[i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double* xi = &Rhs[size_t(i) * m];
        for (int k = i + 1; k < n; k++) {
            const double l = G[size_t(k) * n + i];
            const double* xk = &Rhs[size_t(k) * m];
            for (int j = 0; j < m; j++) xi[j] -= l * xk[j];
        }
        const double lii = G[size_t(i) * n + i];
        for (int j = 0; j < m; j++) xi[j] /= lii;
    }
    return true;
}

std::vector<double> symmetric_eigen(std::vector<double> S, int n, std::vector<double>& V) {
    V.assign(size_t(n) * n, 0.0);
    for (int i = 0; i < n; i++) V[size_t(i) * n + i] = 1.0;
    auto at = [&](int i, int j) -> double& { return S[size_t(i) * n + j]; };
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, total = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) (i == j ? total : off) += at(i, j) * at(i, j);
        if (off <= 1e-30 * (total + off) || off == 0) break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                const double apq = at(p, q);
                if (apq == 0) continue;
                // The rotation that zeroes S[p][q] (Golub & Van Loan, symmetric Schur).
                const double tau = (at(q, q) - at(p, p)) / (2 * apq);
                const double t =
                    (tau >= 0 ? 1.0 : -1.0) / (std::fabs(tau) + std::sqrt(1 + tau * tau));
                const double c = 1 / std::sqrt(1 + t * t), s = t * c;
                for (int k = 0; k < n; k++) {  // S <- S J (columns p, q)
                    const double skp = at(k, p), skq = at(k, q);
                    at(k, p) = c * skp - s * skq;
                    at(k, q) = s * skp + c * skq;
                }
                for (int k = 0; k < n; k++) {  // S <- J^T S (rows p, q)
                    const double spk = at(p, k), sqk = at(q, k);
                    at(p, k) = c * spk - s * sqk;
                    at(q, k) = s * spk + c * sqk;
                }
                for (int k = 0; k < n; k++) {
                    double* vk = &V[size_t(k) * n];
                    const double vkp = vk[p], vkq = vk[q];
                    vk[p] = c * vkp - s * vkq;
                    vk[q] = s * vkp + c * vkq;
                }
            }
    }
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return at(a, a) > at(b, b); });
    std::vector<double> vals(n), Vs(size_t(n) * n);
    for (int k = 0; k < n; k++) {
        vals[k] = at(order[k], order[k]);
        for (int i = 0; i < n; i++) Vs[size_t(i) * n + k] = V[size_t(i) * n + order[k]];
    }
    V = std::move(Vs);
    return vals;
}

}  // namespace t6
