// Real spherical harmonics of unit vectors in e3nn's basis and their gradient (liequiv.o3.harmonics calls these
// through ctypes; the math is in harmonics.py's docstring). With (X, Y, Z) = (z, x, y)/|v|:
//   Y_{l,0} = f_{l0} q_l^0(Z),  Y_{l,m} = f_{lm} q_l^m(Z) Re (X + iY)^m,  Y_{l,-m} = f_{lm} q_l^m(Z) Im (X + iY)^m,
// with q_l^m the three-term recurrence in l of harmonics._legendre_q and f the normalization of each (l, |m|).
// Points run in blocks of B through short loops over the block (vectorized by the compiler); blocks move between
// the row-major [N, (L+1)^2] layout and one vector per component by simd.h. The backward differentiates the same
// recurrences (dq/dZ, and d(X + iY)^m = m (X + iY)^(m-1) d(X + iY)) and projects out the radial direction.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "simd.h"

namespace {

constexpr int B = 32;  // points per block

// the constants of the recurrences, flat [l][k]: q_l^k = a Z q_{l-1}^k - b q_{l-2}^k, output factors f
template <typename T>
struct Recurrence {
  int lmax;
  std::vector<T> a, b, f, diag, first;  // q_k^k = diag[k], q_{k+1}^k = first[k] Z

  Recurrence(int lmax_, const double* scale)
      : lmax(lmax_), a((lmax_ + 1) * (lmax_ + 1)), b(a.size()), f(a.size()), diag(lmax_ + 1), first(lmax_ + 1) {
    double d = 1.0;
    for (int k = 0; k <= lmax; ++k) {
      if (k > 0) d *= std::sqrt((2.0 * k - 1) / (2.0 * k));
      diag[k] = T(d);
      first[k] = T(std::sqrt(2.0 * k + 1) * d);
      for (int l = k; l <= lmax; ++l) {
        const double lk = double(l - k) * (l + k);
        a[at(l, k)] = l >= k + 2 ? T((2.0 * l - 1) / std::sqrt(lk)) : T(0);
        b[at(l, k)] = l >= k + 2 ? T(std::sqrt((l + k - 1.0) * (l - k - 1.0) / lk)) : T(0);
        f[at(l, k)] = T(scale[l] * std::sqrt((2.0 * l + 1) * (k == 0 ? 1.0 : 2.0)));
      }
    }
  }
  int at(int l, int k) const { return l * (lmax + 1) + k; }
};

// (X, Y, Z) /= |.|, inv = 1/|.| and mu = 1, or all 0 at the origin
template <typename T>
void normalize(T* X, T* Y, T* Z, T* inv, T* mu) {
  const T tiny = std::numeric_limits<T>::min();
  for (int b = 0; b < B; ++b) {
    const T r2 = X[b] * X[b] + Y[b] * Y[b] + Z[b] * Z[b];
    const bool nonzero = r2 > tiny;
    inv[b] = nonzero ? T(1) / std::sqrt(r2) : T(0);
    X[b] *= inv[b];
    Y[b] *= inv[b];
    Z[b] *= inv[b];
    mu[b] = nonzero ? T(1) : T(0);
  }
}

#if defined(__AVX512F__)
// float32: the hardware estimate of 1/sqrt refined by one Newton step (within about an ulp, several times faster than
// a square root and a division)
template <>
void normalize<float>(float* X, float* Y, float* Z, float* inv, float* mu) {
  const __m512 tiny = _mm512_set1_ps(std::numeric_limits<float>::min());
  for (int b = 0; b < B; b += 16) {
    const __m512 x = _mm512_loadu_ps(X + b), y = _mm512_loadu_ps(Y + b), z = _mm512_loadu_ps(Z + b);
    const __m512 r2 = _mm512_fmadd_ps(x, x, _mm512_fmadd_ps(y, y, _mm512_mul_ps(z, z)));
    const __mmask16 nonzero = _mm512_cmp_ps_mask(r2, tiny, _CMP_GT_OQ);
    const __mmask16 finite = _mm512_cmp_ps_mask(r2, _mm512_set1_ps(std::numeric_limits<float>::infinity()), _CMP_LT_OQ);
    __m512 e = _mm512_rsqrt14_ps(r2);
    const __m512 half_r2 = _mm512_mul_ps(_mm512_set1_ps(0.5f), r2);
    e = _mm512_mul_ps(e, _mm512_fnmadd_ps(half_r2, _mm512_mul_ps(e, e), _mm512_set1_ps(1.5f)));
    e = _mm512_maskz_mov_ps(nonzero & finite, e);  // 1/sqrt(inf) = 0, as in the exact version
    _mm512_storeu_ps(inv + b, e);
    _mm512_storeu_ps(X + b, _mm512_mul_ps(x, e));
    _mm512_storeu_ps(Y + b, _mm512_mul_ps(y, e));
    _mm512_storeu_ps(Z + b, _mm512_mul_ps(z, e));
    _mm512_storeu_ps(mu + b, _mm512_maskz_mov_ps(nonzero, _mm512_set1_ps(1.0f)));
  }
}
#elif defined(__AVX2__) && defined(__FMA__)
// float32 as above with AVX2: the 12-bit estimate, so one Newton step leaves about two ulp
template <>
void normalize<float>(float* X, float* Y, float* Z, float* inv, float* mu) {
  const __m256 tiny = _mm256_set1_ps(std::numeric_limits<float>::min());
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  for (int b = 0; b < B; b += 8) {
    const __m256 x = _mm256_loadu_ps(X + b), y = _mm256_loadu_ps(Y + b), z = _mm256_loadu_ps(Z + b);
    const __m256 r2 = _mm256_fmadd_ps(x, x, _mm256_fmadd_ps(y, y, _mm256_mul_ps(z, z)));
    const __m256 nonzero = _mm256_cmp_ps(r2, tiny, _CMP_GT_OQ);
    const __m256 finite = _mm256_cmp_ps(r2, inf, _CMP_LT_OQ);
    __m256 e = _mm256_rsqrt_ps(r2);
    const __m256 half_r2 = _mm256_mul_ps(_mm256_set1_ps(0.5f), r2);
    e = _mm256_mul_ps(e, _mm256_fnmadd_ps(half_r2, _mm256_mul_ps(e, e), _mm256_set1_ps(1.5f)));
    e = _mm256_and_ps(_mm256_and_ps(nonzero, finite), e);
    _mm256_storeu_ps(inv + b, e);
    _mm256_storeu_ps(X + b, _mm256_mul_ps(x, e));
    _mm256_storeu_ps(Y + b, _mm256_mul_ps(y, e));
    _mm256_storeu_ps(Z + b, _mm256_mul_ps(z, e));
    _mm256_storeu_ps(mu + b, _mm256_and_ps(nonzero, _mm256_set1_ps(1.0f)));
  }
}
#endif

// the block's unit vectors (X, Y, Z) = (z, x, y)/|v|, 1/|v| and μ; at the origin (|v|² below the smallest normal
// number) all are 0, which makes every output of degree >= 1 and every gradient 0 there
template <typename T>
void unit_block(const T* v, int64_t n0, int nb, T* X, T* Y, T* Z, T* inv, T* mu) {
  simd::deinterleave3(v + 3 * n0, nb, Y, Z, X);
  for (int b = nb; b < B; ++b) X[b] = X[0], Y[b] = Y[0], Z[b] = Z[0];
  normalize(X, Y, Z, inv, mu);
}

// one step of (C, S) = Re, Im (X + iY)^k from k - 1, for a number or a vector of them
template <typename U>
inline void rotate(const U& X, const U& Y, U& C, U& S) {
  const U c = X * C - Y * S;
  S = X * S + Y * C;
  C = c;
}

// The block's outputs into tmp [K][B], from its unit vectors and μ [B]: N = B / kLanes vectors side by side, each step
// of the recurrences for all of them before the next (independent chains that overlap, values held in registers).
template <typename V, typename T>
inline void block_outputs(const Recurrence<T>& rec, int lmax, const T* Xa, const T* Ya, const T* Za, const T* mua,
                          T* tmp) {
  constexpr int kLanes = sizeof(V) / sizeof(T), N = B / kLanes;
  V X[N], Y[N], Z[N], mu[N], C[N], S[N], q[N], q_prev[N];
  for (int j = 0; j < N; ++j) {
    const int b = j * kLanes;
    X[j] = simd::load<V>(Xa + b), Y[j] = simd::load<V>(Ya + b), Z[j] = simd::load<V>(Za + b);
    mu[j] = simd::load<V>(mua + b);
    C[j] = X[j], S[j] = Y[j];  // Re, Im (X + iY)^k, from k = 1
  }
  for (int k = 0; k <= lmax; ++k) {
    for (int j = 0; j < N && k > 1; ++j) rotate(X[j], Y[j], C[j], S[j]);
    for (int j = 0; j < N; ++j) q[j] = V{} + rec.diag[k], q_prev[j] = V{};
    for (int l = k; l <= lmax; ++l) {  // q_l^k, then f q Re/Im (X + iY)^k at (l, ±k)
      const T a = rec.a[rec.at(l, k)], b = rec.b[rec.at(l, k)], f = rec.f[rec.at(l, k)];
      T* pos = tmp + size_t(l * l + l + k) * B;
      T* neg = tmp + size_t(l * l + l - k) * B;
      for (int j = 0; j < N; ++j) {
        if (l == k + 1) {
          q_prev[j] = q[j];
          q[j] = rec.first[k] * Z[j];
        } else if (l > k + 1) {
          const V q_next = a * Z[j] * q[j] - b * q_prev[j];
          q_prev[j] = q[j];
          q[j] = q_next;
        }
      }
      for (int j = 0; j < N; ++j) {
        const V p = f * q[j];
        if (k == 0) {
          simd::store(pos + j * kLanes, l == 0 ? p : p * mu[j]);
        } else {
          simd::store(pos + j * kLanes, p * C[j]);
          simd::store(neg + j * kLanes, p * S[j]);
        }
      }
    }
  }
}

// FIXED >= 0: lmax known at compile time (the loops of low degrees unroll); -1: lmax given at run time.
template <typename T, int FIXED>
void forward(const T* v, T* out, int64_t n, int lmax_arg, const double* scale, int n_threads) {
  const int lmax = FIXED >= 0 ? FIXED : lmax_arg;
  const int K = (lmax + 1) * (lmax + 1);
  const Recurrence<T> rec(lmax, scale);
  const int64_t blocks = (n + B - 1) / B;
  const bool stream = n * K * int64_t(sizeof(T)) > (int64_t(8) << 20);  // smaller outputs stay in the caches
  using V = typename simd::Vector<T, simd::kVectorBytes / sizeof(T)>::type;
#pragma omp parallel num_threads(n_threads)
  {
    std::vector<T> tmp(size_t(K) * B);   // [K][B], the block's output
    std::vector<T> rows(size_t(K) * B);  // [B][K], the same transposed
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * B;
      const int nb = int(n - n0 < B ? n - n0 : B);
      alignas(64) T Xa[B], Ya[B], Za[B], inv[B], mua[B];
      unit_block(v, n0, nb, Xa, Ya, Za, inv, mua);
      block_outputs<V>(rec, lmax, Xa, Ya, Za, mua, tmp.data());
      simd::store_block<B>(tmp.data(), K, nb, rows.data(), out + n0 * K, stream);
    }
    simd::fence();
  }
}

// grad_v [n, 3] = Σ_k g[n, k] dY_k/dv
template <typename T>
void backward(const T* v, const T* g, T* grad_v, int64_t n, int lmax, const double* scale, int n_threads) {
  const int K = (lmax + 1) * (lmax + 1);
  const Recurrence<T> rec(lmax, scale);
  const int64_t blocks = (n + B - 1) / B;
#pragma omp parallel num_threads(n_threads)
  {
    std::vector<T> gt(size_t(K) * B);  // [K][B], the block's cotangent
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * B;
      const int nb = int(n - n0 < B ? n - n0 : B);
      alignas(64) T X[B], Y[B], Z[B], inv[B], mu[B], C[B], S[B], Cp[B], Sp[B], q[3][B], dq[3][B];
      alignas(64) T gX[B], gY[B], gZ[B], sc[B], ss[B];
      unit_block(v, n0, nb, X, Y, Z, inv, mu);
      simd::load_block<B>(g + n0 * K, K, K, nb, gt.data());
      for (int b = 0; b < B; ++b) gX[b] = gY[b] = gZ[b] = T(0);
      for (int k = 0; k <= lmax; ++k) {
        if (k == 1) {
          for (int b = 0; b < B; ++b) C[b] = X[b], S[b] = Y[b];
        } else if (k > 1) {
          for (int b = 0; b < B; ++b) {
            Cp[b] = C[b], Sp[b] = S[b];
            rotate(X[b], Y[b], C[b], S[b]);
          }
        }
        // sc, ss = Σ_l f q g at (l, +k) and (l, -k): the factors of d(X + iY)^k; gZ takes f dq/dZ g directly
        for (int b = 0; b < B; ++b) sc[b] = T(0), ss[b] = T(0);
        T *q_prev = q[0], *q_cur = q[1], *q_next = q[2];
        T *d_prev = dq[0], *d_cur = dq[1], *d_next = dq[2];
        for (int l = k; l <= lmax; ++l) {
          if (l == k) {
            for (int b = 0; b < B; ++b) q_cur[b] = rec.diag[k], d_cur[b] = T(0);
          } else if (l == k + 1) {
            for (int b = 0; b < B; ++b) {
              q_prev[b] = q_cur[b], d_prev[b] = d_cur[b];
              q_cur[b] = rec.first[k] * Z[b], d_cur[b] = rec.first[k];
            }
          } else {
            const T a = rec.a[rec.at(l, k)], c = rec.b[rec.at(l, k)];
            for (int b = 0; b < B; ++b) {
              q_next[b] = a * Z[b] * q_cur[b] - c * q_prev[b];
              d_next[b] = a * (q_cur[b] + Z[b] * d_cur[b]) - c * d_prev[b];
            }
            T* t = q_prev;
            q_prev = q_cur, q_cur = q_next, q_next = t;
            t = d_prev;
            d_prev = d_cur, d_cur = d_next, d_next = t;
          }
          const T fl = rec.f[rec.at(l, k)];
          const T* gp = &gt[size_t(l * l + l + k) * B];
          if (k == 0) {
            for (int b = 0; b < B; ++b) gZ[b] += fl * d_cur[b] * mu[b] * gp[b];
          } else {
            const T* gn = &gt[size_t(l * l + l - k) * B];
            for (int b = 0; b < B; ++b) {
              const T p = fl * q_cur[b];
              sc[b] += p * gp[b];
              ss[b] += p * gn[b];
              gZ[b] += fl * d_cur[b] * (gp[b] * C[b] + gn[b] * S[b]);
            }
          }
        }
        if (k == 1) {  // dC_k = k (C_{k-1} dX - S_{k-1} dY), dS_k = k (S_{k-1} dX + C_{k-1} dY); C_0 = 1, S_0 = 0
          for (int b = 0; b < B; ++b) gX[b] += sc[b], gY[b] += ss[b];
        } else if (k > 1) {
          for (int b = 0; b < B; ++b) {
            gX[b] += T(k) * (sc[b] * Cp[b] + ss[b] * Sp[b]);
            gY[b] += T(k) * (ss[b] * Cp[b] - sc[b] * Sp[b]);
          }
        }
      }
      // through u = v / |v|: (g_u - u (u · g_u)) / |v|, in (x, y, z) = (Y, Z, X) order
      for (int b = 0; b < B; ++b) {
        const T dot = Y[b] * gY[b] + Z[b] * gZ[b] + X[b] * gX[b];
        gX[b] = (gX[b] - X[b] * dot) * inv[b];
        gY[b] = (gY[b] - Y[b] * dot) * inv[b];
        gZ[b] = (gZ[b] - Z[b] * dot) * inv[b];
      }
      simd::interleave3(gY, gZ, gX, nb, grad_v + 3 * n0);
    }
  }
}

template <typename T>
void dispatch(const T* v, T* out, int64_t n, int lmax, const double* scale, int n_threads) {
  switch (lmax) {
    case 0: return forward<T, 0>(v, out, n, lmax, scale, n_threads);
    case 1: return forward<T, 1>(v, out, n, lmax, scale, n_threads);
    case 2: return forward<T, 2>(v, out, n, lmax, scale, n_threads);
    case 3: return forward<T, 3>(v, out, n, lmax, scale, n_threads);
    case 4: return forward<T, 4>(v, out, n, lmax, scale, n_threads);
    default: return forward<T, -1>(v, out, n, lmax, scale, n_threads);
  }
}

}  // namespace

extern "C" {
void harmonics_forward_f32(const float* v, float* out, int64_t n, int lmax, const double* scale, int n_threads) {
  dispatch<float>(v, out, n, lmax, scale, n_threads);
}
void harmonics_forward_f64(const double* v, double* out, int64_t n, int lmax, const double* scale, int n_threads) {
  dispatch<double>(v, out, n, lmax, scale, n_threads);
}
void harmonics_backward_f32(const float* v, const float* g, float* grad_v, int64_t n, int lmax, const double* scale,
                            int n_threads) {
  backward<float>(v, g, grad_v, n, lmax, scale, n_threads);
}
void harmonics_backward_f64(const double* v, const double* g, double* grad_v, int64_t n, int lmax,
                            const double* scale, int n_threads) {
  backward<double>(v, g, grad_v, n, lmax, scale, n_threads);
}
}
