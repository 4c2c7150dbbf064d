// Real spherical harmonics of unit vectors in e3nn's basis, forward only (liequiv.o3.harmonics calls this through
// ctypes when no gradient is needed; the math is in harmonics.py's docstring). With (X, Y, Z) = (z, x, y)/|v|:
//   Y_{l,0} = f_{l0} q_l^0(Z),  Y_{l,m} = f_{lm} q_l^m(Z) Re (X + iY)^m,  Y_{l,-m} = f_{lm} q_l^m(Z) Im (X + iY)^m,
// with q_l^m the three-term recurrence in l of harmonics._legendre_q and f the normalization of each (l, |m|).
// Points run in blocks of B through short loops over the block (vectorized by the compiler); each block is
// transposed (16 x 16 register tiles where AVX-512 has them) into a buffer in the cache and streamed into the
// row-major output [N, (L+1)^2] with non-temporal stores.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace {

constexpr int B = 32;  // points per block

// Copy n values to dst, with non-temporal stores where stream and dst is 64-byte aligned (an output larger than the
// caches is written once: streaming it skips the read-for-ownership of every cache line).
template <typename T>
void stream_copy(T* dst, const T* src, int64_t n, bool stream) {
#if defined(__AVX512F__)
  if (stream && reinterpret_cast<uintptr_t>(dst) % 64 == 0) {
    const int64_t w = 64 / sizeof(T), full = n / w * w;
    for (int64_t i = 0; i < full; i += w)
      _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), _mm512_loadu_si512(src + i));
    for (int64_t i = full; i < n; ++i) dst[i] = src[i];
    return;
  }
#elif defined(__AVX__)
  if (stream && reinterpret_cast<uintptr_t>(dst) % 32 == 0) {
    const int64_t w = 32 / sizeof(T), full = n / w * w;
    for (int64_t i = 0; i < full; i += w)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i),
                          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    for (int64_t i = full; i < n; ++i) dst[i] = src[i];
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

// Transpose the block tmp [K16][B] (nb points; rows K.. K16 - 1 are padding) into rows out [nb][K]: 16 x 16 tiles
// transposed in registers where AVX-512 has them (float32, a full block; the last tile's rows stored masked), else
// element by element.
template <typename T>
void store_rows(const T* tmp, T* out, int K, int nb) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) {
    if (nb == B) {
      for (int k0 = 0; k0 < K; k0 += 16) {
        const bool full = K - k0 >= 16;
        const __mmask16 keep = full ? __mmask16(0xFFFF) : __mmask16((1u << (K - k0)) - 1);
        for (int b0 = 0; b0 < B; b0 += 16) {
          __m512 r[16], t[16];
          for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(tmp + size_t(k0 + i) * B + b0);
          // rows i = k, columns = points: after the two unpack stages, r[4 j + q] holds, in each 128-bit lane c,
          // the column 4 c + q of the rows 4 j .. 4 j + 3
          for (int i = 0; i < 16; i += 2) {
            t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
            t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
          }
          for (int i = 0; i < 16; i += 4) {
            for (int h = 0; h < 2; ++h) {
              const __m512d lo = _mm512_castps_pd(t[i + h]), hi = _mm512_castps_pd(t[i + h + 2]);
              r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo, hi));
              r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo, hi));
            }
          }
          // column c = 4 lane + q: lane `lane` of r[q], r[4 + q], r[8 + q], r[12 + q]
          for (int q = 0; q < 4; ++q) {
            const __m512 a01 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x44);
            const __m512 b01 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x44);
            const __m512 a23 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xEE);
            const __m512 b23 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xEE);
            T* o = out + size_t(b0 + q) * K + k0;
            const __m512 c[4] = {_mm512_shuffle_f32x4(a01, b01, 0x88), _mm512_shuffle_f32x4(a01, b01, 0xDD),
                                 _mm512_shuffle_f32x4(a23, b23, 0x88), _mm512_shuffle_f32x4(a23, b23, 0xDD)};
            for (int j = 0; j < 4; ++j) {
              if (full) {
                _mm512_storeu_ps(o + 4 * j * K, c[j]);
              } else {
                _mm512_mask_storeu_ps(o + 4 * j * K, keep, c[j]);
              }
            }
          }
        }
      }
      return;
    }
  }
#endif
  for (int b = 0; b < nb; ++b)
    for (int j = 0; j < K; ++j) out[size_t(b) * K + j] = tmp[size_t(j) * B + b];
}

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
  std::vector<T> tmp(size_t(K + 15) / 16 * 16 * B);  // [K][B], the block's output before the transpose (padded)
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
    store_rows(tmp.data(), rows.data(), K, nb);
    stream_copy(out + n0 * K, rows.data(), int64_t(nb) * K, stream);
  }
  }
#if defined(__SSE2__)
  _mm_sfence();
#endif
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
