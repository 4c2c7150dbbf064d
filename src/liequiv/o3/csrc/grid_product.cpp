// The Gaunt product on the exact quadrature grid (liequiv.o3.gaunt.grid_product_by_m), for the CPU, through ctypes.
// For signals given by m (layout [M = 2L+1][L+1], zero where l < |m|) and tables lam [M][L+1][nb], phi [M][na]:
//   values   f(β_b, α_a) = Σ_m phi[m][a] Σ_l lam[m][l][b] x[m][l]                      (x and y, tables tx, ty)
//   output   out[m][l]   = Σ_b to[m][l][b] Σ_a phi_o[m][a] f_x(β_b, α_a) f_y(β_b, α_a)     (table to)
// The forward uses (lam1, lam2, lam_back3); the gradients are the same operation with the tables permuted (see
// gaunt.py), so this one kernel serves every order of derivative. Signal r = z C + u (sample z, channel u) finds its
// coefficient k of an operand at column base[k] + u step[k] of row z (e3nn's layout, or a plain [.., M, L+1] one),
// times scale[k]; base[k] < 0 reads 0 and is not written. W signals run in the lanes of one vector (GCC
// vector extensions: one or two registers); a block's whole grid stays in cache, so only the inputs and the
// output touch memory.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "simd.h"

namespace {

// signals per block (lanes): one widest SIMD vector of float32 (16 with AVX-512, 8 with AVX, else 4); wider vectors
// spill
constexpr int W = simd::kVectorBytes / sizeof(float);

template <typename T>
using Lanes = simd::Vector<T, W>;

// v[w] = p[w * st] and p[w * st] = v[w] for the W lanes: AVX-512 gathers and scatters where available (AVX2's
// gathers measured slower than plain moves on Zen 3).
template <typename T, typename V>
inline V load_strided(const T* p, int64_t st) {
  V v;
#if defined(__AVX512F__)
  static_assert(W == 16);
  if (st < (int64_t(1) << 26)) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(int(st)));
    if constexpr (sizeof(T) == 4) {
      const __m512 g = _mm512_i32gather_ps(idx, p, 4);
      std::memcpy(&v, &g, sizeof(g));
    } else {
      const __m512d lo = _mm512_i32gather_pd(_mm512_castsi512_si256(idx), p, 8);
      const __m512d hi = _mm512_i32gather_pd(_mm512_extracti64x4_epi64(idx, 1), p, 8);
      std::memcpy(&v, &lo, sizeof(lo));
      std::memcpy(reinterpret_cast<char*>(&v) + sizeof(lo), &hi, sizeof(hi));
    }
    return v;
  }
#endif
  for (int w = 0; w < W; ++w) v[w] = p[w * st];
  return v;
}

template <typename T, typename V>
inline void store_strided(T* p, int64_t st, const V& v) {
#if defined(__AVX512F__)
  if (st < (int64_t(1) << 26)) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(int(st)));
    if constexpr (sizeof(T) == 4) {
      __m512 g;
      std::memcpy(&g, &v, sizeof(g));
      _mm512_i32scatter_ps(p, idx, g, 4);
    } else {
      __m512d lo, hi;
      std::memcpy(&lo, &v, sizeof(lo));
      std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof(lo), sizeof(hi));
      _mm512_i32scatter_pd(p, _mm512_castsi512_si256(idx), lo, 8);
      _mm512_i32scatter_pd(p, _mm512_extracti64x4_epi64(idx, 1), hi, 8);
    }
    return;
  }
#endif
  for (int w = 0; w < W; ++w) p[w * st] = v[w];
}

// One operand; P is const T for the inputs, T for the output (written).
template <typename T, typename P = const T>
struct Operand {
  P* data;  // [Z][D]
  int64_t D;
  const int32_t* base;  // [K], K = (2L+1)(L+1) by m
  const int32_t* step;  // [K]
  const T* scale;       // [K]
  int L;
  const T* table;  // [M][L+1][nb]: lam (values) or lam_back (projection)
  const T* phi;    // [M][na]
};

// Rows i0 .. i0 + N - 1 of matvec below: N independent chains of multiply-adds, each x[j] loaded once for all. The
// chains start from the first term (cols >= 1): a zeroed start compiles to a memset, slow to start for 128 bytes.
template <int N, typename T, typename V>
inline void matvec_rows(const T* A, int si, int sj, int i0, int cols, const V* x, int sx, V* y, int sy, bool multiply) {
  V acc[N];
  const T* r = A + i0 * si;
  for (int n = 0; n < N; ++n) acc[n] = r[n * si] * x[0];
  for (int j = 1; j < cols; ++j) {
    const V v = x[j * sx];
    for (int n = 0; n < N; ++n) acc[n] += r[j * sj + n * si] * v;
  }
  for (int n = 0; n < N; ++n) {
    V& o = y[(i0 + n) * sy];
    o = multiply ? o * acc[n] : acc[n];
  }
}

// y[i * sy] (=, or *= when multiply) Σ_j A[i * si + j * sj] x[j * sx] for i < rows, j < cols (>= 1), eight rows at a
// time (eight chains hide the latency of the multiply-adds).
template <typename T, typename V>
void matvec(const T* A, int si, int sj, int rows, int cols, const V* x, int sx, V* y, int sy, bool multiply) {
  int i = 0;
  for (; i + 8 <= rows; i += 8) matvec_rows<8>(A, si, sj, i, cols, x, sx, y, sy, multiply);
  switch (rows - i) {
    case 7: return matvec_rows<7>(A, si, sj, i, cols, x, sx, y, sy, multiply);
    case 6: return matvec_rows<6>(A, si, sj, i, cols, x, sx, y, sy, multiply);
    case 5: return matvec_rows<5>(A, si, sj, i, cols, x, sx, y, sy, multiply);
    case 4: return matvec_rows<4>(A, si, sj, i, cols, x, sx, y, sy, multiply);
    case 3: return matvec_rows<3>(A, si, sj, i, cols, x, sx, y, sy, multiply);
    case 2: return matvec_rows<2>(A, si, sj, i, cols, x, sx, y, sy, multiply);
    case 1: return matvec_rows<1>(A, si, sj, i, cols, x, sx, y, sy, multiply);
    default: return;
  }
}

template <typename T>
struct Block {
  using V = typename Lanes<T>::type;
  int nb, na;
  std::vector<V> coef, g, f, even, odd;  // [M][L+1], [nb][M], [nb][na], [na/2 + 1] twice, of W lanes

  Block(int nb_, int na_, int L)
      : nb(nb_), na(na_), coef(size_t(2 * L + 1) * (L + 1)), g(size_t(nb_) * (2 * L + 1)), f(size_t(nb_) * na_),
        even(na_ / 2 + 1), odd(na_ / 2 + 1) {}

  // the sample z and channel u of the W signals r0.. (the last one repeated past R); contiguous: one sample, W
  // consecutive channels (then lane w of coefficient k sits at a fixed stride from lane 0)
  int64_t z[W], u[W];
  bool contiguous;
  void lanes(int64_t r0, int64_t R, int64_t C) {
    int64_t zi = r0 / C, ui = r0 % C;
    for (int w = 0; w < W; ++w) {
      z[w] = zi, u[w] = ui;
      if (r0 + w + 1 < R && ++ui == C) ui = 0, ++zi;
    }
    contiguous = z[0] == z[W - 1] && u[W - 1] == u[0] + W - 1;
  }

  // grid values of the W signals of lanes() from s into f, or multiplied into f
  void values(const Operand<T>& s, bool multiply) {
    const int L = s.L, M = 2 * L + 1, K = M * (L + 1);
    const T* lam = s.table;
    const T* phi = s.phi;
    for (int k = 0; k < K; ++k) {
      V v = {};
      if (s.base[k] >= 0) {
        const int64_t st = s.step[k];
        const T* p = s.data + s.base[k];
        if (contiguous) {
          v = load_strided<T, V>(p + z[0] * s.D + u[0] * st, st);
        } else {
          for (int w = 0; w < W; ++w) v[w] = p[z[w] * s.D + u[w] * st];
        }
        v *= s.scale[k];
      }
      coef[k] = v;
    }
    for (int m = 0; m < M; ++m) {  // g[b][m] = Σ_l lam[m][l][b] coef[m][l], l >= |m|
      const int l0 = m < L ? L - m : m - L, k0 = m * (L + 1) + l0;
      matvec(lam + k0 * nb, 1, nb, nb, L + 1 - l0, coef.data() + k0, 1, g.data() + m, M, false);
    }
    // f[b][a] = Σ_m phi[m][a] g[b][m] by the symmetry α -> 2π - α of the grid: cos(mα) is even, sin(|m|α) odd,
    // so the even part E (m >= 0) and the odd part O (m < 0) at a <= na/2 give f = E ± O at a and na - a.
    const int h = na / 2;
    for (int b = 0; b < nb; ++b) {
      matvec(phi + L * na, 1, na, h + 1, L + 1, g.data() + b * M + L, 1, even.data(), 1, false);
      if (L > 0) matvec(phi, 1, na, h + 1, L, g.data() + b * M, 1, odd.data(), 1, false);
      V* fb = f.data() + b * na;
      for (int a = 0; a <= h; ++a) {
        const V e = even[a], o = L > 0 ? odd[a] : V{};
        const int p = a == 0 ? 0 : na - a;
        fb[a] = multiply ? fb[a] * (e + o) : e + o;
        if (p != a) fb[p] = multiply ? fb[p] * (e - o) : e - o;
      }
    }
  }

  // project f on degrees <= L with the tables of o into the output of the signals r0.. (R in all) of lanes()
  void project(const Operand<T, T>& o, int64_t r0, int64_t R) {
    const int L = o.L, M = 2 * L + 1, K = M * (L + 1);
    const T* to = o.table;
    const T* phi = o.phi;
    // g[b][m] = Σ_a phi[m][a] f[b][a], by the same symmetry: the sums S and differences D of f at a and na - a
    const int h = na / 2;
    for (int b = 0; b < nb; ++b) {
      const V* fb = f.data() + b * na;
      for (int a = 0; a <= h; ++a) {
        const int p = a == 0 ? 0 : na - a;
        even[a] = p != a ? fb[a] + fb[p] : fb[a];
        odd[a] = p != a ? fb[a] - fb[p] : V{};
      }
      matvec(phi + L * na, na, 1, L + 1, h + 1, even.data(), 1, g.data() + b * M + L, 1, false);
      matvec(phi, na, 1, L, h + 1, odd.data(), 1, g.data() + b * M, 1, false);
    }
    for (int m = 0; m < M; ++m) {  // coef[m][l] = Σ_b to[m][l][b] g[b][m] for l >= |m|, 0 below
      const int l0 = m < L ? L - m : m - L, k0 = m * (L + 1) + l0;
      std::fill(coef.begin() + m * (L + 1), coef.begin() + k0, V{});
      matvec(to + k0 * nb, nb, 1, L + 1 - l0, nb, g.data() + m, M, coef.data() + k0, 1, false);
    }
    const int n = int(std::min<int64_t>(W, R - r0));
    for (int k = 0; k < K; ++k) {
      if (o.base[k] < 0) continue;
      const V v = coef[k] * o.scale[k];
      const int64_t st = o.step[k];
      T* p = o.data + o.base[k];
      if (contiguous) {
        store_strided<T, V>(p + z[0] * o.D + u[0] * st, st, v);
      } else {
        for (int w = 0; w < n; ++w) p[z[w] * o.D + u[w] * st] = v[w];
      }
    }
  }
};

template <typename T>
void grid_product(const Operand<T>& x, const Operand<T>& y, const Operand<T, T>& o, int64_t Z, int64_t C, int nb,
                  int na, int n_threads) {
  const int64_t R = Z * C, blocks = (R + W - 1) / W;
#pragma omp parallel num_threads(n_threads)
  {
    Block<T> blk(nb, na, std::max({x.L, y.L, o.L}));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < blocks; ++i) {
      blk.lanes(i * W, R, C);
      blk.values(x, false);
      blk.values(y, true);
      blk.project(o, i * W, R);
    }
  }
}

}  // namespace

// x, y are read, out is written; Z samples of C signals each; the grid has nb x na points. Each operand comes as the
// fields of Operand, flat: data, D, base, step, scale, L, table, phi.
#define GRID_PRODUCT_OPERAND(P, T, a)                                                                                  \
  P* a, int64_t a##_D, const int32_t* a##_base, const int32_t* a##_step, const T* a##_scale, int a##_L,              \
      const T* a##_table, const T* a##_phi
#define GRID_PRODUCT_FIELDS(a) {a, a##_D, a##_base, a##_step, a##_scale, a##_L, a##_table, a##_phi}
#define GRID_PRODUCT_API(T, SUFFIX)                                                                                    \
  void grid_product_##SUFFIX(GRID_PRODUCT_OPERAND(const T, T, x), GRID_PRODUCT_OPERAND(const T, T, y),               \
                             GRID_PRODUCT_OPERAND(T, T, out), int64_t Z, int64_t C, int nb, int na, int n_threads) { \
    grid_product<T>(GRID_PRODUCT_FIELDS(x), GRID_PRODUCT_FIELDS(y), GRID_PRODUCT_FIELDS(out), Z, C, nb, na,          \
                    n_threads);                                                                                        \
  }

extern "C" {
GRID_PRODUCT_API(float, f32)
GRID_PRODUCT_API(double, f64)
}
