// The Gaunt product on the exact quadrature grid (liequiv.o3.gaunt.grid_product_by_m), for the CPU, through ctypes.
// For signals given by m (layout [M = 2L+1][L+1], zero where l < |m|) and tables lam [M][L+1][nb], phi [M][na]:
//   values   f(β_b, α_a) = Σ_m phi[m][a] Σ_l lam[m][l][b] x[m][l]                      (x and y, tables tx, ty)
//   output   out[m][l]   = Σ_b to[m][l][b] Σ_a phi_o[m][a] f_x(β_b, α_a) f_y(β_b, α_a)     (table to)
// The forward uses (lam1, lam2, lam_back3); the gradients are the same operation with the tables permuted (see
// gaunt.py), so this one kernel serves every order of derivative. W signals run in the lanes of one vector (GCC
// vector extensions: one or two AVX-512 registers); a block's whole grid stays in cache, so only the inputs and the
// output touch memory.
#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

constexpr int W = 16;  // signals per block (lanes)

template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  typedef float type __attribute__((vector_size(W * sizeof(float))));
};
template <>
struct Lanes<double> {
  typedef double type __attribute__((vector_size(W * sizeof(double))));
};

struct Signal {
  const void* data;  // [rows][M][L+1]
  int64_t rep;       // signal r reads row r / rep (rep > 1: one row shared by rep consecutive signals)
  int L;
  const void* lam;  // [M][L+1][nb]
  const void* phi;  // [M][na]
};

// y[i * sy] (=, or *= when multiply) Σ_j A[i * si + j * sj] x[j * sx] for i < rows, j < cols: four rows at a time,
// so that four independent chains of multiply-adds are in flight and each x[j] is loaded once for them.
template <typename T, typename V>
void matvec(const T* A, int si, int sj, int rows, int cols, const V* x, int sx, V* y, int sy, bool multiply) {
  int i = 0;
  for (; i + 4 <= rows; i += 4) {
    V a0 = {}, a1 = {}, a2 = {}, a3 = {};
    const T* r = A + i * si;
    for (int j = 0; j < cols; ++j) {
      const V v = x[j * sx];
      const T* c = r + j * sj;
      a0 += c[0] * v;
      a1 += c[si] * v;
      a2 += c[2 * si] * v;
      a3 += c[3 * si] * v;
    }
    V* o = y + i * sy;
    if (multiply) {
      o[0] *= a0, o[sy] *= a1, o[2 * sy] *= a2, o[3 * sy] *= a3;
    } else {
      o[0] = a0, o[sy] = a1, o[2 * sy] = a2, o[3 * sy] = a3;
    }
  }
  for (; i < rows; ++i) {
    V a = {};
    for (int j = 0; j < cols; ++j) a += A[i * si + j * sj] * x[j * sx];
    y[i * sy] = multiply ? y[i * sy] * a : a;
  }
}

template <typename T>
struct Block {
  using V = typename Lanes<T>::type;
  int nb, na;
  std::vector<V> coef, g, f;  // [M][L+1], [nb][M], [nb][na] of W lanes

  Block(int nb_, int na_, int L)
      : nb(nb_), na(na_), coef(size_t(2 * L + 1) * (L + 1)), g(size_t(nb_) * (2 * L + 1)), f(size_t(nb_) * na_) {}

  // grid values of the W signals from row r0 of s into f, or multiplied into f
  void values(const Signal& s, int64_t r0, int64_t R, bool multiply) {
    const int L = s.L, M = 2 * L + 1, K = M * (L + 1);
    const T* lam = static_cast<const T*>(s.lam);
    const T* phi = static_cast<const T*>(s.phi);
    for (int w = 0; w < W; ++w) {
      const T* row = static_cast<const T*>(s.data) + (std::min(r0 + w, R - 1) / s.rep) * K;
      for (int k = 0; k < K; ++k) coef[k][w] = row[k];
    }
    for (int m = 0; m < M; ++m) {  // g[b][m] = Σ_l lam[m][l][b] coef[m][l], l >= |m|
      const int l0 = m < L ? L - m : m - L, k0 = m * (L + 1) + l0;
      matvec(lam + k0 * nb, 1, nb, nb, L + 1 - l0, coef.data() + k0, 1, g.data() + m, M, false);
    }
    for (int b = 0; b < nb; ++b)  // f[b][a] = Σ_m phi[m][a] g[b][m]
      matvec(phi, 1, na, na, M, g.data() + b * M, 1, f.data() + b * na, 1, multiply);
  }

  // project f on degrees <= L with the tables (to, phi) into the W output rows from r0
  void project(T* out, int L, const T* to, const T* phi, int64_t r0, int64_t R) {
    const int M = 2 * L + 1, K = M * (L + 1);
    for (int b = 0; b < nb; ++b)  // g[b][m] = Σ_a phi[m][a] f[b][a]
      matvec(phi, na, 1, M, na, f.data() + b * na, 1, g.data() + b * M, 1, false);
    for (int m = 0; m < M; ++m) {  // coef[m][l] = Σ_b to[m][l][b] g[b][m] for l >= |m|, 0 below
      const int l0 = m < L ? L - m : m - L, k0 = m * (L + 1) + l0;
      std::fill(coef.begin() + m * (L + 1), coef.begin() + k0, V{});
      matvec(to + k0 * nb, nb, 1, L + 1 - l0, nb, g.data() + m, M, coef.data() + k0, 1, false);
    }
    const int n = int(std::min<int64_t>(W, R - r0));
    for (int w = 0; w < n; ++w) {
      T* row = out + (r0 + w) * K;
      for (int k = 0; k < K; ++k) row[k] = coef[k][w];
    }
  }
};

template <typename T>
void grid_product(const Signal& x, const Signal& y, T* out, int64_t R, int Lo, const T* to, const T* phio, int nb,
                  int na, int n_threads) {
  const int64_t blocks = (R + W - 1) / W;
#pragma omp parallel num_threads(n_threads)
  {
    Block<T> blk(nb, na, std::max({x.L, y.L, Lo}));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < blocks; ++i) {
      blk.values(x, i * W, R, false);
      blk.values(y, i * W, R, true);
      blk.project(out, Lo, to, phio, i * W, R);
    }
  }
}

}  // namespace

// x, y: [rows][2L+1][L+1] by m; out: [R][2Lo+1][Lo+1]; tables in the signals' dtype.
#define GRID_PRODUCT(NAME, T)                                                                                       \
  extern "C" void NAME(const T* x, int64_t rep_x, int Lx, const T* tx, const T* phix, const T* y, int64_t rep_y,    \
                       int Ly, const T* ty, const T* phiy, T* out, int64_t R, int Lo, const T* to, const T* phio,   \
                       int nb, int na, int n_threads) {                                                            \
    grid_product<T>(Signal{x, rep_x, Lx, tx, phix}, Signal{y, rep_y, Ly, ty, phiy}, out, R, Lo, to, phio, nb, na, \
                    n_threads);                                                                                     \
  }
GRID_PRODUCT(grid_product_f32, float)
GRID_PRODUCT(grid_product_f64, double)
