// Real spherical harmonics of unit vectors in e3nn's basis, forward only (liequiv.o3.harmonics calls this through
// ctypes when no gradient is needed; the math is in harmonics.py's docstring). With (X, Y, Z) = (z, x, y)/|v|:
//   Y_{l,0} = f_{l0} q_l^0(Z),  Y_{l,m} = f_{lm} q_l^m(Z) Re (X + iY)^m,  Y_{l,-m} = f_{lm} q_l^m(Z) Im (X + iY)^m,
// with q_l^m the three-term recurrence in l of harmonics._legendre_q and f the normalization of each (l, |m|).
// Points run in blocks of B through short loops over the block (vectorized by the compiler); each block is
// transposed into the row-major output [N, (L+1)^2] by simd.h (register tiles, non-temporal stores for outputs larger
// than the caches).
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "simd.h"

namespace {

constexpr int B = 32;  // points per block

// FIXED >= 0: lmax known at compile time (the loops of low degrees unroll); -1: lmax given at run time.
template <typename T, int FIXED>
void harmonics(const T* v, T* out, int64_t n, int lmax_arg, const double* scale, int n_threads) {
  const int lmax = FIXED >= 0 ? FIXED : lmax_arg;
  const int K = (lmax + 1) * (lmax + 1);
  // recurrence constants a_lk, b_lk and output factors f_lk, flat [l][k]
  std::vector<T> ra((lmax + 1) * (lmax + 1)), rb((lmax + 1) * (lmax + 1)), f((lmax + 1) * (lmax + 1));
  std::vector<T> diag(lmax + 1), first(lmax + 1);
  double d = 1.0;
  for (int k = 0; k <= lmax; ++k) {
    if (k > 0) d *= std::sqrt((2.0 * k - 1) / (2.0 * k));
    diag[k] = T(d);
    first[k] = T(std::sqrt(2.0 * k + 1) * d);
    for (int l = k; l <= lmax; ++l) {
      const double lk = double(l - k) * (l + k);
      ra[l * (lmax + 1) + k] = l >= k + 2 ? T((2.0 * l - 1) / std::sqrt(lk)) : T(0);
      rb[l * (lmax + 1) + k] = l >= k + 2 ? T(std::sqrt((l + k - 1.0) * (l - k - 1.0) / lk)) : T(0);
      f[l * (lmax + 1) + k] = T(scale[l] * std::sqrt((2.0 * l + 1) * (k == 0 ? 1.0 : 2.0)));
    }
  }
  const int64_t blocks = (n + B - 1) / B;
  const bool stream = n * K * int64_t(sizeof(T)) > (int64_t(8) << 20);  // smaller outputs stay in the caches
  const T tiny = std::numeric_limits<T>::min();
#pragma omp parallel num_threads(n_threads)
  {
  std::vector<T> tmp(size_t(K) * B);  // [K][B], the block's output before the transpose
  std::vector<T> rows(size_t(K) * B);  // [B][K], the same transposed
#pragma omp for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t n0 = blk * B;
    const int nb = int(n - n0 < B ? n - n0 : B);
    alignas(64) T X[B], Y[B], Z[B], mu[B], C[B], S[B], q0[B], q1[B], q2[B];
    for (int b = 0; b < B; ++b) {
      const int64_t i = 3 * (n0 + (b < nb ? b : 0));
      X[b] = v[i + 2];
      Y[b] = v[i];
      Z[b] = v[i + 1];
    }
    for (int b = 0; b < B; ++b) {
      const T x = Y[b], y = Z[b], z = X[b];
      const T r2 = x * x + y * y + z * z;
      const bool nonzero = r2 > tiny;
      const T inv = nonzero ? T(1) / std::sqrt(r2) : T(0);
      X[b] = z * inv;
      Y[b] = x * inv;
      Z[b] = y * inv;
      mu[b] = nonzero ? T(1) : T(0);
      C[b] = T(1);
      S[b] = T(0);
    }
    for (int k = 0; k <= lmax; ++k) {
      if (k > 0) {
        for (int b = 0; b < B; ++b) {
          const T c = X[b] * C[b] - Y[b] * S[b];
          S[b] = X[b] * S[b] + Y[b] * C[b];
          C[b] = c;
        }
      }
      // degree l = k, then k + 1, then the recurrence; store f q Re/Im (X + iY)^k
      T* q_prev = q0;
      T* q_cur = q1;
      T* q_next = q2;
      for (int b = 0; b < B; ++b) q_cur[b] = diag[k];
      for (int l = k; l <= lmax; ++l) {
        if (l == k + 1) {
          for (int b = 0; b < B; ++b) {
            q_prev[b] = q_cur[b];
            q_cur[b] = first[k] * Z[b];
          }
        } else if (l >= k + 2) {
          const T a = ra[l * (lmax + 1) + k], c = rb[l * (lmax + 1) + k];
          for (int b = 0; b < B; ++b) q_next[b] = a * Z[b] * q_cur[b] - c * q_prev[b];
          T* t = q_prev;
          q_prev = q_cur;
          q_cur = q_next;
          q_next = t;
        }
        const T fl = f[l * (lmax + 1) + k];
        T* pos = &tmp[size_t(l * l + l + k) * B];
        if (k == 0) {
          if (l == 0) {
            for (int b = 0; b < B; ++b) pos[b] = fl;
          } else {
            for (int b = 0; b < B; ++b) pos[b] = fl * q_cur[b] * mu[b];
          }
        } else {
          T* neg = &tmp[size_t(l * l + l - k) * B];
          for (int b = 0; b < B; ++b) {
            const T p = fl * q_cur[b];
            pos[b] = p * C[b];
            neg[b] = p * S[b];
          }
        }
      }
    }
    simd::store_block<B>(tmp.data(), K, nb, rows.data(), out + n0 * K, stream);
  }
  simd::fence();
  }
}

template <typename T>
void dispatch(const T* v, T* out, int64_t n, int lmax, const double* scale, int n_threads) {
  switch (lmax) {
    case 0: return harmonics<T, 0>(v, out, n, lmax, scale, n_threads);
    case 1: return harmonics<T, 1>(v, out, n, lmax, scale, n_threads);
    case 2: return harmonics<T, 2>(v, out, n, lmax, scale, n_threads);
    case 3: return harmonics<T, 3>(v, out, n, lmax, scale, n_threads);
    case 4: return harmonics<T, 4>(v, out, n, lmax, scale, n_threads);
    default: return harmonics<T, -1>(v, out, n, lmax, scale, n_threads);
  }
}

}  // namespace

extern "C" {
void harmonics_f32(const float* v, float* out, int64_t n, int lmax, const double* scale, int n_threads) {
  dispatch<float>(v, out, n, lmax, scale, n_threads);
}
void harmonics_f64(const double* v, double* out, int64_t n, int lmax, const double* scale, int n_threads) {
  dispatch<double>(v, out, n, lmax, scale, n_threads);
}
}
