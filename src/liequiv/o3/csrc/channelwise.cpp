// Channel-wise (uvu, mul2 = 1) tensor product on the CPU: forward, backward and second-order backward (liequiv.o3.tensor_product.cg
// calls this through ctypes). Path p couples an x1 block [u, d1] with one x2 irrep [d2] into an output block [u, d3]:
//   out[z, u, k] += w[z, u] Σ_i x1[z, u, i] M_p[z, i, k],   M_p[z, i, k] = Σ_j c_p[i, j, k] x2[z, j]
// with c_p the sparse normalized Clebsch-Gordan entries (w = 1 for unweighted paths). Samples run in blocks of B: the
// block's rows are transposed (in tiles) into scratch rows [feature][B], one SIMD vector each, so that all the
// arithmetic is on whole vectors; the results are transposed back into e3nn's row-major layout, and streamed to
// memory past the caches when the output is large. The backward runs the same loops once, accumulating the gradients
// of x1, M (then x2 through the entries) and w; the second-order backward (forces in training) likewise.
//
// Path table, int64 [P][9]: x1 offset, u, d1, x2 offset, output offset, d3, weight offset (-1: unweighted), first
// and end entry. Entries: int64 [E][3] (i, j, k) and double [E] values.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "simd.h"

namespace {

// samples per block: one widest SIMD vector of float32 (16 with AVX-512, 8 with AVX, else 4); wider vectors spill
constexpr int B = simd::kVectorBytes / sizeof(float);

template <typename T>
using Vec = simd::Vector<T, B>;  // one value per sample of the block

struct Path {
  int64_t x1, u, d1, x2, out, d3, w, e0, e1;
};

template <typename T>
struct Plan {
  const Path* paths;
  int64_t n_paths;
  const int64_t* ijk;
  std::vector<T> c;
  int64_t d1, d2, dout, nw, mmax;  // row sizes of x1, x2, out, w; largest d1 * d3
};

template <typename T>
Plan<T> make_plan(const int64_t* paths, int64_t n_paths, const int64_t* ijk, const double* c, int64_t d1, int64_t d2,
                  int64_t dout, int64_t nw) {
  Plan<T> p{reinterpret_cast<const Path*>(paths), n_paths, ijk, {}, d1, d2, dout, nw, 1};
  int64_t n_e = 0;
  for (int64_t q = 0; q < n_paths; ++q) {
    const Path& pa = p.paths[q];
    if (pa.d1 * pa.d3 > p.mmax) p.mmax = pa.d1 * pa.d3;
    if (pa.e1 > n_e) n_e = pa.e1;
  }
  p.c.assign(c, c + n_e);
  return p;
}

// the block's rows <-> one vector per feature (simd.h)
template <typename T, typename V = typename Vec<T>::type>
void load_block(const T* src, int64_t ld, int64_t d, int nb, V* dst) {
  simd::load_block<B>(src, ld, d, nb, reinterpret_cast<T*>(dst));
}

template <typename T, typename V = typename Vec<T>::type>
void store_block(const V* src, int64_t d, int nb, T* tmp, T* dst, bool stream) {
  simd::store_block<B>(reinterpret_cast<const T*>(src), d, nb, tmp, dst, stream);
}

using simd::fence;

// M [d1 * d3] of one path from the block's x2
template <typename T, typename V = typename Vec<T>::type>
void contract_x2(const Plan<T>& p, const Path& pa, const V* X2, V* M) {
  for (int64_t r = 0; r < pa.d1 * pa.d3; ++r) M[r] = V{};
  for (int64_t e = pa.e0; e < pa.e1; ++e) {
    const int64_t* t = p.ijk + 3 * e;
    M[t[0] * pa.d3 + t[2]] += p.c[e] * X2[pa.x2 + t[1]];
  }
}

// per-thread scratch: one vector per feature of each array
template <typename T, typename V = typename Vec<T>::type>
struct Scratch {
  std::vector<V> X1, X2, W, O, M, GM, GX1, GX2, GW;
  std::vector<T> rows;
  Scratch(const Plan<T>& p, bool grad)
      : X1(p.d1), X2(p.d2), W(p.nw), O(p.dout), M(p.mmax), GM(grad ? p.mmax : 0), GX1(grad ? p.d1 : 0),
        GX2(grad ? p.d2 : 0), GW(grad ? p.nw : 0), rows(B * std::max(std::max(p.d1, p.d2), std::max(p.dout, p.nw))) {}
  bool shared_loaded = false;
  // the block's inputs (shared weights, w_ld = 0: once)
  void load(const Plan<T>& p, const T* x1, const T* x2, const T* w, int64_t w_ld, int64_t n0, int nb) {
    load_block(x1 + n0 * p.d1, p.d1, p.d1, nb, X1.data());
    load_block(x2 + n0 * p.d2, p.d2, p.d2, nb, X2.data());
    if (w && (w_ld || !shared_loaded)) load_block(w + n0 * w_ld, w_ld, p.nw, nb, W.data());
    shared_loaded = true;
  }
  void zero_grads() {
    for (auto* g : {&GX1, &GX2, &GW})
      for (auto& v : *g) v = V{};
  }
  // the block's gradients of x1, x2 and w (nullptr: not wanted)
  void store_grads(const Plan<T>& p, T* gx1, T* gx2, T* gw, int64_t n0, int nb, bool stream) {
    if (gx1) store_block(GX1.data(), p.d1, nb, rows.data(), gx1 + n0 * p.d1, stream);
    if (gx2) store_block(GX2.data(), p.d2, nb, rows.data(), gx2 + n0 * p.d2, stream);
    if (gw) store_block(GW.data(), p.nw, nb, rows.data(), gw + n0 * p.nw, stream);
  }
};

// w: nullptr (no weighted path) or rows of stride w_ld (0: shared weights)
template <typename T>
void forward(const Plan<T>& p, const T* x1, const T* x2, const T* w, int64_t w_ld, T* out, int64_t n, int threads) {
  using V = typename Vec<T>::type;
  const int64_t blocks = (n + B - 1) / B;
  const bool stream = n * p.dout * int64_t(sizeof(T)) >= (int64_t(4) << 20);
#pragma omp parallel num_threads(threads)
  {
    Scratch<T> s(p, false);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * B;
      const int nb = int(n - n0 < B ? n - n0 : B);
      s.load(p, x1, x2, w, w_ld, n0, nb);
      for (auto& o : s.O) o = V{};
      for (int64_t q = 0; q < p.n_paths; ++q) {
        const Path& pa = p.paths[q];
        V* M = s.M.data();
        contract_x2(p, pa, s.X2.data(), M);
        for (int64_t u = 0; u < pa.u; ++u) {
          const V* xu = s.X1.data() + pa.x1 + u * pa.d1;
          V* o = s.O.data() + pa.out + u * pa.d3;
          for (int64_t k = 0; k < pa.d3; ++k) {
            V acc = xu[0] * M[k];
            for (int64_t i = 1; i < pa.d1; ++i) acc += xu[i] * M[i * pa.d3 + k];
            o[k] += pa.w >= 0 ? s.W[pa.w + u] * acc : acc;
          }
        }
      }
      store_block(s.O.data(), p.dout, nb, s.rows.data(), out + n0 * p.dout, stream);
    }
    fence();
  }
}

// gradients of Σ g ⊙ out: gx1 [n, d1], gx2 [n, d2], gw [n, nw] per sample (nullptr where not wanted; the caller sums
// gw over the samples for shared weights)
template <typename T>
void backward(const Plan<T>& p, const T* x1, const T* x2, const T* w, int64_t w_ld, const T* g, T* gx1, T* gx2, T* gw,
              int64_t n, int threads) {
  using V = typename Vec<T>::type;
  const int64_t blocks = (n + B - 1) / B;
  const bool stream = n * (p.d1 + p.d2 + p.nw) * int64_t(sizeof(T)) >= (int64_t(4) << 20);
#pragma omp parallel num_threads(threads)
  {
    Scratch<T> s(p, true);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * B;
      const int nb = int(n - n0 < B ? n - n0 : B);
      s.load(p, x1, x2, w, w_ld, n0, nb);
      load_block(g + n0 * p.dout, p.dout, p.dout, nb, s.O.data());  // the output's gradient
      s.zero_grads();
      for (int64_t q = 0; q < p.n_paths; ++q) {
        const Path& pa = p.paths[q];
        V* M = s.M.data();
        V* GM = s.GM.data();
        contract_x2(p, pa, s.X2.data(), M);
        for (int64_t r = 0; r < pa.d1 * pa.d3; ++r) GM[r] = V{};
        for (int64_t u = 0; u < pa.u; ++u) {
          const V* xu = s.X1.data() + pa.x1 + u * pa.d1;
          V* gxu = s.GX1.data() + pa.x1 + u * pa.d1;
          const V* gu = s.O.data() + pa.out + u * pa.d3;
          V gwu{};
          for (int64_t k = 0; k < pa.d3; ++k) {
            const V gwk = pa.w >= 0 ? s.W[pa.w + u] * gu[k] : gu[k];
            V acc{};
            for (int64_t i = 0; i < pa.d1; ++i) {
              const V m = M[i * pa.d3 + k], x = xu[i];
              acc += x * m;
              gxu[i] += gwk * m;
              GM[i * pa.d3 + k] += gwk * x;
            }
            gwu += gu[k] * acc;
          }
          if (pa.w >= 0) s.GW[pa.w + u] += gwu;
        }
        for (int64_t e = pa.e0; e < pa.e1; ++e) {  // back through M = C x2
          const int64_t* t = p.ijk + 3 * e;
          s.GX2[pa.x2 + t[1]] += p.c[e] * GM[t[0] * pa.d3 + t[2]];
        }
      }
      s.store_grads(p, gx1, gx2, gw, n0, nb, stream);
    }
    fence();
  }
}

// second order: given incoming gradients (a1, a2, aw) of the backward's outputs (gx1, gx2, gw; nullptr: zero), the
// gradients of Σ a1 ⊙ gx1 + a2 ⊙ gx2 + aw ⊙ gw with respect to g, x1, x2 and w (nullptr where not wanted), in one
// pass. With Ma = C a2 and w_u = 1, aw_u = 0 on unweighted paths, per path:
//   gg[u, k]  = w_u Σ_i (a1[u, i] M[i, k] + x1[u, i] Ma[i, k]) + aw_u Σ_i x1[u, i] M[i, k]
//   gx1[u, i] = Σ_k g[u, k] (w_u Ma[i, k] + aw_u M[i, k])
//   gx2[j]    = Σ_{i, k} c[i, j, k] Σ_u g[u, k] (w_u a1[u, i] + aw_u x1[u, i])
//   gw[u]     = Σ_k g[u, k] Σ_i (a1[u, i] M[i, k] + x1[u, i] Ma[i, k])
template <typename T>
void double_backward(const Plan<T>& p, const T* x1, const T* x2, const T* w, int64_t w_ld, const T* g, const T* a1,
                     const T* a2, const T* aw, T* gg, T* gx1, T* gx2, T* gw, int64_t n, int threads) {
  using V = typename Vec<T>::type;
  const int64_t blocks = (n + B - 1) / B;
  const bool stream = n * (p.dout + p.d1 + p.d2 + p.nw) * int64_t(sizeof(T)) >= (int64_t(4) << 20);
#pragma omp parallel num_threads(threads)
  {
    Scratch<T> s(p, true);
    std::vector<V> A1(a1 ? p.d1 : 0), A2(a2 ? p.d2 : 0), AW(aw ? p.nw : 0), MA(a2 ? p.mmax : 0), GG(p.dout);
    bool aw_loaded = false;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * B;
      const int nb = int(n - n0 < B ? n - n0 : B);
      s.load(p, x1, x2, w, w_ld, n0, nb);
      load_block(g + n0 * p.dout, p.dout, p.dout, nb, s.O.data());
      if (a1) load_block(a1 + n0 * p.d1, p.d1, p.d1, nb, A1.data());
      if (a2) load_block(a2 + n0 * p.d2, p.d2, p.d2, nb, A2.data());
      if (aw && (w_ld || !aw_loaded)) load_block(aw + n0 * w_ld, w_ld, p.nw, nb, AW.data());
      aw_loaded = true;
      for (auto& v : GG) v = V{};
      s.zero_grads();
      for (int64_t q = 0; q < p.n_paths; ++q) {
        const Path& pa = p.paths[q];
        V* M = s.M.data();
        V* GM = s.GM.data();
        contract_x2(p, pa, s.X2.data(), M);
        if (a2) contract_x2(p, pa, A2.data(), MA.data());
        for (int64_t r = 0; r < pa.d1 * pa.d3; ++r) GM[r] = V{};
        const bool weighted = pa.w >= 0, with_aw = aw && weighted;
        for (int64_t u = 0; u < pa.u; ++u) {
          const V* xu = s.X1.data() + pa.x1 + u * pa.d1;
          const V* au = a1 ? A1.data() + pa.x1 + u * pa.d1 : nullptr;
          V* gxu = s.GX1.data() + pa.x1 + u * pa.d1;
          const V* gu = s.O.data() + pa.out + u * pa.d3;
          V* ggu = GG.data() + pa.out + u * pa.d3;
          const V wu = weighted ? s.W[pa.w + u] : V{} + T(1);
          const V awu = with_aw ? AW[pa.w + u] : V{};
          V gwu{};
          for (int64_t k = 0; k < pa.d3; ++k) {
            V lin{}, xm{};  // Σ_i (a1 M + x1 Ma), Σ_i x1 M
            for (int64_t i = 0; i < pa.d1; ++i) {
              const V m = M[i * pa.d3 + k], x = xu[i];
              xm += x * m;
              if (au) lin += au[i] * m;
              if (a2) {
                const V ma = MA[i * pa.d3 + k];
                lin += x * ma;
                gxu[i] += gu[k] * (wu * ma);
              }
              if (with_aw) gxu[i] += gu[k] * (awu * m);
              V gm{};
              if (au) gm += wu * au[i];
              if (with_aw) gm += awu * x;
              GM[i * pa.d3 + k] += gu[k] * gm;
            }
            ggu[k] += wu * lin + awu * xm;
            gwu += gu[k] * lin;
          }
          if (weighted) s.GW[pa.w + u] += gwu;
        }
        for (int64_t e = pa.e0; e < pa.e1; ++e) {
          const int64_t* t = p.ijk + 3 * e;
          s.GX2[pa.x2 + t[1]] += p.c[e] * GM[t[0] * pa.d3 + t[2]];
        }
      }
      if (gg) store_block(GG.data(), p.dout, nb, s.rows.data(), gg + n0 * p.dout, stream);
      s.store_grads(p, gx1, gx2, gw, n0, nb, stream);
    }
    fence();
  }
}

}  // namespace

#define CHANNELWISE_API(T, SUFFIX)                                                                                     \
  void channelwise_forward_##SUFFIX(const int64_t* paths, int64_t n_paths, const int64_t* ijk, const double* c,       \
                                    int64_t d1, int64_t d2, int64_t dout, int64_t nw, const T* x1, const T* x2,       \
                                    const T* w, int64_t w_ld, T* out, int64_t n, int threads) {                       \
    forward(make_plan<T>(paths, n_paths, ijk, c, d1, d2, dout, nw), x1, x2, w, w_ld, out, n, threads);                \
  }                                                                                                                    \
  void channelwise_backward_##SUFFIX(const int64_t* paths, int64_t n_paths, const int64_t* ijk, const double* c,      \
                                     int64_t d1, int64_t d2, int64_t dout, int64_t nw, const T* x1, const T* x2,      \
                                     const T* w, int64_t w_ld, const T* g, T* gx1, T* gx2, T* gw, int64_t n,          \
                                     int threads) {                                                                    \
    backward(make_plan<T>(paths, n_paths, ijk, c, d1, d2, dout, nw), x1, x2, w, w_ld, g, gx1, gx2, gw, n, threads);   \
  }                                                                                                                    \
  void channelwise_double_backward_##SUFFIX(const int64_t* paths, int64_t n_paths, const int64_t* ijk,               \
                                            const double* c, int64_t d1, int64_t d2, int64_t dout, int64_t nw,        \
                                            const T* x1, const T* x2, const T* w, int64_t w_ld, const T* g,           \
                                            const T* a1, const T* a2, const T* aw, T* gg, T* gx1, T* gx2, T* gw,      \
                                            int64_t n, int threads) {                                                 \
    double_backward(make_plan<T>(paths, n_paths, ijk, c, d1, d2, dout, nw), x1, x2, w, w_ld, g, a1, a2, aw, gg, gx1,  \
                    gx2, gw, n, threads);                                                                             \
  }

extern "C" {
CHANNELWISE_API(float, f32)
CHANNELWISE_API(double, f64)
}
