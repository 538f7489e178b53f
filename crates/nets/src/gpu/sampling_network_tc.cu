// Fused CUDA inference of the SamplingNetwork (SPEC section 2) on tensor cores: every per-token
// matrix product is an mma.sync.m16n8k16 (f16 inputs, f32 accumulation) with 16 tokens as the M
// dimension; everything else (encoder gates, phi, attention ratio, LayerNorm, SwiGLU, the gate)
// is f32 on the CUDA cores. The row statistics come from `sn_row_stats` (fused_samplers.cu).
//
// Precision P (kernel name suffix _p0 / _p2):
//   P = 0  one f16 product per mma: activations and weights rounded to f16 (~11 bits);
//   P = 2  split f16: a = a_hi + a_lo, w = w_hi + w_lo (each f16), a.w ~ a_hi.w_hi + a_lo.w_hi
//          + a_hi.w_lo, three mmas per product, about f32 accuracy (~22 bits).
// Activations whose range is not bounded by a LayerNorm (the encoder's hidden units, the
// block input, phi(q), the attention output) are scaled per token, phi(k) and v (the sums'
// operands) per channel over a 16-token tile, the attention sums per head, by a power of two
// before the f16 conversion (the products are scaled back in f32), so large
// |log-probabilities| cannot overflow f16; values under 2^10 are never rescaled.
//
// Passes (one launch each) over every (row n, token t), for B blocks:
//   snt_pass (p = 0)        encoder(lp) -> block 0's sums S = sum phi(k) v^T, s = sum phi(k)
//   snt_pass (p = 1..B)     x = encoder(lp) (p = 1) or x_{p-1} from memory; block p-1 on x;
//                           store x_p; then block p's sums (p < B) or the pool sum (p = B)
//   snt_head_ctx            per row: c = pool / #kept, the transform's context part, mult, s, tau
//   snt_head                per token: the transform head and the soft truncation gate
// Each thread block works on one row (grid.y = row); its 8 warps loop over that row's 16-token
// tiles; the sums go warp registers -> shared memory -> global atomics (the `acc` layout of
// common.cuh's SnLayout: per block S [D][8] then s [D]; after the blocks the pool [D]).
// Activations between passes: f32, token-major [N][V][D].
//
// Fragment layouts (PTX ISA, mma.m16n8k16, g = lane / 4, t = lane % 4):
//   A (16x16, row-major): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16x8, k x n):      b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C (16x8, f32):        c0 = (g, 2t), c1 = (g, 2t+1), c2 = (g+8, 2t), c3 = (g+8, 2t+1)
// so the C tiles of channels 16c..16c+15 are the A fragment of k-chunk c of the next product.

#include <cuda_fp16.h>
#include <stdint.h>

#include "common.cuh"
#include "tensor_core.cuh"

#define TC_WARPS 8
#define TC_THREADS (TC_WARPS * 32)
// Dynamic shared memory every pass kernel is launched with (gpu::fused::TC_SMEM_BYTES).
#define TC_SMEM_BYTES 65536

namespace tc {

// Power-of-two factor that brings |value| <= m under 2^8 (1 if m is below 2^10 already, or not
// finite): multiply before the f16 conversion, divide the products after.
__device__ __forceinline__ float scale_for(float m) {
  if (m < 1024.0f || !(m <= 3.0e38f)) return 1.0f;
  int e;
  frexpf(m, &e);  // m < 2^e
  return exp2f((float)(8 - e));
}

// scale_for per token: s[0] for row g, s[1] for row g+8 (a token's channels live in a quad), so
// one huge token does not push its tile-mates' values into f16's subnormal range.
template <int NT>
__device__ __forceinline__ void row_scales(const float (&c)[NT][4], float (&s)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < NT; ++i) m = fmaxf(m, fmaxf(fabsf(c[i][2 * r]), fabsf(c[i][2 * r + 1])));
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
    m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
    s[r] = scale_for(m);
  }
}

// out = W in + bias (bias entries >= count read as 0) on tensor cores, `in` (C tiles of 2 KC
// n-tiles) scaled per token (row_scales) for its f16 conversion and the products scaled back.
template <int KC, int NT, int P, int LD>
__device__ __forceinline__ void scaled_linear(float (&out)[NT][4], const float (&in)[2 * KC][4], SMat w,
                                              const float* __restrict__ bias, int count, int lane) {
  float s[2];
  row_scales(in, s);
  AFrag a[KC];
  to_frags<KC, P>(a, in, s);
  zero(out);
  linear<KC, NT, P, LD>(out, a, w, lane);
  rescale_bias(out, s, bias, count, lane);
}

// The packed-weight layout (common.cuh) plus the tensor-core tiling and shared-memory plan.
template <int D_, int H_, int EH_, int DFF_, bool SCALE_>
struct Net : SnLayout<D_, H_, EH_, DFF_, SCALE_> {
  using L = SnLayout<D_, H_, EH_, DFF_, SCALE_>;
  using L::D, L::H, L::HW, L::FE, L::FF, L::FT, L::ACC_BLOCK;
  static_assert(HW == 8, "the tensor-core kernels take heads of width 8");
  static_assert(D % 16 == 0, "d_model must be a multiple of 16");

  // tensor-core shapes: k-chunks (16 channels) and n-tiles (8 channels)
  static constexpr int KD = D / 16, ND = D / 8;          // d_model
  static constexpr int KE = (FE + 15) / 16;              // encoder hidden, padded
  static constexpr int KF = (FF + 15) / 16, NF = 2 * KF; // FFN hidden, padded
  static constexpr int NTT = (FT + 7) / 8;               // transform hidden, padded
  static constexpr int NA = ND + 1;                      // attention: D numerator + H denominator columns
  static constexpr int LDD = 16 * KD + 8, LDE = 16 * KE + 8, LDF = 16 * KF + 8;
  // shared-memory matrices (halves): rows x LD, hi then lo
  static constexpr int M_ENC = D * LDE, M_Q = D * LDD, M_OUT = D * LDD, M_G = 16 * KF * LDD, M_U = M_G;
  static constexpr int M_DN = D * LDF, M_ATT = 8 * NA * LDD, M_KV = 2 * D * LDD;
  static constexpr int O_ENC = 0, O_Q = O_ENC + M_ENC, O_OUT = O_Q + M_Q, O_G = O_OUT + M_OUT, O_U = O_G + M_G;
  static constexpr int O_DN = O_U + M_U, O_ATT = O_DN + M_DN, O_KV = O_ATT + M_ATT, HALVES = O_KV + M_KV;
  // f32 shared: sums of this thread block (ACC_BLOCK), attention staging (ACC_BLOCK), 2 scalars
  static constexpr int SMEM_BYTES = 2 * HALVES * 2 + (2 * ACC_BLOCK + 4) * 4;
  static_assert(H <= 4, "one shared scale slot per head, 4 slots");
  static_assert(SMEM_BYTES <= TC_SMEM_BYTES, "shared memory over TC_SMEM_BYTES");
};

// x = encoder(lp) for the tile: h = silu(gate lp) * (up lp) computed in A-fragment order, then
// the down projection on tensor cores.
template <class C, int P>
__device__ __forceinline__ void encoder(float (&x)[C::ND][4], const float (&lp)[2], const float* __restrict__ W,
                                        SMat enc, int lane) {
  const int t = lane & 3;
  float h[2 * C::KE][4];
#pragma unroll
  for (int n = 0; n < 2 * C::KE; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int f = 8 * n + 2 * t + (e & 1);
      float v = 0.0f;
      if (f < C::FE) {
        const float l = lp[e >> 1];
        const float gt = fmaf(__ldg(W + C::ENC_GW + f), l, __ldg(W + C::ENC_GB + f));
        const float up = fmaf(__ldg(W + C::ENC_UW + f), l, __ldg(W + C::ENC_UB + f));
        v = silu(gt) * up;
      }
      h[n][e] = v;
    }
  }
  scaled_linear<C::KE, C::ND, P, C::LDE>(x, h, enc, W + C::ENC_DB, C::D, lane);
}

// LayerNorm over the D channels of rows g and g+8 (a quad holds a row).
template <class C>
__device__ __forceinline__ void layer_norm(float (&y)[C::ND][4], const float* __restrict__ w,
                                           const float* __restrict__ b, int lane) {
  const int t = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float s = 0.0f;
#pragma unroll
    for (int n = 0; n < C::ND; ++n) s += y[n][2 * r] + y[n][2 * r + 1];
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    const float mean = s * (1.0f / C::D);
    float v = 0.0f;
#pragma unroll
    for (int n = 0; n < C::ND; ++n) {
      y[n][2 * r] -= mean;
      y[n][2 * r + 1] -= mean;
      v = fmaf(y[n][2 * r], y[n][2 * r], v);
      v = fmaf(y[n][2 * r + 1], y[n][2 * r + 1], v);
    }
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    const float inv = rsqrtf(v * (1.0f / C::D) + LAYER_NORM_EPS);
#pragma unroll
    for (int n = 0; n < C::ND; ++n) {
      const int ch = 8 * n + 2 * t;
      y[n][2 * r] = fmaf(y[n][2 * r] * inv, __ldg(w + ch), __ldg(b + ch));
      y[n][2 * r + 1] = fmaf(y[n][2 * r + 1] * inv, __ldg(w + ch + 1), __ldg(b + ch + 1));
    }
  }
}

// One block on the tile: x = LN2(y + FFN(y)), y = LN1(x + out(attention(x))).
// `att` holds the row's sums as the B operand [q channel][D numerators + H denominators],
// head h's entries scaled by 1 / att_scale[h]; `eps[h]` = ATTENTION_EPS / att_scale[h].
template <class C, int P>
__device__ __forceinline__ void block(float (&x)[C::ND][4], const float* __restrict__ Wb, SMat q, SMat out, SMat gate,
                                      SMat up, SMat down, SMat att, const float (&eps)[C::H], int lane) {
  const int t = lane & 3;
  // phi(q)
  float qc[C::ND][4];
  scaled_linear<C::KD, C::ND, P, C::LDD>(qc, x, q, Wb + C::QKV_B, C::D, lane);
#pragma unroll
  for (int n = 0; n < C::ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) qc[n][e] = elu_plus_one(qc[n][e]);
  // numerators and denominators
  float sq[2];
  row_scales(qc, sq);
  AFrag qa[C::KD];
  to_frags<C::KD, P>(qa, qc, sq);
  float nd[C::NA][4];
  zero(nd);
  linear<C::KD, C::NA, P, C::LDD>(nd, qa, att, lane);
  // numerators and denominators of a token carry its phi(q) scale: so must the epsilon
  float a[C::ND][4];
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    // head h's denominator sits in column h of the last tile: lane t = h / 2, element h % 2
    const int src = (lane & ~3) | (h >> 1);
    const float d0 = __shfl_sync(0xffffffffu, nd[C::ND][h & 1], src);
    const float d1 = __shfl_sync(0xffffffffu, nd[C::ND][2 + (h & 1)], src);
    const float i0 = 1.0f / (d0 + eps[h] * sq[0]), i1 = 1.0f / (d1 + eps[h] * sq[1]);
    a[h][0] = nd[h][0] * i0;
    a[h][1] = nd[h][1] * i0;
    a[h][2] = nd[h][2] * i1;
    a[h][3] = nd[h][3] * i1;
  }
  // y = LN1(x + out(a))
  float y[C::ND][4];
  scaled_linear<C::KD, C::ND, P, C::LDD>(y, a, out, Wb + C::OUT_B, C::D, lane);
#pragma unroll
  for (int n = 0; n < C::ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) y[n][e] += x[n][e];
  layer_norm<C>(y, Wb + C::LN1_W, Wb + C::LN1_B, lane);
  // x = LN2(y + down(silu(gate y) * up y)); LayerNorm outputs are bounded: unit scales
  const float one[2] = {1.0f, 1.0f};
  AFrag ya[C::KD];
  to_frags<C::KD, P>(ya, y, one);
  float hg[C::NF][4], hu[C::NF][4];
  zero(hg);
  zero(hu);
  linear<C::KD, C::NF, P, C::LDD>(hg, ya, gate, lane);
  linear<C::KD, C::NF, P, C::LDD>(hu, ya, up, lane);
  rescale_bias(hg, one, Wb + C::FG_B, C::FF, lane);
  rescale_bias(hu, one, Wb + C::FU_B, C::FF, lane);
#pragma unroll
  for (int n = 0; n < C::NF; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) hg[n][e] = silu(hg[n][e]) * hu[n][e];
  AFrag ha[C::KF];
  to_frags<C::KF, P>(ha, hg, one);
  zero(x);
  linear<C::KF, C::ND, P, C::LDF>(x, ha, down, lane);
  rescale_bias(x, one, Wb + C::FD_B, C::D, lane);
#pragma unroll
  for (int n = 0; n < C::ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) x[n][e] += y[n][e];
  layer_norm<C>(x, Wb + C::LN2_W, Wb + C::LN2_B, lane);
  (void)t;
}

// Adds the tile's keep phi(k) v^T (same-head pairs) to S and keep phi(k) to s (warp registers):
// k^T and v^T = W_kv x^T with the weights as the A operand, then S = phi(k)^T v on tensor cores
// with the 16 tokens as the reduction dimension.
template <class C, int P>
__device__ __forceinline__ void add_kv(float (&S)[C::H][4], float (&s)[C::KD][4], const float (&x)[C::ND][4],
                                       const float* __restrict__ Wb, SMat kv, const float (&keep)[2], int lane) {
  const int g = lane >> 2, t = lane & 3;
  float sx[2];
  row_scales(x, sx);
  AFrag xa[C::KD];
  to_frags<C::KD, P>(xa, x, sx);
  // 1 / scale of token 8 j + 2 t + b (a column of k^T, v^T): row r's scale sits in lane 4 r
  float inv_tok[2][2];
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int b = 0; b < 2; ++b) inv_tok[j][b] = 1.0f / __shfl_sync(0xffffffffu, sx[j], 4 * (2 * t + b));
  // kvt[m][j]: rows 16 m .. 16 m + 15 of [k; v] (channels), tokens 8 j .. 8 j + 7
  float kvt[2 * C::KD][2][4];
#pragma unroll
  for (int m = 0; m < 2 * C::KD; ++m)
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) kvt[m][j][e] = 0.0f;
#pragma unroll
  for (int m = 0; m < 2 * C::KD; ++m) {
#pragma unroll
    for (int k = 0; k < C::KD; ++k) {
      AFrag w;
      const int off = (16 * m + g) * C::LDD + 16 * k + 2 * t;
      w.h[0] = *reinterpret_cast<const uint32_t*>(kv.hi + off);
      w.h[1] = *reinterpret_cast<const uint32_t*>(kv.hi + off + 8 * C::LDD);
      w.h[2] = *reinterpret_cast<const uint32_t*>(kv.hi + off + 8);
      w.h[3] = *reinterpret_cast<const uint32_t*>(kv.hi + off + 8 * C::LDD + 8);
      if (P >= 2) {
        w.l[0] = *reinterpret_cast<const uint32_t*>(kv.lo + off);
        w.l[1] = *reinterpret_cast<const uint32_t*>(kv.lo + off + 8 * C::LDD);
        w.l[2] = *reinterpret_cast<const uint32_t*>(kv.lo + off + 8);
        w.l[3] = *reinterpret_cast<const uint32_t*>(kv.lo + off + 8 * C::LDD + 8);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        // B = x^T: (k = channels 2t.., n = token g) is x's A fragment of row g (j = 0) or g+8
        const uint32_t xh0 = xa[k].h[j], xh1 = xa[k].h[2 + j];
        mma(kvt[m][j], w.h, xh0, xh1);
        if (P >= 1) mma(kvt[m][j], w.h, xa[k].l[j], xa[k].l[2 + j]);
        if (P >= 2) mma(kvt[m][j], w.l, xh0, xh1);
      }
    }
  }
  // keep of token 8 j + 2 t + (e % 2) (the tile's rows live in quads: bit 4 r = keep of row r)
  const uint32_t mask0 = __ballot_sync(0xffffffffu, keep[0] != 0.0f);
  const uint32_t mask1 = __ballot_sync(0xffffffffu, keep[1] != 0.0f);
#pragma unroll
  for (int m = 0; m < 2 * C::KD; ++m) {
    const int row = 16 * m + g;  // channel of c0/c1; c2/c3: row + 8
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const uint32_t mask = j == 0 ? mask0 : mask1;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int ch = row + 8 * (e >> 1);
        float v = fmaf(kvt[m][j][e], inv_tok[j][e & 1], __ldg(Wb + C::QKV_B + C::D + ch));
        if (m < C::KD) {
          const float kp = (mask >> (8 * t + 4 * (e & 1))) & 1u ? 1.0f : 0.0f;
          v = kp * elu_plus_one(v);
        }
        kvt[m][j][e] = v;
      }
    }
  }
  // A = phi(k)^T per m-tile (channels x 16 tokens), B = v (tokens x a head's 8 channels).
  // Scale factors per channel (over the tile's 16 tokens): a channel is a row of A (an output
  // row of S) or a column of B (an output column), so each is undone on the f32 products.
  // chs[m][r]: channel 16 m + g + 8 r of [k; v] (a quad holds a channel's tokens).
  float chs[2 * C::KD][2];
#pragma unroll
  for (int m = 0; m < 2 * C::KD; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = fmaxf(fmaxf(fabsf(kvt[m][0][2 * r]), fabsf(kvt[m][0][2 * r + 1])),
                       fmaxf(fabsf(kvt[m][1][2 * r]), fabsf(kvt[m][1][2 * r + 1])));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      chs[m][r] = scale_for(mx);
    }
  AFrag ka[C::KD];
#pragma unroll
  for (int m = 0; m < C::KD; ++m) {
    split2<P>(kvt[m][0][0] * chs[m][0], kvt[m][0][1] * chs[m][0], ka[m].h[0], ka[m].l[0]);
    split2<P>(kvt[m][0][2] * chs[m][1], kvt[m][0][3] * chs[m][1], ka[m].h[1], ka[m].l[1]);
    split2<P>(kvt[m][1][0] * chs[m][0], kvt[m][1][1] * chs[m][0], ka[m].h[2], ka[m].l[2]);
    split2<P>(kvt[m][1][2] * chs[m][1], kvt[m][1][3] * chs[m][1], ka[m].h[3], ka[m].l[3]);
  }
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    // v channel 8 h + g: row 8 (h % 2) + g of v m-tile KD + h / 2 -> elements 2 (h % 2) + 0/1
    const int mv_tile = C::KD + h / 2, e0 = 2 * (h & 1);
    const float sv = chs[mv_tile][h & 1];
    uint32_t bh0, bl0, bh1, bl1;
    split2<P>(kvt[mv_tile][0][e0] * sv, kvt[mv_tile][0][e0 + 1] * sv, bh0, bl0);
    split2<P>(kvt[mv_tile][1][e0] * sv, kvt[mv_tile][1][e0 + 1] * sv, bh1, bl1);
    float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mma_p<P>(tmp, ka[h / 2], bh0, bh1, bl0, bl1);
    // output column 2 t + c is v channel 8 h + 2 t + c, whose factor quad 2 t + c holds
    const float iv0 = 1.0f / __shfl_sync(0xffffffffu, sv, 4 * (2 * t));
    const float iv1 = 1.0f / __shfl_sync(0xffffffffu, sv, 4 * (2 * t + 1));
    const float ik0 = 1.0f / chs[h / 2][0], ik1 = 1.0f / chs[h / 2][1];
    S[h][0] = fmaf(tmp[0], ik0 * iv0, S[h][0]);
    S[h][1] = fmaf(tmp[1], ik0 * iv1, S[h][1]);
    S[h][2] = fmaf(tmp[2], ik1 * iv0, S[h][2]);
    S[h][3] = fmaf(tmp[3], ik1 * iv1, S[h][3]);
  }
  const uint32_t ones = g == 0 ? pack(__floats2half2_rn(1.0f, 1.0f)) : 0u;
#pragma unroll
  for (int m = 0; m < C::KD; ++m) {
    float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mma(tmp, ka[m].h, ones, ones);
    if (P >= 1) mma(tmp, ka[m].l, ones, ones);
#pragma unroll
    for (int e = 0; e < 4; ++e) s[m][e] = fmaf(tmp[e], 1.0f / chs[m][e >> 1], s[m][e]);
  }
}

// The warp's S, s registers -> the thread block's shared sums [D][8] then [D].
template <class C>
__device__ __forceinline__ void flush_kv(float* sums, const float (&S)[C::H][4], const float (&s)[C::KD][4],
                                         int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    const int i = 8 * h + g, e0 = 2 * (h & 1);
    atomicAdd(sums + i * 8 + 2 * t, S[h][e0]);
    atomicAdd(sums + i * 8 + 2 * t + 1, S[h][e0 + 1]);
  }
  if (t == 0) {
#pragma unroll
    for (int m = 0; m < C::KD; ++m) {
      atomicAdd(sums + C::D * 8 + 16 * m + g, s[m][0]);
      atomicAdd(sums + C::D * 8 + 16 * m + g + 8, s[m][2]);
    }
  }
}

// Pass p (see the top of the file) for one row: grid (thread blocks per row, rows).
template <class C, int P>
__device__ void pass(const float* __restrict__ z, const float* __restrict__ stats, const float* __restrict__ W,
                     float* __restrict__ xs, float* __restrict__ acc, int V, int blocks, int p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  if (dynamic_smem_size() < (uint32_t)C::SMEM_BYTES) __trap();
  __half* hi = reinterpret_cast<__half*>(smem_raw);
  __half* lo = hi + C::HALVES;
  float* sums = reinterpret_cast<float*>(lo + C::HALVES);
  float* stage_att = sums + C::ACC_BLOCK;
  float* scal = stage_att + C::ACC_BLOCK;
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* st = stats + SN_STATS * n;
  const float* zrow = z + (size_t)n * V;
  float* row_acc = acc + (size_t)n * C::acc_row(blocks);
  const bool has_block = p >= 1, has_next = p < blocks, from_encoder = p <= 1;
  const float* Wb = W + C::ENC_SIZE + (p - 1) * C::BLOCK_SIZE;  // block p-1 (if any)
  const float* Wn = W + C::ENC_SIZE + p * C::BLOCK_SIZE;        // block p (if any)
  for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) sums[i] = 0.0f;
  if (threadIdx.x < 4) scal[threadIdx.x] = 0.0f;
  __syncthreads();
  if (from_encoder) stage<P, C::LDE>(hi + C::O_ENC, lo + C::O_ENC, W + C::ENC_DW, C::D, C::FE, C::D, 16 * C::KE);
  if (has_block) {
    stage<P, C::LDD>(hi + C::O_Q, lo + C::O_Q, Wb + C::QKV_W, C::D, C::D, C::D, C::D);
    stage<P, C::LDD>(hi + C::O_OUT, lo + C::O_OUT, Wb + C::OUT_W, C::D, C::D, C::D, C::D);
    stage<P, C::LDD>(hi + C::O_G, lo + C::O_G, Wb + C::FG_W, C::FF, C::D, 16 * C::KF, C::D);
    stage<P, C::LDD>(hi + C::O_U, lo + C::O_U, Wb + C::FU_W, C::FF, C::D, 16 * C::KF, C::D);
    stage<P, C::LDF>(hi + C::O_DN, lo + C::O_DN, Wb + C::FD_W, C::D, C::FF, C::D, 16 * C::KF);
    // the attention B operand from block p-1's sums / #kept, then each head's entries scaled
    // to max |.| in [2^7, 2^8) (a head's numerators and denominator share the factor, so its
    // ratio is unchanged; one factor for all heads would push a head with small sums into
    // f16's subnormals when another head's are huge)
    const float* in = row_acc + (p - 1) * C::ACC_BLOCK;
    const float kept = fmaxf(st[3], 1.0f);
    for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) {
      const float v = in[i] / kept;
      stage_att[i] = v;
      const int head = i < C::D * 8 ? i / 64 : (i - C::D * 8) / 8;
      atomicMax(reinterpret_cast<int*>(scal + head), __float_as_int(fabsf(v)));
    }
  }
  if (has_next) stage<P, C::LDD>(hi + C::O_KV, lo + C::O_KV, Wn + C::QKV_W + C::D * C::D, 2 * C::D, C::D, 2 * C::D, C::D);
  __syncthreads();
  float eps[C::H], sc[C::H];
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    const float m = scal[h];
    int e = 0;
    if (m > 0.0f) frexpf(m, &e);
    sc[h] = m > 0.0f ? exp2f((float)(8 - e)) : 1.0f;
    eps[h] = ATTENTION_EPS / fmaxf(st[3], 1.0f) * sc[h];
  }
  if (has_block) {
    for (int i = threadIdx.x; i < 8 * C::NA * C::D; i += blockDim.x) {
      const int r = i / C::D, c = i % C::D;  // r: output column (numerator 8h+j or denominator D+h)
      const int head = c / 8;
      float v = 0.0f;
      if (r < C::D) {
        if (r / 8 == head) v = stage_att[c * 8 + (r % 8)];
      } else if (r - C::D == head) {
        v = stage_att[C::D * 8 + c];
      }
      v *= sc[head];
      const __half h = __float2half_rn(v);
      hi[C::O_ATT + r * C::LDD + c] = h;
      if (P >= 2) lo[C::O_ATT + r * C::LDD + c] = __float2half_rn(v - __half2float(h));
    }
    __syncthreads();
  }
  const SMat enc{hi + C::O_ENC, lo + C::O_ENC}, q{hi + C::O_Q, lo + C::O_Q}, out{hi + C::O_OUT, lo + C::O_OUT};
  const SMat gate{hi + C::O_G, lo + C::O_G}, up{hi + C::O_U, lo + C::O_U}, down{hi + C::O_DN, lo + C::O_DN};
  const SMat att{hi + C::O_ATT, lo + C::O_ATT}, kv{hi + C::O_KV, lo + C::O_KV};
  float S[C::H][4], s[C::KD][4], pool[C::ND][2];
  zero(S);
  zero(s);
#pragma unroll
  for (int i = 0; i < C::ND; ++i) pool[i][0] = pool[i][1] = 0.0f;
  const int g = lane >> 2, t = lane & 3;
  const int tiles = (V + 15) / 16;
  for (int tile = blockIdx.x * TC_WARPS + warp; tile < tiles; tile += gridDim.x * TC_WARPS) {
    const int t0 = 16 * tile;
    float lp[2], keep[2];
    tile_lp(zrow, st, V, t0, lane, lp, keep);
    float x[C::ND][4];
    if (from_encoder) {
      encoder<C, P>(x, lp, W, enc, lane);
    } else {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int tok = t0 + g + 8 * r;
        const float* src = xs + ((size_t)n * V + tok) * C::D;
#pragma unroll
        for (int c = 0; c < C::ND; ++c) {
          float2 v = make_float2(0.0f, 0.0f);
          if (tok < V) v = *reinterpret_cast<const float2*>(src + 8 * c + 2 * t);
          x[c][2 * r] = v.x;
          x[c][2 * r + 1] = v.y;
        }
      }
    }
    if (has_block) {
      block<C, P>(x, Wb, q, out, gate, up, down, att, eps, lane);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int tok = t0 + g + 8 * r;
        if (tok < V) {
          float* dst = xs + ((size_t)n * V + tok) * C::D;
#pragma unroll
          for (int c = 0; c < C::ND; ++c)
            *reinterpret_cast<float2*>(dst + 8 * c + 2 * t) = make_float2(x[c][2 * r], x[c][2 * r + 1]);
        }
      }
    }
    if (has_next) {
      add_kv<C, P>(S, s, x, Wn, kv, keep, lane);
    } else {
#pragma unroll
      for (int c = 0; c < C::ND; ++c) {
        pool[c][0] += keep[0] * x[c][0] + keep[1] * x[c][2];
        pool[c][1] += keep[0] * x[c][1] + keep[1] * x[c][3];
      }
    }
  }
  if (has_next) {
    flush_kv<C>(sums, S, s, lane);
  } else {
#pragma unroll
    for (int c = 0; c < C::ND; ++c)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float v = pool[c][e];
        v += __shfl_xor_sync(0xffffffffu, v, 4);
        v += __shfl_xor_sync(0xffffffffu, v, 8);
        v += __shfl_xor_sync(0xffffffffu, v, 16);
        if (g == 0) atomicAdd(sums + 8 * c + 2 * t + e, v);
      }
  }
  __syncthreads();
  float* dst = row_acc + (has_next ? p * C::ACC_BLOCK : blocks * C::ACC_BLOCK);
  const int count = has_next ? C::ACC_BLOCK : C::D;
  for (int i = threadIdx.x; i < count; i += blockDim.x) atomicAdd(dst + i, sums[i]);
}

// Per row: c = pool / #kept; ctx = [transform gate, transform up] context parts (FT each),
// then mult, s, tau. One thread block of 128 threads per row.
template <class C>
__device__ void head_ctx(const float* __restrict__ stats, const float* __restrict__ W, const float* __restrict__ acc,
                         float* __restrict__ ctx_out, int blocks) {
  __shared__ float c[C::D];
  __shared__ float hidden[2 * C::FS];
  const int n = blockIdx.x, tid = threadIdx.x;
  const float* st = stats + SN_STATS * n;
  const float* Wh = W + C::ENC_SIZE + blocks * C::BLOCK_SIZE;
  const float* pool = acc + (size_t)n * C::acc_row(blocks) + blocks * C::ACC_BLOCK;
  float* o = ctx_out + (size_t)n * (2 * C::FT + 3);
  for (int i = tid; i < C::D; i += blockDim.x) c[i] = pool[i] / st[3];
  __syncthreads();
  for (int f = tid; f < C::FT; f += blockDim.x) {
    float g = __ldg(Wh + C::TG_B + f), u = __ldg(Wh + C::TU_B + f);
    for (int j = 0; j < C::D; ++j) {
      g = fmaf(__ldg(Wh + C::TG_W + f * 2 * C::D + C::D + j), c[j], g);
      u = fmaf(__ldg(Wh + C::TU_W + f * 2 * C::D + C::D + j), c[j], u);
    }
    o[f] = g;
    o[C::FT + f] = u;
  }
  if (C::SCALE && tid >= 32 && tid < 32 + C::FS) {
    const int f = tid - 32;
    float g = __ldg(Wh + C::SG_B + f), u = __ldg(Wh + C::SU_B + f);
    for (int j = 0; j < C::D; ++j) {
      g = fmaf(__ldg(Wh + C::SG_W + f * C::D + j), c[j], g);
      u = fmaf(__ldg(Wh + C::SU_W + f * C::D + j), c[j], u);
    }
    hidden[f] = silu(g) * u;
  }
  if (tid >= 64 && tid < 64 + C::FS) {
    const int f = tid - 64;
    float g = __ldg(Wh + C::RG_B + f), u = __ldg(Wh + C::RU_B + f);
    for (int j = 0; j < C::D; ++j) {
      g = fmaf(__ldg(Wh + C::RG_W + f * C::D + j), c[j], g);
      u = fmaf(__ldg(Wh + C::RU_W + f * C::D + j), c[j], u);
    }
    hidden[C::FS + f] = silu(g) * u;
  }
  __syncthreads();
  if (tid == 0) {
    float mult = 1.0f;
    if (C::SCALE) {
      float m = __ldg(Wh + C::SD_B);
      for (int f = 0; f < C::FS; ++f) m = fmaf(__ldg(Wh + C::SD_W + f), hidden[f], m);
      mult = softplus(m);
    }
    float s = __ldg(Wh + C::RD_B), tau = __ldg(Wh + C::RD_B + 1);
    for (int f = 0; f < C::FS; ++f) {
      s = fmaf(__ldg(Wh + C::RD_W + f), hidden[C::FS + f], s);
      tau = fmaf(__ldg(Wh + C::RD_W + C::FS + f), hidden[C::FS + f], tau);
    }
    o[2 * C::FT] = mult;
    o[2 * C::FT + 1] = softplus(s);
    o[2 * C::FT + 2] = softplus(tau);
  }
}

// Per token: l_mod = down(silu(gate [x, c]) * up [x, c]), l = mult (lp + l_mod),
// out = l + logsigmoid(s l + tau); masked tokens -inf. Grid (thread blocks per row, rows).
template <class C, int P>
__device__ void head(const float* __restrict__ z, const float* __restrict__ stats, const float* __restrict__ W,
                     const float* __restrict__ xs, const float* __restrict__ ctx, float* __restrict__ out, int V,
                     int blocks) {
  constexpr int ROWS = 8 * C::NTT;
  __shared__ __align__(16) __half whi[2][ROWS * C::LDD];
  __shared__ __align__(16) __half wlo[2][ROWS * C::LDD];
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const float* st = stats + SN_STATS * n;
  const float* Wh = W + C::ENC_SIZE + blocks * C::BLOCK_SIZE;
  const float* cx = ctx + (size_t)n * (2 * C::FT + 3);
  // the x columns of the transform's gate and up weights ([FT][2D], x first)
  for (int i = threadIdx.x; i < 2 * ROWS * C::D; i += blockDim.x) {
    const int which = i / (ROWS * C::D), r = (i / C::D) % ROWS, c = i % C::D;
    const int base = which == 0 ? C::TG_W : C::TU_W;
    const float v = r < C::FT ? __ldg(Wh + base + r * 2 * C::D + c) : 0.0f;
    const __half h = __float2half_rn(v);
    whi[which][r * C::LDD + c] = h;
    if (P >= 2) wlo[which][r * C::LDD + c] = __float2half_rn(v - __half2float(h));
  }
  __syncthreads();
  const float mult = cx[2 * C::FT], gs = cx[2 * C::FT + 1], gt = cx[2 * C::FT + 2];
  const SMat gate{whi[0], wlo[0]}, up{whi[1], wlo[1]};
  const float* zrow = z + (size_t)n * V;
  const int tiles = (V + 15) / 16;
  for (int tile = blockIdx.x * TC_WARPS + warp; tile < tiles; tile += gridDim.x * TC_WARPS) {
    const int t0 = 16 * tile;
    float lp[2], keep[2];
    tile_lp(zrow, st, V, t0, lane, lp, keep);
    float x[C::ND][4];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int tok = t0 + g + 8 * r;
      const float* src = xs + ((size_t)n * V + tok) * C::D;
#pragma unroll
      for (int c = 0; c < C::ND; ++c) {
        float2 v = make_float2(0.0f, 0.0f);
        if (tok < V) v = *reinterpret_cast<const float2*>(src + 8 * c + 2 * t);
        x[c][2 * r] = v.x;
        x[c][2 * r + 1] = v.y;
      }
    }
    const float one[2] = {1.0f, 1.0f};  // x left a LayerNorm: bounded
    AFrag xa[C::KD];
    to_frags<C::KD, P>(xa, x, one);
    float hg[C::NTT][4], hu[C::NTT][4];
    zero(hg);
    zero(hu);
    linear<C::KD, C::NTT, P, C::LDD>(hg, xa, gate, lane);
    linear<C::KD, C::NTT, P, C::LDD>(hu, xa, up, lane);
    rescale_bias(hg, one, cx, C::FT, lane);
    rescale_bias(hu, one, cx + C::FT, C::FT, lane);
    float part[2] = {0.0f, 0.0f};
#pragma unroll
    for (int c = 0; c < C::NTT; ++c)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int f = 8 * c + 2 * t + (e & 1);
        if (f < C::FT) part[e >> 1] = fmaf(__ldg(Wh + C::TD_W + f), silu(hg[c][e]) * hu[c][e], part[e >> 1]);
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      part[r] += __shfl_xor_sync(0xffffffffu, part[r], 1);
      part[r] += __shfl_xor_sync(0xffffffffu, part[r], 2);
    }
    // lane t = r writes token g + 8 r
    if (t < 2) {
      const int tok = t0 + g + 8 * t;
      if (tok < V) {
        const float l_mod = part[t] + __ldg(Wh + C::TD_B);
        const size_t idx = (size_t)n * V + tok;
        if (keep[t] == 0.0f) {
          out[idx] = NEG_INF;
        } else {
          const float l = (lp[t] + l_mod) * mult;
          out[idx] = l + logsigmoid(fmaf(gs, l, gt));
        }
      }
    }
  }
}

}  // namespace tc

// Entry points per configuration and precision: snt_{pass,head_ctx,head}_d{D}_h{H}_e{EH}_f{DFF}_s{0|1}[_p{P}].
#define SNT_CONFIG_P(NAME, D, H, EH, DFF, SC, P)                                                       \
  extern "C" __global__ void __launch_bounds__(TC_THREADS, 2) snt_pass_##NAME##_p##P(                  \
      const float* z, const float* stats, const float* W, float* xs, float* acc, int V, int blocks, int p) { \
    tc::pass<tc::Net<D, H, EH, DFF, SC>, P>(z, stats, W, xs, acc, V, blocks, p);                       \
  }                                                                                                     \
  extern "C" __global__ void __launch_bounds__(TC_THREADS) snt_head_##NAME##_p##P(                     \
      const float* z, const float* stats, const float* W, const float* xs, const float* ctx, float* out, \
      int V, int blocks) {                                                                              \
    tc::head<tc::Net<D, H, EH, DFF, SC>, P>(z, stats, W, xs, ctx, out, V, blocks);                     \
  }
#define SNT_CONFIG(NAME, D, H, EH, DFF, SC)                                                            \
  SNT_CONFIG_P(NAME, D, H, EH, DFF, SC, 0)                                                             \
  SNT_CONFIG_P(NAME, D, H, EH, DFF, SC, 2)                                                             \
  extern "C" __global__ void __launch_bounds__(128) snt_head_ctx_##NAME(                               \
      const float* stats, const float* W, const float* acc, float* ctx, int blocks) {                  \
    tc::head_ctx<tc::Net<D, H, EH, DFF, SC>>(stats, W, acc, ctx, blocks);                               \
  }

// The compiled shapes (common.cuh, gpu::fused::COMPILED_CONFIGS).
SN_COMPILED_SHAPES(SNT_CONFIG)
