// Fused CUDA training step of the SamplingNetwork (SPEC section 2): forward with the block inputs
// kept, TruncatedLogitsLoss, backward; f32 storage, f32 arithmetic and accumulation.
//
// One thread per (row n, token t). Every per-token buffer is channel-major over all tokens of
// the batch, [C][N][V] (channel c of token (n, t) at c*T + n*V + t, T = N*V), so that a weight
// gradient is one GEMM over the T tokens (run by cuBLAS from gpu::fused_training): a layer's
// input buffer carries one extra channel of ones after its K channels, which makes the last
// column of dY * X^T the bias gradient. The kernels of one step:
//
//   tr_pack                         the parameters gathered into one buffer (once per
//                                   optimizer step, not per step)
//   tr_row_stats (z, then target)   per row: max, log sum exp(x - max), #NaN/+inf, #finite
//   tr_encode_<cfg>                 lp, encoder -> x_0; block 0's sums S = sum phi(k) v^T, s
//   tr_block_<cfg>   (b = 0..B-1)   x_b -> x_{b+1}; block b+1's sums (or the pool sum)
//   tr_rows_<cfg>                   per row: c = pool / #kept; the transform's context part,
//                                   mult, s, tau (common.cuh's sn_head_ctx)
//   tr_head_<cfg>                   per token: out = gate(mult * (lp + transform([x_B, c])))
//   tr_loss                         per row: log sum exp(out), KL, penalty, uncovered tokens
//   tr_head_bwd_<cfg>               dL/dout per token, the head's backward: dx_B, d(gate|up)
//                                   of the transform, per-row sums (dmult, ds, dtau, dctx)
//   tr_rows_bwd_<cfg>               per row: the per-row heads' backward -> their parameters'
//                                   gradients (atomics), dL/dpool
//   tr_block_bwd_a_<cfg> (b = B-1..0)  recompute block b from x_b and its sums; LN2, FFN, LN1,
//                                   output projection and attention backward; per-row sums
//                                   dS = sum phi(q) dnum^T, ds = sum dden phi(q)
//   tr_block_bwd_b_<cfg>            dk, dv from dS, ds; dx_b = dy1 + W_qkv^T dqkv
//   tr_encode_bwd_<cfg>             the encoder's backward
//
// Sums over tokens: warp shuffles, then shared-memory atomics per thread block, then global
// atomics (f32). Masked tokens (z = -inf) use lp = 0 (MASKED_LP_SENTINEL), take no part in any
// sum, get -inf out and a zero gradient, exactly as the candle path.
//
// The weights are one packed f32 buffer in the order of `gpu::fused::packing_order` (every
// Linear as weight [out, in] row-major followed by bias [out]).

#include "common.cuh"

#define THREADS 128
// threads per block of the per-row head kernels (tr_rows, tr_rows_bwd; one block per row)
#define ROW_HEAD_THREADS 128
// floats per row of tr_row_stats and of tr_loss
#define STATS 4
#define LOSS 4

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide (m, s) merge; every thread gets the result.
__device__ void block_lse(float& m, float& s) {
  __shared__ float sm[32], ss[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    lse_merge(m, s, m2, s2);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) { sm[warp] = m; ss[warp] = s; }
  __syncthreads();
  if (threadIdx.x == 0) {
    float a = NEG_INF, b = 0.0f;
    for (int i = 0; i < (int)(blockDim.x + 31) / 32; ++i) lse_merge(a, b, sm[i], ss[i]);
    sm[0] = a; ss[0] = b;
  }
  __syncthreads();
  m = sm[0]; s = ss[0];
  __syncthreads();
}

// Block-wide sum; every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float sv[32];
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sv[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float a = 0.0f;
    for (int i = 0; i < (int)(blockDim.x + 31) / 32; ++i) a += sv[i];
    sv[0] = a;
  }
  __syncthreads();
  v = sv[0];
  __syncthreads();
  return v;
}

// Per row: {max x, log sum exp(x - max) over the finite entries, #NaN or +inf, #finite}.
// One block per row.
extern "C" __global__ void tr_row_stats(const float* __restrict__ x, int V, float* __restrict__ stats) {
  const float* row = x + (size_t)blockIdx.x * V;
  float m = NEG_INF, s = 0.0f, bad = 0.0f, kept = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = row[i];
    if (isnan(v) || v == POS_INF) { bad += 1.0f; continue; }
    if (v == NEG_INF) continue;
    kept += 1.0f;
    lse_merge(m, s, v, 1.0f);
  }
  block_lse(m, s);
  bad = block_sum(bad);
  kept = block_sum(kept);
  if (threadIdx.x == 0) {
    float* out = stats + STATS * blockIdx.x;
    out[0] = m;
    out[1] = logf(s);
    out[2] = bad;
    out[3] = kept;
  }
}

// Packs the parameters into one buffer (the order of gpu::fused::packing_order): `table` holds
// per parameter {device address, offset in dst, float count}; grid (x: blocks striding over a
// parameter, y: parameter).
extern "C" __global__ void tr_pack(const unsigned long long* __restrict__ table, float* __restrict__ dst) {
  const unsigned long long* e = table + 3 * blockIdx.y;
  const float* src = reinterpret_cast<const float*>(e[0]);
  float* out = dst + e[1];
  const unsigned long long len = e[2];
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < len;
       i += (unsigned long long)gridDim.x * blockDim.x)
    out[i] = src[i];
}

// Per row, from the outputs `out` (-inf at input-masked tokens) and the target (row stats
// `tstats`): {lse = log sum exp(out), KL = sum_{target kept} p_t (log p_t - log q) (+inf when a
// token the target keeps has out = -inf), penalty = sum_{target masked} q, #such uncovered
// tokens}. One block per row.
extern "C" __global__ void tr_loss(const float* __restrict__ out, const float* __restrict__ target,
                                   const float* __restrict__ tstats, int V, float* __restrict__ loss) {
  const int n = blockIdx.x;
  const float* o_row = out + (size_t)n * V;
  const float* t_row = target + (size_t)n * V;
  float m = NEG_INF, s = 0.0f, uncovered = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float o = o_row[i];
    if (o != NEG_INF) lse_merge(m, s, o, 1.0f);
    else if (t_row[i] != NEG_INF) uncovered += 1.0f;
  }
  block_lse(m, s);
  uncovered = block_sum(uncovered);
  const float lse = m + logf(s);
  const float mt = tstats[STATS * n], lst = tstats[STATS * n + 1];
  float kl = 0.0f, pen = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float o = o_row[i];
    if (o == NEG_INF) continue;
    const float lq = o - lse;
    const float t = t_row[i];
    if (t == NEG_INF) pen += expf(lq);
    else {
      const float lpt = (t - mt) - lst;
      kl += expf(lpt) * (lpt - lq);
    }
  }
  kl = block_sum(kl);
  pen = block_sum(pen);
  if (threadIdx.x == 0) {
    float* r = loss + LOSS * n;
    r[0] = lse;
    r[1] = uncovered > 0.0f ? POS_INF : kl;
    r[2] = pen;
    r[3] = uncovered;
  }
}

// The packed-weight layout and the forward sums' layout (common.cuh). The backward's per-row sums
// dS, ds of one block have the forward sums' layout (ACC_BLOCK floats).
template <int D_, int H_, int EH_, int DFF_, bool SCALE_>
struct Net : SnLayout<D_, H_, EH_, DFF_, SCALE_> {
  using L = SnLayout<D_, H_, EH_, DFF_, SCALE_>;
  using L::D, L::FE, L::FT;
  // per-row data (tr_rows, common.cuh's sn_head_ctx): ctx_g [FT], ctx_u [FT], mult, s, tau; the
  // per-row gradient sums have the same layout
  static constexpr int ROW = 2 * FT + 3, R_MULT = 2 * FT, R_S = 2 * FT + 1, R_TAU = 2 * FT + 2;
  // in-kernel parameter gradient sums: encoder gate w, gate b, up w, up b [FE each]; per block
  // ln1 w, ln1 b, ln2 w, ln2 b [D each]; transform down w [FT], down b
  static constexpr int PG_ENC = 0;
  static __host__ __device__ int pg_block(int b) { return 4 * FE + b * 4 * D; }
  static __host__ __device__ int pg_head(int blocks) { return 4 * FE + blocks * 4 * D; }
};

__device__ __forceinline__ void token_lp(const float* __restrict__ z, const float* __restrict__ zstats, int V, int n,
                                         int t, float& lp, float& keep) {
  const float zt = z[(size_t)n * V + t];
  if (zt == NEG_INF) { lp = 0.0f; keep = 0.0f; }
  else { lp = zt - zstats[STATS * n] - zstats[STATS * n + 1]; keep = 1.0f; }
}

__device__ __forceinline__ void zero_shared(float* s, int count) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) s[i] = 0.0f;
}

__device__ __forceinline__ void flush_sums(const float* s, float* __restrict__ dst, int count) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) atomicAdd(dst + i, s[i]);
}

// Adds the warp's sum of v to *dst (shared), from lane 0.
__device__ __forceinline__ void warp_add(float* dst, float v) {
  v = warp_sum(v);
  if ((threadIdx.x % 32) == 0) atomicAdd(dst, v);
}

// Channel i of the key (pre-activation, a) and the value (b) of token x for block weights Wb.
template <class C>
__device__ __forceinline__ void key_value(const float (&x)[C::D], const float* __restrict__ Wb, int i, float& a,
                                          float& b) {
  a = __ldg(Wb + C::QKV_B + C::D + i);
  b = __ldg(Wb + C::QKV_B + 2 * C::D + i);
#pragma unroll
  for (int j = 0; j < C::D; ++j) {
    a = fmaf(__ldg(Wb + C::QKV_W + (C::D + i) * C::D + j), x[j], a);
    b = fmaf(__ldg(Wb + C::QKV_W + (2 * C::D + i) * C::D + j), x[j], b);
  }
}

// Adds keep * phi(k) v^T (same-head pairs) and keep * phi(k) of this thread's token into
// `sums` (shared, ACC_BLOCK floats).
template <class C>
__device__ __forceinline__ void add_kv(const float (&x)[C::D], const float* __restrict__ Wb, float keep, float* sums) {
  float k[C::D], v[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    float a, b;
    key_value<C>(x, Wb, i, a, b);
    k[i] = keep * elu_plus_one(a);
    v[i] = b;
  }
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    const int head = i / C::HW;
#pragma unroll
    for (int j = 0; j < C::HW; ++j) warp_add(sums + i * C::HW + j, k[i] * v[head * C::HW + j]);
    warp_add(sums + C::D * C::HW + i, k[i]);
  }
}

// y <- LN(y) without the affine part; returns 1 / sqrt(var + eps).
template <class C>
__device__ __forceinline__ float normalize(float (&y)[C::D]) {
  float mean = 0.0f;
#pragma unroll
  for (int i = 0; i < C::D; ++i) mean += y[i];
  mean *= 1.0f / C::D;
  float var = 0.0f;
#pragma unroll
  for (int i = 0; i < C::D; ++i) { y[i] -= mean; var = fmaf(y[i], y[i], var); }
  const float r = rsqrtf(var * (1.0f / C::D) + LAYER_NORM_EPS);
#pragma unroll
  for (int i = 0; i < C::D; ++i) y[i] *= r;
  return r;
}

// LayerNorm backward in place: g (dL/d output) -> dL/d input = r (gw - mean(gw) - xh mean(gw xh)),
// gw = g * w; adds sum g * xh and sum g to wsum, bsum (shared).
template <class C>
__device__ __forceinline__ void layer_norm_backward(float (&g)[C::D], const float (&xh)[C::D], float r,
                                                    const float* __restrict__ w, float* wsum, float* bsum) {
  float m1 = 0.0f, m2 = 0.0f;
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    warp_add(wsum + i, g[i] * xh[i]);
    warp_add(bsum + i, g[i]);
    g[i] *= __ldg(w + i);
    m1 += g[i];
    m2 = fmaf(g[i], xh[i], m2);
  }
  m1 *= 1.0f / C::D;
  m2 *= 1.0f / C::D;
#pragma unroll
  for (int i = 0; i < C::D; ++i) g[i] = r * (g[i] - m1 - xh[i] * m2);
}

// Channel c of token (n, t) in a [C][N][V] buffer.
__device__ __forceinline__ size_t at(int c, size_t T, size_t tok) { return (size_t)c * T + tok; }

// x_0 = encoder(lp) into slot 0 of xs (slots of D + 1 channels, the last all ones), and block
// 0's sums.
template <class C>
__device__ void encode(const float* __restrict__ z, const float* __restrict__ zstats, const float* __restrict__ W,
                       float* __restrict__ xs, float* __restrict__ acc, int V, int blocks) {
  __shared__ float sums[C::ACC_BLOCK];
  zero_shared(sums, C::ACC_BLOCK);
  __syncthreads();
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  const size_t T = (size_t)gridDim.y * V, tok = (size_t)n * V + t;
  const bool valid = t < V;
  float lp = 0.0f, keep = 0.0f;
  if (valid) token_lp(z, zstats, V, n, t, lp, keep);
  float x[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = __ldg(W + C::ENC_DB + i);
#pragma unroll
  for (int f = 0; f < C::FE; ++f) {
    const float g = fmaf(__ldg(W + C::ENC_GW + f), lp, __ldg(W + C::ENC_GB + f));
    const float u = fmaf(__ldg(W + C::ENC_UW + f), lp, __ldg(W + C::ENC_UB + f));
    const float h = silu(g) * u;
#pragma unroll
    for (int i = 0; i < C::D; ++i) x[i] = fmaf(__ldg(W + C::ENC_DW + i * C::FE + f), h, x[i]);
  }
  if (valid) {
#pragma unroll
    for (int i = 0; i < C::D; ++i) xs[at(i, T, tok)] = x[i];
  }
  add_kv<C>(x, W + C::ENC_SIZE, keep, sums);
  __syncthreads();
  flush_sums(sums, acc + (size_t)n * C::acc_row(blocks), C::ACC_BLOCK);
}

// The attention output a = (phi(q)^T S_h) / (phi(q) . s_h + eps) per head, from phi(q) and the
// row's sums; also 1 / (den + eps) per head.
template <class C>
__device__ __forceinline__ void attend(const float (&phiq)[C::D], const float* sums, float (&a)[C::D],
                                       float (&inv)[C::H]) {
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    float den = 0.0f;
#pragma unroll
    for (int i = 0; i < C::HW; ++i) den = fmaf(phiq[h * C::HW + i], sums[C::D * C::HW + h * C::HW + i], den);
    inv[h] = 1.0f / (den + ATTENTION_EPS);
#pragma unroll
    for (int j = 0; j < C::HW; ++j) {
      float num = 0.0f;
#pragma unroll
      for (int i = 0; i < C::HW; ++i) num = fmaf(phiq[h * C::HW + i], sums[(h * C::HW + i) * C::HW + j], num);
      a[h * C::HW + j] = num * inv[h];
    }
  }
}

// phi(q) of x for block weights Wb.
template <class C>
__device__ __forceinline__ void query(const float (&x)[C::D], const float* __restrict__ Wb, float (&phiq)[C::D]) {
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    float a = __ldg(Wb + C::QKV_B + i);
#pragma unroll
    for (int j = 0; j < C::D; ++j) a = fmaf(__ldg(Wb + C::QKV_W + i * C::D + j), x[j], a);
    phiq[i] = elu_plus_one(a);
  }
}

// The FFN's gate and up pre-activations g, u of hidden unit f for the LN1 output y (block
// weights Wb).
template <class C>
__device__ __forceinline__ void ffn_hidden(const float (&y)[C::D], const float* __restrict__ Wb, int f, float& g,
                                           float& u) {
  g = __ldg(Wb + C::FG_B + f);
  u = __ldg(Wb + C::FU_B + f);
#pragma unroll
  for (int j = 0; j < C::D; ++j) {
    g = fmaf(__ldg(Wb + C::FG_W + f * C::D + j), y[j], g);
    u = fmaf(__ldg(Wb + C::FU_W + f * C::D + j), y[j], u);
  }
}

// Block b: x_b (slot b) -> x_{b+1} (slot b + 1), then block b+1's sums or the pool sum.
template <class C>
__device__ void block(const float* __restrict__ z, const float* __restrict__ zstats, const float* __restrict__ W,
                      float* __restrict__ xs, float* __restrict__ acc, int V, int blocks, int b) {
  __shared__ float in_sums[C::ACC_BLOCK];
  __shared__ float out_sums[C::ACC_BLOCK];
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  const size_t T = (size_t)gridDim.y * V, tok = (size_t)n * V + t;
  float* row_acc = acc + (size_t)n * C::acc_row(blocks);
  for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) in_sums[i] = row_acc[b * C::ACC_BLOCK + i];
  zero_shared(out_sums, C::ACC_BLOCK);
  __syncthreads();
  const bool valid = t < V;
  float lp = 0.0f, keep = 0.0f;
  if (valid) token_lp(z, zstats, V, n, t, lp, keep);
  const float* xin = xs + (size_t)b * (C::D + 1) * T;
  float* xout = xs + (size_t)(b + 1) * (C::D + 1) * T;
  float x[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = valid ? xin[at(i, T, tok)] : 0.0f;
  const float* Wb = W + C::ENC_SIZE + b * C::BLOCK_SIZE;
  float phiq[C::D], att[C::D], inv[C::H];
  query<C>(x, Wb, phiq);
  attend<C>(phiq, in_sums, att, inv);
  float y[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    float a = __ldg(Wb + C::OUT_B + i);
#pragma unroll
    for (int j = 0; j < C::D; ++j) a = fmaf(__ldg(Wb + C::OUT_W + i * C::D + j), att[j], a);
    y[i] = x[i] + a;
  }
  normalize<C>(y);
#pragma unroll
  for (int i = 0; i < C::D; ++i) y[i] = fmaf(y[i], __ldg(Wb + C::LN1_W + i), __ldg(Wb + C::LN1_B + i));
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = y[i] + __ldg(Wb + C::FD_B + i);
#pragma unroll 2
  for (int f = 0; f < C::FF; ++f) {
    float g, u;
    ffn_hidden<C>(y, Wb, f, g, u);
    const float hf = silu(g) * u;
#pragma unroll
    for (int i = 0; i < C::D; ++i) x[i] = fmaf(__ldg(Wb + C::FD_W + i * C::FF + f), hf, x[i]);
  }
  normalize<C>(x);
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = fmaf(x[i], __ldg(Wb + C::LN2_W + i), __ldg(Wb + C::LN2_B + i));
  if (valid) {
#pragma unroll
    for (int i = 0; i < C::D; ++i) xout[at(i, T, tok)] = x[i];
  }
  if (b + 1 < blocks) {
    add_kv<C>(x, Wb + C::BLOCK_SIZE, keep, out_sums);
    __syncthreads();
    flush_sums(out_sums, row_acc + (b + 1) * C::ACC_BLOCK, C::ACC_BLOCK);
  } else {
#pragma unroll
    for (int i = 0; i < C::D; ++i) warp_add(out_sums + i, keep * x[i]);
    __syncthreads();
    flush_sums(out_sums, row_acc + blocks * C::ACC_BLOCK, C::D);
  }
}

// The transform's hidden pre-activations g, u of token x with the row's context part ctx.
template <class C>
__device__ __forceinline__ void transform_hidden(const float (&x)[C::D], const float* __restrict__ Wh,
                                                 const float* __restrict__ ctx, float (&g)[C::FT], float (&u)[C::FT]) {
#pragma unroll
  for (int f = 0; f < C::FT; ++f) {
    float a = __ldg(ctx + f), c = __ldg(ctx + C::FT + f);
#pragma unroll
    for (int j = 0; j < C::D; ++j) {
      a = fmaf(__ldg(Wh + C::TG_W + f * 2 * C::D + j), x[j], a);
      c = fmaf(__ldg(Wh + C::TU_W + f * 2 * C::D + j), x[j], c);
    }
    g[f] = a;
    u[f] = c;
  }
}

// The transform's output l_mod = down(silu(g) * u) from its hidden pre-activations.
template <class C>
__device__ __forceinline__ float transform_out(const float (&g)[C::FT], const float (&u)[C::FT],
                                               const float* __restrict__ Wh) {
  float l_mod = __ldg(Wh + C::TD_B);
#pragma unroll
  for (int f = 0; f < C::FT; ++f) l_mod = fmaf(__ldg(Wh + C::TD_W + f), silu(g[f]) * u[f], l_mod);
  return l_mod;
}

// out = l + logsigmoid(s l + tau), l = mult (lp + transform([x_B, c])); -inf at masked tokens.
template <class C>
__device__ void head(const float* __restrict__ z, const float* __restrict__ zstats, const float* __restrict__ W,
                     const float* __restrict__ xs, const float* __restrict__ rows, float* __restrict__ out, int V,
                     int blocks) {
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= V) return;
  const size_t T = (size_t)gridDim.y * V, tok = (size_t)n * V + t;
  float lp, keep;
  token_lp(z, zstats, V, n, t, lp, keep);
  if (keep == 0.0f) { out[tok] = NEG_INF; return; }
  const float* xb = xs + (size_t)blocks * (C::D + 1) * T;
  float x[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = xb[at(i, T, tok)];
  const float* Wh = W + C::ENC_SIZE + blocks * C::BLOCK_SIZE;
  const float* rd = rows + (size_t)n * C::ROW;
  float g[C::FT], u[C::FT];
  transform_hidden<C>(x, Wh, rd, g, u);
  const float l_mod = transform_out<C>(g, u, Wh);
  const float l = (lp + l_mod) * __ldg(rd + C::R_MULT);
  out[tok] = l + logsigmoid(fmaf(__ldg(rd + C::R_S), l, __ldg(rd + C::R_TAU)));
}

// dL/dout of every token (L = scale * sum_rows (KL + gamma penalty); rows with an uncovered
// token get none), then the gate's and the transform's backward: dx_B -> dx, the transform's
// d(gate | up) pre-activations -> dgu [2 FT], per-row sums (dmult, ds, dtau, dctx) -> rowgrad,
// the transform's down-projection gradients -> pgrad.
template <class C>
__device__ void head_backward(const float* __restrict__ z, const float* __restrict__ zstats,
                              const float* __restrict__ target, const float* __restrict__ tstats,
                              const float* __restrict__ loss, const float* __restrict__ W,
                              const float* __restrict__ xs, const float* __restrict__ rows, float* __restrict__ dx,
                              float* __restrict__ dgu, float* __restrict__ rowgrad, float* __restrict__ pgrad, int V,
                              int blocks, float gamma, float scale) {
  __shared__ float rsum[C::ROW];
  __shared__ float psum[C::FT + 1];
  zero_shared(rsum, C::ROW);
  zero_shared(psum, C::FT + 1);
  __syncthreads();
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  const size_t T = (size_t)gridDim.y * V, tok = (size_t)n * V + t;
  const bool valid = t < V;
  float lp = 0.0f, keep = 0.0f;
  if (valid) token_lp(z, zstats, V, n, t, lp, keep);
  const float* lr = loss + LOSS * n;
  const bool active = valid && keep != 0.0f && lr[3] == 0.0f;
  const float* xb = xs + (size_t)blocks * (C::D + 1) * T;
  float x[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = valid ? xb[at(i, T, tok)] : 0.0f;
  const float* Wh = W + C::ENC_SIZE + blocks * C::BLOCK_SIZE;
  const float* rd = rows + (size_t)n * C::ROW;
  const float mult = __ldg(rd + C::R_MULT), s = __ldg(rd + C::R_S), tau = __ldg(rd + C::R_TAU);
  float g[C::FT], u[C::FT];
  transform_hidden<C>(x, Wh, rd, g, u);
  const float l_mod = transform_out<C>(g, u, Wh);
  const float uu = lp + l_mod;
  const float l = mult * uu;
  float dout = 0.0f;
  if (active) {
    const float o = l + logsigmoid(fmaf(s, l, tau));
    const float q = expf(o - lr[0]);
    const float tv = target[tok];
    const bool masked = tv == NEG_INF;
    const float p = masked ? 0.0f : expf((tv - tstats[STATS * n]) - tstats[STATS * n + 1]);
    dout = scale * (fmaf(q, 1.0f - gamma * lr[2], -p) + (masked ? gamma * q : 0.0f));
  }
  const float sg = sigmoidf_(-fmaf(s, l, tau));
  const float dl = dout * fmaf(s, sg, 1.0f);
  warp_add(rsum + C::R_MULT, dl * uu);
  warp_add(rsum + C::R_S, dout * sg * l);
  warp_add(rsum + C::R_TAU, dout * sg);
  const float du_total = mult * dl;
  warp_add(psum + C::FT, du_total);
  float d[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) d[i] = 0.0f;
#pragma unroll
  for (int f = 0; f < C::FT; ++f) {
    const float sgf = sigmoidf_(g[f]);
    const float si = g[f] * sgf;
    warp_add(psum + f, du_total * si * u[f]);
    const float dh = du_total * __ldg(Wh + C::TD_W + f);
    const float dg = dh * u[f] * sgf * fmaf(g[f], 1.0f - sgf, 1.0f);
    const float du = dh * si;
    warp_add(rsum + f, dg);
    warp_add(rsum + C::FT + f, du);
    if (valid) {
      dgu[at(f, T, tok)] = dg;
      dgu[at(C::FT + f, T, tok)] = du;
    }
#pragma unroll
    for (int j = 0; j < C::D; ++j)
      d[j] = fmaf(dg, __ldg(Wh + C::TG_W + f * 2 * C::D + j), fmaf(du, __ldg(Wh + C::TU_W + f * 2 * C::D + j), d[j]));
  }
  if (valid) {
#pragma unroll
    for (int i = 0; i < C::D; ++i) dx[at(i, T, tok)] = d[i];
  }
  __syncthreads();
  flush_sums(rsum, rowgrad + (size_t)n * C::ROW, C::ROW);
  flush_sums(psum, pgrad + C::pg_head(blocks), C::FT + 1);
}

// Per row (one thread block of ROW_HEAD_THREADS): c = pool / #kept and the per-row head's outputs
// [ctx_g, ctx_u, mult, s, tau] (common.cuh's sn_head_ctx, shared with the inference forward).
template <class C>
__device__ void rows_forward(const float* __restrict__ zstats, const float* __restrict__ W,
                             const float* __restrict__ acc, float* __restrict__ rows, int blocks) {
  const int n = blockIdx.x;
  sn_head_ctx<C>(zstats[STATS * n + 3], W + C::ENC_SIZE + blocks * C::BLOCK_SIZE,
                 acc + (size_t)n * C::acc_row(blocks) + blocks * C::ACC_BLOCK, rows + (size_t)n * C::ROW);
}

// The per-row head's backward, one thread block of ROW_HEAD_THREADS per row. From the row's
// gradient sums rowgrad [ROW] (d ctx_g, d ctx_u, d mult, d s, d tau; tr_head_bwd) and c = pool /
// #kept (recomputed, as are the heads' hidden units), it adds the gradients of the transform's
// context columns W[:, D:2D] and biases and of the scale and truncation heads to hgrad (laid out
// as the packed weights after the blocks) and writes dcu = (dL/dc) / #kept [D], the pool sum's
// gradient that the last block's backward adds to every kept token.
// mult = softplus(m): dm = dmult sigmoid(m) (none without the scale head); likewise s, tau.
template <class C>
__device__ void rows_backward(const float* __restrict__ zstats, const float* __restrict__ W,
                              const float* __restrict__ acc, const float* __restrict__ rowgrad,
                              float* __restrict__ hgrad, float* __restrict__ dcu, int blocks) {
  __shared__ float c[C::D];
  // The heads' hidden pre-activations (gate hg, up hu) and their gradients: units 0..FS-1 of
  // the scale head, then FS of the truncation head.
  __shared__ float hg[2 * C::FS], hu[2 * C::FS], dg[2 * C::FS], du[2 * C::FS];
  // d(pre-softplus mult, s, tau)
  __shared__ float dpre[3];
  const int n = blockIdx.x, tid = threadIdx.x;
  const float kept = zstats[STATS * n + 3];
  const float* Wh = W + C::ENC_SIZE + blocks * C::BLOCK_SIZE;
  const float* pool = acc + (size_t)n * C::acc_row(blocks) + blocks * C::ACC_BLOCK;
  const float* rg = rowgrad + (size_t)n * C::ROW;
  // Offsets of a head's parts from its gate weight: gate bias, up weight, up bias.
  constexpr int GB = C::FS * C::D, UW = GB + C::FS, UB = UW + C::FS * C::D;
  for (int i = tid; i < C::D; i += blockDim.x) c[i] = pool[i] / kept;
  __syncthreads();
  if (C::SCALE && tid < C::FS) sn_row_hidden<C>(Wh, C::SG_W, tid, c, hg[tid], hu[tid]);
  if (tid >= 32 && tid < 32 + C::FS) {
    const int f = tid - 32;
    sn_row_hidden<C>(Wh, C::RG_W, f, c, hg[C::FS + f], hu[C::FS + f]);
  }
  __syncthreads();
  if (tid == 0) {
    float s = __ldg(Wh + C::RD_B), tau = __ldg(Wh + C::RD_B + 1);
    for (int f = 0; f < C::FS; ++f) {
      const float h = silu(hg[C::FS + f]) * hu[C::FS + f];
      s = fmaf(__ldg(Wh + C::RD_W + f), h, s);
      tau = fmaf(__ldg(Wh + C::RD_W + C::FS + f), h, tau);
    }
    dpre[0] = 0.0f;
    dpre[1] = rg[C::R_S] * sigmoidf_(s);
    dpre[2] = rg[C::R_TAU] * sigmoidf_(tau);
    if (C::SCALE) {
      float m = __ldg(Wh + C::SD_B);
      for (int f = 0; f < C::FS; ++f) m = fmaf(__ldg(Wh + C::SD_W + f), silu(hg[f]) * hu[f], m);
      dpre[0] = rg[C::R_MULT] * sigmoidf_(m);
      atomicAdd(hgrad + C::SD_B, dpre[0]);
    }
    atomicAdd(hgrad + C::RD_B, dpre[1]);
    atomicAdd(hgrad + C::RD_B + 1, dpre[2]);
  }
  __syncthreads();
  // Hidden units: the down projections' gradients, d(gate), d(up) and the biases' gradients.
  if (tid < 2 * C::FS && (C::SCALE || tid >= C::FS)) {
    const bool trunc = tid >= C::FS;
    const int f = trunc ? tid - C::FS : tid;
    const float g = hg[tid], u = hu[tid];
    const float sg = sigmoidf_(g), si = g * sg, h = si * u;
    float dh;
    if (trunc) {
      atomicAdd(hgrad + C::RD_W + f, dpre[1] * h);
      atomicAdd(hgrad + C::RD_W + C::FS + f, dpre[2] * h);
      dh = fmaf(dpre[1], __ldg(Wh + C::RD_W + f), dpre[2] * __ldg(Wh + C::RD_W + C::FS + f));
    } else {
      atomicAdd(hgrad + C::SD_W + f, dpre[0] * h);
      dh = dpre[0] * __ldg(Wh + C::SD_W + f);
    }
    dg[tid] = dh * u * sg * fmaf(g, 1.0f - sg, 1.0f);
    du[tid] = dh * si;
    const int gw = trunc ? C::RG_W : C::SG_W;
    atomicAdd(hgrad + gw + GB + f, dg[tid]);
    atomicAdd(hgrad + gw + UB + f, du[tid]);
  }
  __syncthreads();
  // The heads' gate / up weights: outer products with c.
  for (int idx = tid; idx < C::FS * C::D; idx += blockDim.x) {
    const int f = idx / C::D, j = idx % C::D;
    if (C::SCALE) {
      atomicAdd(hgrad + C::SG_W + idx, dg[f] * c[j]);
      atomicAdd(hgrad + C::SG_W + UW + idx, du[f] * c[j]);
    }
    atomicAdd(hgrad + C::RG_W + idx, dg[C::FS + f] * c[j]);
    atomicAdd(hgrad + C::RG_W + UW + idx, du[C::FS + f] * c[j]);
  }
  // The transform's context columns and biases.
  for (int idx = tid; idx < C::FT * C::D; idx += blockDim.x) {
    const int f = idx / C::D, j = idx % C::D;
    atomicAdd(hgrad + C::TG_W + f * 2 * C::D + C::D + j, rg[f] * c[j]);
    atomicAdd(hgrad + C::TU_W + f * 2 * C::D + C::D + j, rg[C::FT + f] * c[j]);
  }
  for (int f = tid; f < C::FT; f += blockDim.x) {
    atomicAdd(hgrad + C::TG_B + f, rg[f]);
    atomicAdd(hgrad + C::TU_B + f, rg[C::FT + f]);
  }
  // dL/dc, divided by #kept.
  for (int j = tid; j < C::D; j += blockDim.x) {
    float d = 0.0f;
    for (int f = 0; f < C::FT; ++f) {
      d = fmaf(rg[f], __ldg(Wh + C::TG_W + f * 2 * C::D + C::D + j), d);
      d = fmaf(rg[C::FT + f], __ldg(Wh + C::TU_W + f * 2 * C::D + C::D + j), d);
    }
    for (int f = 0; f < C::FS; ++f) {
      if (C::SCALE) {
        d = fmaf(dg[f], __ldg(Wh + C::SG_W + f * C::D + j), d);
        d = fmaf(du[f], __ldg(Wh + C::SG_W + UW + f * C::D + j), d);
      }
      d = fmaf(dg[C::FS + f], __ldg(Wh + C::RG_W + f * C::D + j), d);
      d = fmaf(du[C::FS + f], __ldg(Wh + C::RG_W + UW + f * C::D + j), d);
    }
    dcu[(size_t)n * C::D + j] = d / kept;
  }
}

// Block b's backward, pass A. From x_b and the block's forward sums it recomputes the block;
// from dx (dL/dx_{b+1}; plus keep * dcu, the pool's share, for the last block) it writes the
// GEMM operands a, y1 (LN1 output), hf (FFN hidden), dy2 (LN2 input gradient), dgu (FFN gate |
// up pre-activation gradients), dy1 (LN1 input gradient) and dq into dqkv; it adds the LN
// gradients to pgrad and the row's dS = sum phi(q) dnum^T, ds = sum dden phi(q) to dacc.
template <class C>
__device__ void block_backward_a(const float* __restrict__ z, const float* __restrict__ zstats,
                                 const float* __restrict__ W, const float* __restrict__ xs,
                                 const float* __restrict__ acc, const float* __restrict__ dcu,
                                 const float* __restrict__ dx, float* __restrict__ a_buf, float* __restrict__ y1_buf,
                                 float* __restrict__ hf_buf, float* __restrict__ dy2_buf, float* __restrict__ dgu_buf,
                                 float* __restrict__ dy1_buf, float* __restrict__ dqkv_buf, float* __restrict__ dacc,
                                 float* __restrict__ pgrad, int V, int blocks, int b, int pool) {
  __shared__ float in_sums[C::ACC_BLOCK];
  __shared__ float dsums[C::ACC_BLOCK];
  __shared__ float lnsum[4 * C::D];
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  const size_t T = (size_t)gridDim.y * V, tok = (size_t)n * V + t;
  const float* row_acc = acc + (size_t)n * C::acc_row(blocks) + b * C::ACC_BLOCK;
  for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) in_sums[i] = row_acc[i];
  zero_shared(dsums, C::ACC_BLOCK);
  zero_shared(lnsum, 4 * C::D);
  __syncthreads();
  const bool valid = t < V;
  float lp = 0.0f, keep = 0.0f;
  if (valid) token_lp(z, zstats, V, n, t, lp, keep);
  const float* Wb = W + C::ENC_SIZE + b * C::BLOCK_SIZE;
  const float* xb = xs + (size_t)b * (C::D + 1) * T;
  float x[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = valid ? xb[at(i, T, tok)] : 0.0f;
  // Recompute the block.
  float phiq[C::D], att[C::D], inv[C::H];
  query<C>(x, Wb, phiq);
  attend<C>(phiq, in_sums, att, inv);
  if (valid) {
#pragma unroll
    for (int i = 0; i < C::D; ++i) a_buf[at(i, T, tok)] = att[i];
  }
  float xh1[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    float a = __ldg(Wb + C::OUT_B + i);
#pragma unroll
    for (int j = 0; j < C::D; ++j) a = fmaf(__ldg(Wb + C::OUT_W + i * C::D + j), att[j], a);
    xh1[i] = x[i] + a;
  }
  const float r1 = normalize<C>(xh1);
  float y1[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) y1[i] = fmaf(xh1[i], __ldg(Wb + C::LN1_W + i), __ldg(Wb + C::LN1_B + i));
  if (valid) {
#pragma unroll
    for (int i = 0; i < C::D; ++i) y1_buf[at(i, T, tok)] = y1[i];
  }
  float xh2[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) xh2[i] = y1[i] + __ldg(Wb + C::FD_B + i);
#pragma unroll 2
  for (int f = 0; f < C::FF; ++f) {
    float g, u;
    ffn_hidden<C>(y1, Wb, f, g, u);
    const float hf = silu(g) * u;
    if (valid) hf_buf[at(f, T, tok)] = hf;
#pragma unroll
    for (int i = 0; i < C::D; ++i) xh2[i] = fmaf(__ldg(Wb + C::FD_W + i * C::FF + f), hf, xh2[i]);
  }
  const float r2 = normalize<C>(xh2);
  // dL/dx_{b+1}.
  float g2[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    g2[i] = valid ? dx[at(i, T, tok)] : 0.0f;
    if (pool) g2[i] = fmaf(keep, __ldg(dcu + (size_t)n * C::D + i), g2[i]);
  }
  layer_norm_backward<C>(g2, xh2, r2, Wb + C::LN2_W, lnsum + 2 * C::D, lnsum + 3 * C::D);
  if (valid) {
#pragma unroll
    for (int i = 0; i < C::D; ++i) dy2_buf[at(i, T, tok)] = g2[i];
  }
  // FFN backward: dy1 = dy2 + W_gate^T dg + W_up^T du.
  float g1[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) g1[i] = g2[i];
#pragma unroll 2
  for (int f = 0; f < C::FF; ++f) {
    float g, u;
    ffn_hidden<C>(y1, Wb, f, g, u);
    float dh = 0.0f;
#pragma unroll
    for (int i = 0; i < C::D; ++i) dh = fmaf(__ldg(Wb + C::FD_W + i * C::FF + f), g2[i], dh);
    const float sg = sigmoidf_(g);
    const float dg = dh * u * sg * fmaf(g, 1.0f - sg, 1.0f);
    const float du = dh * g * sg;
    if (valid) {
      dgu_buf[at(f, T, tok)] = dg;
      dgu_buf[at(C::FF + f, T, tok)] = du;
    }
#pragma unroll
    for (int j = 0; j < C::D; ++j)
      g1[j] = fmaf(dg, __ldg(Wb + C::FG_W + f * C::D + j), fmaf(du, __ldg(Wb + C::FU_W + f * C::D + j), g1[j]));
  }
  layer_norm_backward<C>(g1, xh1, r1, Wb + C::LN1_W, lnsum, lnsum + C::D);
  if (valid) {
#pragma unroll
    for (int i = 0; i < C::D; ++i) dy1_buf[at(i, T, tok)] = g1[i];
  }
  // Output projection: da = W_out^T dy1 (into xh2, free now).
#pragma unroll
  for (int j = 0; j < C::D; ++j) {
    float a = 0.0f;
#pragma unroll
    for (int i = 0; i < C::D; ++i) a = fmaf(__ldg(Wb + C::OUT_W + i * C::D + j), g1[i], a);
    xh2[j] = a;
  }
  // Attention: dnum = da / den, dden = -(da . a) / den, dphi(q) = S_h dnum + dden s_h.
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    float dot = 0.0f;
#pragma unroll
    for (int j = 0; j < C::HW; ++j) dot = fmaf(xh2[h * C::HW + j], att[h * C::HW + j], dot);
    const float dden = -dot * inv[h];
#pragma unroll
    for (int j = 0; j < C::HW; ++j) xh2[h * C::HW + j] *= inv[h];
#pragma unroll
    for (int i = 0; i < C::HW; ++i) {
      const int c = h * C::HW + i;
      float dp = dden * in_sums[C::D * C::HW + c];
#pragma unroll
      for (int j = 0; j < C::HW; ++j) {
        dp = fmaf(in_sums[c * C::HW + j], xh2[h * C::HW + j], dp);
        warp_add(dsums + c * C::HW + j, phiq[c] * xh2[h * C::HW + j]);
      }
      warp_add(dsums + C::D * C::HW + c, dden * phiq[c]);
      if (valid) dqkv_buf[at(c, T, tok)] = dp * fminf(phiq[c], 1.0f);
    }
  }
  __syncthreads();
  flush_sums(dsums, dacc + (size_t)n * C::ACC_BLOCK, C::ACC_BLOCK);
  flush_sums(lnsum, pgrad + C::pg_block(b), 4 * C::D);
}

// Block b's backward, pass B: dk = keep dphi(k) min(phi(k), 1) with dphi(k) = dS_h v + ds_h,
// dv = keep dS_h^T phi(k) (into dqkv after dq), and dx = dL/dx_b = dy1 + W_qkv^T dqkv.
template <class C>
__device__ void block_backward_b(const float* __restrict__ z, const float* __restrict__ zstats,
                                 const float* __restrict__ W, const float* __restrict__ xs,
                                 const float* __restrict__ dacc, const float* __restrict__ dy1_buf,
                                 float* __restrict__ dqkv_buf, float* __restrict__ dx, int V, int blocks, int b) {
  __shared__ float dsums[C::ACC_BLOCK];
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) dsums[i] = dacc[(size_t)n * C::ACC_BLOCK + i];
  __syncthreads();
  if (t >= V) return;
  const size_t T = (size_t)gridDim.y * V, tok = (size_t)n * V + t;
  float lp, keep;
  token_lp(z, zstats, V, n, t, lp, keep);
  const float* Wb = W + C::ENC_SIZE + b * C::BLOCK_SIZE;
  const float* xb = xs + (size_t)b * (C::D + 1) * T;
  float x[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = xb[at(i, T, tok)];
  float k[C::D], v[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    float a, c;
    key_value<C>(x, Wb, i, a, c);
    k[i] = elu_plus_one(a);
    v[i] = c;
  }
  float dq[3 * C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) dq[i] = dqkv_buf[at(i, T, tok)];
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
#pragma unroll
    for (int i = 0; i < C::HW; ++i) {
      const int c = h * C::HW + i;
      float dk = dsums[C::D * C::HW + c];
#pragma unroll
      for (int j = 0; j < C::HW; ++j) dk = fmaf(dsums[c * C::HW + j], v[h * C::HW + j], dk);
      dq[C::D + c] = keep * dk * fminf(k[c], 1.0f);
    }
#pragma unroll
    for (int j = 0; j < C::HW; ++j) {
      float dv = 0.0f;
#pragma unroll
      for (int i = 0; i < C::HW; ++i) dv = fmaf(dsums[(h * C::HW + i) * C::HW + j], k[h * C::HW + i], dv);
      dq[2 * C::D + h * C::HW + j] = keep * dv;
    }
  }
#pragma unroll
  for (int i = C::D; i < 3 * C::D; ++i) dqkv_buf[at(i, T, tok)] = dq[i];
#pragma unroll
  for (int j = 0; j < C::D; ++j) {
    float a = dy1_buf[at(j, T, tok)];
#pragma unroll
    for (int o = 0; o < 3 * C::D; ++o) a = fmaf(__ldg(Wb + C::QKV_W + o * C::D + j), dq[o], a);
    dx[at(j, T, tok)] = a;
  }
}

// The encoder's backward from dx = dL/dx_0: its hidden units -> h (the down projection's GEMM
// operand, FE + 1 channels, the last all ones), the gate / up gradients (inputs are the scalar
// lp) -> pgrad.
template <class C>
__device__ void encode_backward(const float* __restrict__ z, const float* __restrict__ zstats,
                                const float* __restrict__ W, const float* __restrict__ dx, float* __restrict__ h_buf,
                                float* __restrict__ pgrad, int V) {
  __shared__ float esum[4 * C::FE];
  zero_shared(esum, 4 * C::FE);
  __syncthreads();
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  const size_t T = (size_t)gridDim.y * V, tok = (size_t)n * V + t;
  const bool valid = t < V;
  float lp = 0.0f, keep = 0.0f;
  if (valid) token_lp(z, zstats, V, n, t, lp, keep);
  float d[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) d[i] = valid ? dx[at(i, T, tok)] : 0.0f;
#pragma unroll
  for (int f = 0; f < C::FE; ++f) {
    const float g = fmaf(__ldg(W + C::ENC_GW + f), lp, __ldg(W + C::ENC_GB + f));
    const float u = fmaf(__ldg(W + C::ENC_UW + f), lp, __ldg(W + C::ENC_UB + f));
    const float sg = sigmoidf_(g);
    const float si = g * sg;
    if (valid) h_buf[at(f, T, tok)] = si * u;
    float dh = 0.0f;
#pragma unroll
    for (int i = 0; i < C::D; ++i) dh = fmaf(__ldg(W + C::ENC_DW + i * C::FE + f), d[i], dh);
    const float dg = dh * u * sg * fmaf(g, 1.0f - sg, 1.0f);
    const float du = dh * si;
    warp_add(esum + f, dg * lp);
    warp_add(esum + C::FE + f, dg);
    warp_add(esum + 2 * C::FE + f, du * lp);
    warp_add(esum + 3 * C::FE + f, du);
  }
  __syncthreads();
  flush_sums(esum, pgrad + C::PG_ENC, 4 * C::FE);
}

// One set of entry points per compiled configuration: name suffix d{D}_h{H}_e{EH}_f{DFF}_s{0|1}.
#define TR_CONFIG(NAME, D, H, EH, DFF, SC)                                                               \
  typedef Net<D, H, EH, DFF, SC> Net_##NAME;                                                             \
  extern "C" __global__ void __launch_bounds__(THREADS) tr_encode_##NAME(                               \
      const float* z, const float* zs, const float* W, float* xs, float* acc, int V, int blocks) {         \
    encode<Net_##NAME>(z, zs, W, xs, acc, V, blocks);                                                    \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(THREADS) tr_block_##NAME(                                \
      const float* z, const float* zs, const float* W, float* xs, float* acc, int V, int blocks, int b) {  \
    block<Net_##NAME>(z, zs, W, xs, acc, V, blocks, b);                                                  \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(ROW_HEAD_THREADS) tr_rows_##NAME(                      \
      const float* zs, const float* W, const float* acc, float* rows, int blocks) {                      \
    rows_forward<Net_##NAME>(zs, W, acc, rows, blocks);                                                  \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(ROW_HEAD_THREADS) tr_rows_bwd_##NAME(                  \
      const float* zs, const float* W, const float* acc, const float* rowgrad, float* hgrad, float* dcu,   \
      int blocks) {                                                                                      \
    rows_backward<Net_##NAME>(zs, W, acc, rowgrad, hgrad, dcu, blocks);                                  \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(THREADS) tr_head_##NAME(                                 \
      const float* z, const float* zs, const float* W, const float* xs, const float* rows, float* out,     \
      int V, int blocks) {                                                                               \
    head<Net_##NAME>(z, zs, W, xs, rows, out, V, blocks);                                                \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(THREADS) tr_head_bwd_##NAME(                             \
      const float* z, const float* zs, const float* target, const float* ts, const float* loss,           \
      const float* W, const float* xs, const float* rows, float* dx, float* dgu, float* rowgrad,          \
      float* pgrad, int V, int blocks, float gamma, float scale) {                                       \
    head_backward<Net_##NAME>(z, zs, target, ts, loss, W, xs, rows, dx, dgu, rowgrad, pgrad, V, blocks,    \
                              gamma, scale);                                                             \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(THREADS) tr_block_bwd_a_##NAME(                          \
      const float* z, const float* zs, const float* W, const float* xs, const float* acc,                 \
      const float* dcu, const float* dx, float* a_buf, float* y1_buf, float* hf_buf, float* dy2_buf,      \
      float* dgu_buf, float* dy1_buf, float* dqkv_buf, float* dacc, float* pgrad, int V, int blocks,      \
      int b, int pool) {                                                                                 \
    block_backward_a<Net_##NAME>(z, zs, W, xs, acc, dcu, dx, a_buf, y1_buf, hf_buf, dy2_buf, dgu_buf,     \
                                 dy1_buf, dqkv_buf, dacc, pgrad, V, blocks, b, pool);                    \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(THREADS) tr_block_bwd_b_##NAME(                          \
      const float* z, const float* zs, const float* W, const float* xs, const float* dacc,                \
      const float* dy1_buf, float* dqkv_buf, float* dx, int V, int blocks, int b) {                      \
    block_backward_b<Net_##NAME>(z, zs, W, xs, dacc, dy1_buf, dqkv_buf, dx, V, blocks, b);               \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(THREADS) tr_encode_bwd_##NAME(                           \
      const float* z, const float* zs, const float* W, const float* dx, float* h_buf, float* pgrad,       \
      int V) {                                                                                           \
    encode_backward<Net_##NAME>(z, zs, W, dx, h_buf, pgrad, V);                                          \
  }

// The compiled shapes (common.cuh, gpu::fused::COMPILED_CONFIGS).
SN_COMPILED_SHAPES(TR_CONFIG)
