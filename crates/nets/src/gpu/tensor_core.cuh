// Tensor-core helpers of the training step's block kernels (fused_training.cu), on top of the
// mma primitives of mma.cuh that the inference forward (sampling_network_tc.cu, which has its own
// fragment-order weight staging) shares: C tiles to A fragments, weights staged in shared memory
// as the B operand in row-major f16 hi / lo, 16-token tiles. Everything is inlined into its
// callers.
//
// Fragment layouts (PTX ISA, mma.m16n8k16, g = lane / 4, t = lane % 4):
//   A (16x16, row-major): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16x8, k x n):      b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C (16x8, f32):        c0 = (g, 2t), c1 = (g, 2t+1), c2 = (g+8, 2t), c3 = (g+8, 2t+1)
// so the C tiles of channels 16c..16c+15 are the A fragment of k-chunk c of the next product.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

#include "common.cuh"
#include "mma.cuh"

namespace tc {






// C tiles (NT = 2 KC n-tiles of 8 channels; rows g, g+8 times s[0], s[1]) -> KC A fragments.
template <int KC, int P>
__device__ __forceinline__ void to_frags(AFrag (&a)[KC], const float (&c)[2 * KC][4], const float (&s)[2]) {
#pragma unroll
  for (int k = 0; k < KC; ++k) {
    split2<P>(c[2 * k][0] * s[0], c[2 * k][1] * s[0], a[k].h[0], a[k].l[0]);
    split2<P>(c[2 * k][2] * s[1], c[2 * k][3] * s[1], a[k].h[1], a[k].l[1]);
    split2<P>(c[2 * k + 1][0] * s[0], c[2 * k + 1][1] * s[0], a[k].h[2], a[k].l[2]);
    split2<P>(c[2 * k + 1][2] * s[1], c[2 * k + 1][3] * s[1], a[k].h[3], a[k].l[3]);
  }
}

// A weight matrix staged in shared memory: f16 hi and lo, [rows][LD] with LD = 16 KC + 8 (the
// +8 halves make the fragment loads bank-conflict free).
struct SMat { const __half* hi; const __half* lo; };

// out[nt] += a . W^T for the W rows 8 nt .. 8 nt + 7 (weights as the B operand).
template <int KC, int NT, int P, int LD>
__device__ __forceinline__ void linear(float (&out)[NT][4], const AFrag (&a)[KC], SMat w, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int n = 0; n < NT; ++n) {
#pragma unroll
    for (int k = 0; k < KC; ++k) {
      const int off = (8 * n + g) * LD + 16 * k + 2 * t;
      const uint32_t h0 = *reinterpret_cast<const uint32_t*>(w.hi + off);
      const uint32_t h1 = *reinterpret_cast<const uint32_t*>(w.hi + off + 8);
      uint32_t l0 = 0, l1 = 0;
      if (P >= 2) {
        l0 = *reinterpret_cast<const uint32_t*>(w.lo + off);
        l1 = *reinterpret_cast<const uint32_t*>(w.lo + off + 8);
      }
      mma_p<P>(out[n], a[k], h0, h1, l0, l1);
    }
  }
}


// c = c / s[row] + bias[channel] (channel = 8 n + 2 t + e % 2; bias entries >= count read as 0).
template <int NT>
__device__ __forceinline__ void rescale_bias(float (&c)[NT][4], const float (&s)[2], const float* __restrict__ bias,
                                             int count, int lane) {
  const int t = lane & 3;
  const float i0 = 1.0f / s[0], i1 = 1.0f / s[1];
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    const int ch = 8 * n + 2 * t;
    const float b0 = ch < count ? __ldg(bias + ch) : 0.0f;
    const float b1 = ch + 1 < count ? __ldg(bias + ch + 1) : 0.0f;
    c[n][0] = fmaf(c[n][0], i0, b0);
    c[n][1] = fmaf(c[n][1], i0, b1);
    c[n][2] = fmaf(c[n][2], i1, b0);
    c[n][3] = fmaf(c[n][3], i1, b1);
  }
}

// Stages W [rows][cols] (row-major f32 at `src`) as f16 hi / lo [prows][LD] (zero padding).
template <int P, int LD>
__device__ void stage(__half* hi, __half* lo, const float* __restrict__ src, int rows, int cols, int prows,
                      int pcols) {
  for (int i = threadIdx.x; i < prows * pcols; i += blockDim.x) {
    const int r = i / pcols, c = i % pcols;
    const float v = (r < rows && c < cols) ? __ldg(src + r * cols + c) : 0.0f;
    const __half h = __float2half_rn(v);
    hi[r * LD + c] = h;
    if (P >= 2) lo[r * LD + c] = __float2half_rn(v - __half2float(h));
  }
}


// lp and weight of units g and g+8 of the tile starting at t0 (past V or no unit: lp 0, weight
// 0). `zrow` is row n of the training step's units buffer ([4][N][V]: the unit's logit, -inf
// where there is none, then its weight = the number of tokens it stands for, ...; the grid's y
// dimension is the N rows).
__device__ __forceinline__ void tile_lp(const float* __restrict__ zrow, const float* st, int V, int t0, int lane,
                                        float (&lp)[2], float (&keep)[2]) {
  const int g = lane >> 2;
  const size_t T = (size_t)gridDim.y * V;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = t0 + g + 8 * r;
    lp[r] = 0.0f;
    keep[r] = 0.0f;
    if (t < V) {
      const float z = zrow[t];
      if (z != NEG_INF) { lp[r] = z - st[0] - st[1]; keep[r] = zrow[T + t]; }
    }
  }
}

}  // namespace tc
