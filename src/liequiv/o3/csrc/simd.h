// Shared by the CPU kernels of liequiv.o3: a block of B samples is held as one SIMD vector per feature, [d][B], while
// e3nn's tensors are row-major [n][d]. These move blocks between the two layouts, in tiles transposed in registers
// (AVX-512, AVX, SSE; plain loops elsewhere), and write outputs larger than the caches with non-temporal stores.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <cstdint>
#include <cstring>

namespace simd {

#define SIMD_INLINE inline __attribute__((always_inline))

// bytes of the widest SIMD vector; a tile has one such vector per row
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;  // SSE2, NEON (plain loops)
#endif

// n values of T in one vector (GCC vector extensions; n * sizeof(T) = kVectorBytes is one register), and its moves
// to and from plain arrays
template <typename T, int n>
struct Vector {
  typedef T type __attribute__((vector_size(n * sizeof(T))));
};
template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename T, typename V>
inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// out[c][r] = in[r][c] for one R x R tile (plain loops; the sizes that fit one register per row are specialized below)
template <typename T, int R>
SIMD_INLINE void transpose_tile(const T* const* in, T* const* out) {
  for (int c = 0; c < R; ++c)
    for (int r = 0; r < R; ++r) out[c][r] = in[r][c];
}

#if defined(__AVX512F__)
struct Lanes32 {  // shuffles of 128-bit lanes
  template <int I>
  static __m512 shuffle(__m512 a, __m512 b) { return _mm512_shuffle_f32x4(a, b, I); }
};
struct Lanes64 {
  template <int I>
  static __m512d shuffle(__m512d a, __m512d b) { return _mm512_shuffle_f64x2(a, b, I); }
};

// 4 x 4 transpose of the 128-bit lanes of a, b, c, d (lane L of the k-th result: lane k of the L-th input)
template <typename S, typename V>
inline void transpose_lanes(V& a, V& b, V& c, V& d) {
  const V v0 = S::template shuffle<0x44>(a, b), v1 = S::template shuffle<0xEE>(a, b);
  const V v2 = S::template shuffle<0x44>(c, d), v3 = S::template shuffle<0xEE>(c, d);
  a = S::template shuffle<0x88>(v0, v2);
  b = S::template shuffle<0xDD>(v0, v2);
  c = S::template shuffle<0x88>(v1, v3);
  d = S::template shuffle<0xDD>(v1, v3);
}

template <>
SIMD_INLINE void transpose_tile<float, 16>(const float* const* in, float* const* out) {
  __m512 t[16], u[16];
  for (int r = 0; r < 16; r += 2) {  // t[r + h] lane L = rows r, r + 1 of columns 4L + 2h, 4L + 2h + 1
    const __m512 a = _mm512_loadu_ps(in[r]), b = _mm512_loadu_ps(in[r + 1]);
    t[r] = _mm512_unpacklo_ps(a, b);
    t[r + 1] = _mm512_unpackhi_ps(a, b);
  }
  for (int g = 0; g < 4; ++g)  // u[4g + c] lane L = rows 4g..4g+3 of column 4L + c
    for (int h = 0; h < 2; ++h) {
      const __m512d a = _mm512_castps_pd(t[4 * g + h]), b = _mm512_castps_pd(t[4 * g + 2 + h]);
      u[4 * g + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
      u[4 * g + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    }
  for (int c = 0; c < 4; ++c) {
    transpose_lanes<Lanes32>(u[c], u[4 + c], u[8 + c], u[12 + c]);
    for (int L = 0; L < 4; ++L) _mm512_storeu_ps(out[4 * L + c], u[4 * L + c]);
  }
}

template <>
SIMD_INLINE void transpose_tile<double, 8>(const double* const* in, double* const* out) {
  __m512d t[8];
  for (int r = 0; r < 8; r += 2) {  // t[r + c] lane L = rows r, r + 1 of column 2L + c
    const __m512d a = _mm512_loadu_pd(in[r]), b = _mm512_loadu_pd(in[r + 1]);
    t[r] = _mm512_unpacklo_pd(a, b);
    t[r + 1] = _mm512_unpackhi_pd(a, b);
  }
  for (int c = 0; c < 2; ++c) {
    transpose_lanes<Lanes64>(t[c], t[2 + c], t[4 + c], t[6 + c]);
    for (int L = 0; L < 4; ++L) _mm512_storeu_pd(out[2 * L + c], t[2 * L + c]);
  }
}
#endif

#if defined(__AVX__)
template <>
SIMD_INLINE void transpose_tile<float, 8>(const float* const* in, float* const* out) {
  __m256 t[8], s[8];
  for (int r = 0; r < 8; r += 2) {  // t[r + h] = rows r, r + 1 interleaved: columns 2h, 2h + 1 of each 128-bit half
    const __m256 a = _mm256_loadu_ps(in[r]), b = _mm256_loadu_ps(in[r + 1]);
    t[r] = _mm256_unpacklo_ps(a, b);
    t[r + 1] = _mm256_unpackhi_ps(a, b);
  }
  for (int g = 0; g < 8; g += 4)  // s[g + c] = rows g..g+3 of column c (low half) and c + 4 (high half)
    for (int h = 0; h < 2; ++h) {
      s[g + 2 * h] = _mm256_shuffle_ps(t[g + h], t[g + 2 + h], _MM_SHUFFLE(1, 0, 1, 0));
      s[g + 2 * h + 1] = _mm256_shuffle_ps(t[g + h], t[g + 2 + h], _MM_SHUFFLE(3, 2, 3, 2));
    }
  for (int c = 0; c < 4; ++c) {
    _mm256_storeu_ps(out[c], _mm256_permute2f128_ps(s[c], s[4 + c], 0x20));
    _mm256_storeu_ps(out[c + 4], _mm256_permute2f128_ps(s[c], s[4 + c], 0x31));
  }
}

template <>
SIMD_INLINE void transpose_tile<double, 4>(const double* const* in, double* const* out) {
  __m256d t[4];
  for (int r = 0; r < 4; r += 2) {  // t[r + c] = rows r, r + 1 of columns c (low half) and c + 2 (high half)
    const __m256d a = _mm256_loadu_pd(in[r]), b = _mm256_loadu_pd(in[r + 1]);
    t[r] = _mm256_unpacklo_pd(a, b);
    t[r + 1] = _mm256_unpackhi_pd(a, b);
  }
  for (int c = 0; c < 2; ++c) {
    _mm256_storeu_pd(out[c], _mm256_permute2f128_pd(t[c], t[2 + c], 0x20));
    _mm256_storeu_pd(out[c + 2], _mm256_permute2f128_pd(t[c], t[2 + c], 0x31));
  }
}
#endif

#if defined(__SSE__)
template <>
SIMD_INLINE void transpose_tile<float, 4>(const float* const* in, float* const* out) {
  __m128 r0 = _mm_loadu_ps(in[0]), r1 = _mm_loadu_ps(in[1]), r2 = _mm_loadu_ps(in[2]), r3 = _mm_loadu_ps(in[3]);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(out[0], r0);
  _mm_storeu_ps(out[1], r1);
  _mm_storeu_ps(out[2], r2);
  _mm_storeu_ps(out[3], r3);
}
#endif

// out[c * ld + r] = row(r)[c] over rows [r0, r1) and columns [c0, c1): R x R tiles, then the margins with tiles of
// half the size, down to 4 x 4, the rest one by one
template <int R, typename T, typename Row>
SIMD_INLINE void transpose_region(Row row, int64_t r0, int64_t r1, int64_t c0, int64_t c1, T* out, int64_t ld) {
  const int64_t r_end = r0 + (r1 - r0) / R * R, c_end = c0 + (c1 - c0) / R * R;
  for (int64_t r = r0; r < r_end; r += R)
    for (int64_t c = c0; c < c_end; c += R) {
      const T* in[R];
      T* to[R];
      for (int i = 0; i < R; ++i) {
        in[i] = row(r + i) + c;
        to[i] = out + (c + i) * ld + r;
      }
      transpose_tile<T, R>(in, to);
    }
  if constexpr (R > 4) {
    transpose_region<R / 2>(row, r0, r_end, c_end, c1, out, ld);
    transpose_region<R / 2>(row, r_end, r1, c0, c1, out, ld);
  } else {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = r < r_end ? c_end : c0; c < c1; ++c) out[c * ld + r] = row(r)[c];
  }
}

// out[c * ld_out + r] = row(r)[c] for r < n_rows, c < n_cols
template <typename T, typename Row>
void transpose(Row row, int64_t n_rows, int64_t n_cols, T* out, int64_t ld_out) {
  transpose_region<kVectorBytes / int(sizeof(T))>(row, 0, n_rows, 0, n_cols, out, ld_out);
}

// n points [n][3] <-> three rows x, y, z [n]. With AVX2 (float32) 8 points at a time: their 3 vectors hold x in lanes
// {0, 3, 6}, {1, 4, 7}, {2, 5} of the first, second, third, y and z in the same sets turned by one and two; blends
// pick them (masks 0x49, 0x92, 0x24 for those three sets) and a permutation orders them.
#if defined(__AVX2__)
inline __m256i lanes(int a, int b, int c, int d, int e, int f, int g, int h) {
  return _mm256_setr_epi32(a, b, c, d, e, f, g, h);
}
#endif

template <typename T>
void deinterleave3(const T* v, int64_t n, T* x, T* y, T* z) {
  int64_t i = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m256i ox = lanes(0, 3, 6, 1, 4, 7, 2, 5), oy = lanes(1, 4, 7, 2, 5, 0, 3, 6);
    const __m256i oz = lanes(2, 5, 0, 3, 6, 1, 4, 7);
    for (; i + 8 <= n; i += 8) {
      const float* p = v + 3 * i;
      const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8), c = _mm256_loadu_ps(p + 16);
      _mm256_storeu_ps(x + i, _mm256_permutevar8x32_ps(_mm256_blend_ps(_mm256_blend_ps(a, b, 0x92), c, 0x24), ox));
      _mm256_storeu_ps(y + i, _mm256_permutevar8x32_ps(_mm256_blend_ps(_mm256_blend_ps(a, b, 0x24), c, 0x49), oy));
      _mm256_storeu_ps(z + i, _mm256_permutevar8x32_ps(_mm256_blend_ps(_mm256_blend_ps(a, b, 0x49), c, 0x92), oz));
    }
  }
#endif
  for (; i < n; ++i) x[i] = v[3 * i], y[i] = v[3 * i + 1], z[i] = v[3 * i + 2];
}

template <typename T>
void interleave3(const T* x, const T* y, const T* z, int64_t n, T* v) {
  int64_t i = 0;
#if defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {  // the inverse permutations, then the same blends
    const __m256i ox = lanes(0, 3, 6, 1, 4, 7, 2, 5), oy = lanes(5, 0, 3, 6, 1, 4, 7, 2);
    const __m256i oz = lanes(2, 5, 0, 3, 6, 1, 4, 7);
    for (; i + 8 <= n; i += 8) {
      const __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + i), ox);
      const __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(y + i), oy);
      const __m256 c = _mm256_permutevar8x32_ps(_mm256_loadu_ps(z + i), oz);
      float* p = v + 3 * i;
      _mm256_storeu_ps(p, _mm256_blend_ps(_mm256_blend_ps(a, b, 0x92), c, 0x24));
      _mm256_storeu_ps(p + 8, _mm256_blend_ps(_mm256_blend_ps(a, b, 0x24), c, 0x49));
      _mm256_storeu_ps(p + 16, _mm256_blend_ps(_mm256_blend_ps(a, b, 0x49), c, 0x92));
    }
  }
#endif
  for (; i < n; ++i) v[3 * i] = x[i], v[3 * i + 1] = y[i], v[3 * i + 2] = z[i];
}

// rows [nb][d] of src (row stride ld, 0: one row for all) -> dst [d][B]; missing samples repeat the first row
template <int B, typename T>
void load_block(const T* src, int64_t ld, int64_t d, int nb, T* dst) {
  transpose<T>([&](int64_t b) { return src + (b < nb ? b : 0) * ld; }, B, d, dst, B);
}

// n values to dst, with non-temporal stores (no read-for-ownership, no cache pollution) where stream is set and the
// CPU has AVX-512 or AVX; each thread calls fence() after its last one
template <typename T>
void copy_out(T* dst, const T* src, int64_t n, [[maybe_unused]] bool stream) {
  int64_t i = 0;
#if defined(__AVX512F__)
  if (stream) {
    for (; i < n && reinterpret_cast<uintptr_t>(dst + i) % 64; ++i) dst[i] = src[i];
    for (; i + 64 / int64_t(sizeof(T)) <= n; i += 64 / sizeof(T))
      _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), _mm512_loadu_si512(src + i));
  }
#elif defined(__AVX__)
  if (stream) {
    for (; i < n && reinterpret_cast<uintptr_t>(dst + i) % 32; ++i) dst[i] = src[i];
    for (; i + 32 / int64_t(sizeof(T)) <= n; i += 32 / sizeof(T))
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i),
                          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
  }
#endif
  std::memcpy(dst + i, src + i, (n - i) * sizeof(T));
}

inline void fence() {
#if defined(__AVX__)
  _mm_sfence();
#endif
}

// src [d][B] -> rows [nb][d] at dst: straight for a full block that is not streamed (measured 10-15 % faster at small
// d), else through the row buffer tmp [B * d]
template <int B, typename T>
void store_block(const T* src, int64_t d, int nb, T* tmp, T* dst, bool stream) {
  const bool direct = !stream && nb == B;
  transpose<T>([&](int64_t f) { return src + f * B; }, d, B, direct ? dst : tmp, d);
  if (!direct) copy_out(dst, tmp, nb * d, stream);
}

}  // namespace simd
