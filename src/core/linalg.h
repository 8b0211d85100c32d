// Small dense linear algebra in double precision for offline fitting (t6 convert): a Cholesky
// solve of a symmetric positive definite system and the eigen-decomposition of a small symmetric
// matrix. Row-major, no library needed; sizes up to a few thousand (O(n^3), single pass).
#pragma once
#include <vector>

namespace t6 {

// Solves G X = Rhs in place: G (n x n, symmetric positive definite, overwritten by its Cholesky
// factor), Rhs (n x m, row-major: Rhs[i*m + j]) replaced by X. Returns false when G is not
// positive definite (a pivot <= 0); Rhs is then unspecified.
bool cholesky_solve(std::vector<double>& G, int n, std::vector<double>& Rhs, int m);

// Eigen-decomposition of a symmetric n x n matrix S (row-major) by cyclic Jacobi rotations:
// returns the eigenvalues in descending order and the matching unit eigenvectors as the columns
// of V (n x n, row-major: V[i*n + k] is component i of eigenvector k).
std::vector<double> symmetric_eigen(std::vector<double> S, int n, std::vector<double>& V);

}  // namespace t6
