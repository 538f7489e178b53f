// Fused CUDA inference of the learned samplers (SPEC section 2), f32 storage, f32 arithmetic:
// the SamplingNetwork here, the SimpleDistributionAwareTransform at the end of the file.
//
// One thread per (row n, token t). The only operations that mix tokens are sums over the
// vocabulary (the row's log-sum-exp, each block's linear-attention sums
// S = sum_j phi(k_j) v_j^T and s = sum_j phi(k_j), the mean pool c), so a forward is
//
//   sn_row_stats                  per row: max z, log sum exp(z - max), #NaN/+inf, #kept, H
//   sn_encode_<cfg>               lp, encoder, block 0's k, v -> block 0's sums
//   sn_block_<cfg>  (b = 0..B-1)  block b's attention (from its sums), LN1, FFN, LN2,
//                                 then block b+1's k, v -> its sums (or, after the last block,
//                                 the pool sum of x)
//   sn_head_<cfg>                 per row: c, the transform's context part, mult, (s, tau);
//                                 per token: the transform head and the soft truncation gate
//
// i.e. B + 3 launches (plus zeroing the sums). Sums over tokens: warp shuffles, then shared
// memory atomics per thread block, then global atomics per row (f32).
//
// The weights are one packed f32 buffer in the order of `gpu::fused::packing_order`
// (every Linear as weight [out, in] row-major followed by bias [out]); the offsets below are
// that order. Masked tokens (z = -inf) use lp = 0 (MASKED_LP_SENTINEL), take no part in any sum
// and get -inf out, exactly as `arch::prepare` / `arch::finish` do.

#define NEG_INF __int_as_float(0xff800000)
#define POS_INF __int_as_float(0x7f800000)
#define THREADS 128
#define ATTENTION_EPS 1e-6f
#define LAYER_NORM_EPS 1e-5f

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float softplus(float x) {
  return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}
__device__ __forceinline__ float logsigmoid(float x) { return -softplus(-x); }
__device__ __forceinline__ float elu_plus_one(float x) { return x > 0.0f ? x + 1.0f : expf(x); }
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Online (max m, s = sum exp(x - m), w = sum exp(x - m) x) combination; an empty side has
// m = -inf, s = w = 0.
__device__ __forceinline__ void lse_merge(float& m, float& s, float& w, float m2, float s2, float w2) {
  if (m2 == NEG_INF) return;
  if (m == NEG_INF) { m = m2; s = s2; w = w2; return; }
  if (m2 > m) {
    const float r = expf(m - m2);
    s = s * r + s2; w = w * r + w2; m = m2;
  } else {
    const float r = expf(m2 - m);
    s += s2 * r; w += w2 * r;
  }
}

// Per row (STATS floats): {max z, L = log sum exp(z - max z), #NaN or +inf entries,
// #finite entries, H = -sum p lp = max z + L - sum exp(z - max z) z / exp(L)}.
// One block of 1024 threads per row.
#define STATS 5
extern "C" __global__ void sn_row_stats(const float* __restrict__ z, int V, float* __restrict__ stats) {
  __shared__ float sm[32], ss[32], sw[32], sb[32], sk[32];
  const int n = blockIdx.x;
  const float* row = z + (size_t)n * V;
  float m = NEG_INF, s = 0.0f, w = 0.0f, bad = 0.0f, kept = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float x = row[i];
    if (isnan(x) || x == POS_INF) { bad += 1.0f; continue; }
    if (x == NEG_INF) continue;
    kept += 1.0f;
    lse_merge(m, s, w, x, 1.0f, x);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
    const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
    const float w2 = __shfl_xor_sync(0xffffffffu, w, o);
    lse_merge(m, s, w, m2, s2, w2);
    bad += __shfl_xor_sync(0xffffffffu, bad, o);
    kept += __shfl_xor_sync(0xffffffffu, kept, o);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) { sm[warp] = m; ss[warp] = s; sw[warp] = w; sb[warp] = bad; sk[warp] = kept; }
  __syncthreads();
  if (threadIdx.x == 0) {
    const int warps = (blockDim.x + 31) / 32;
    m = NEG_INF; s = 0.0f; w = 0.0f; bad = 0.0f; kept = 0.0f;
    for (int i = 0; i < warps; ++i) { lse_merge(m, s, w, sm[i], ss[i], sw[i]); bad += sb[i]; kept += sk[i]; }
    const float L = logf(s);
    float* out = stats + STATS * n;
    out[0] = m;
    out[1] = L;
    out[2] = bad;
    out[3] = kept;
    out[4] = m + L - w / s;
  }
}

// p[0..count) = value (grid-stride); used to poison buffers in tests.
extern "C" __global__ void sn_fill(float* p, unsigned long long count, float value) {
  const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
    p[i] = value;
}

template <int D_, int H_, int EH_, int DFF_, bool SCALE_>
struct Net {
  static constexpr int D = D_, H = H_, HW = D_ / H_;
  static constexpr int FE = 2 * EH_ / 3, FF = 2 * DFF_ / 3, FT = 2 * D_ / 3, FS = 2 * (D_ / 2) / 3;
  static constexpr bool SCALE = SCALE_;
  // encoder SwiGLU(1, EH, D)
  static constexpr int ENC_GW = 0, ENC_GB = FE, ENC_UW = 2 * FE, ENC_UB = 3 * FE;
  static constexpr int ENC_DW = 4 * FE, ENC_DB = ENC_DW + D * FE, ENC_SIZE = ENC_DB + D;
  // one block, offsets from its start
  static constexpr int QKV_W = 0, QKV_B = 3 * D * D, OUT_W = QKV_B + 3 * D, OUT_B = OUT_W + D * D;
  static constexpr int LN1_W = OUT_B + D, LN1_B = LN1_W + D;
  static constexpr int FG_W = LN1_B + D, FG_B = FG_W + FF * D, FU_W = FG_B + FF, FU_B = FU_W + FF * D;
  static constexpr int FD_W = FU_B + FF, FD_B = FD_W + D * FF, LN2_W = FD_B + D, LN2_B = LN2_W + D;
  static constexpr int BLOCK_SIZE = LN2_B + D;
  // head, offsets from its start: transform SwiGLU(2D, D, 1), scale SwiGLU(D, D/2, 1),
  // truncation SwiGLU(D, D/2, 2)
  static constexpr int TG_W = 0, TG_B = FT * 2 * D, TU_W = TG_B + FT, TU_B = TU_W + FT * 2 * D;
  static constexpr int TD_W = TU_B + FT, TD_B = TD_W + FT, T_END = TD_B + 1;
  static constexpr int SG_W = T_END, SG_B = SG_W + FS * D, SU_W = SG_B + FS, SU_B = SU_W + FS * D;
  static constexpr int SD_W = SU_B + FS, SD_B = SD_W + FS, S_END = SCALE ? SD_B + 1 : T_END;
  static constexpr int RG_W = S_END, RG_B = RG_W + FS * D, RU_W = RG_B + FS, RU_B = RU_W + FS * D;
  static constexpr int RD_W = RU_B + FS, RD_B = RD_W + 2 * FS, HEAD_SIZE = RD_B + 2;
  // per-row sums: per block S [D][HW] (row d = channel of phi(k), column = channel of v within
  // the head) then s [D]; after the blocks the pool sum [D]
  static constexpr int ACC_BLOCK = D * HW + D;
  static __host__ __device__ int acc_row(int blocks) { return blocks * ACC_BLOCK + D; }
};

// Token activations are stored channel-major, [N][D][V], so a warp's loads and stores of one
// channel are contiguous.
template <class C>
__device__ __forceinline__ size_t x_index(int n, int i, int V, int t) {
  return ((size_t)n * C::D + i) * V + t;
}

__device__ __forceinline__ const float* row_stats(const float* stats, int n) { return stats + STATS * n; }

// lp and keep of token t of row n (t < V): lp = z - max - lse, or the sentinel 0 when masked.
__device__ __forceinline__ void token_lp(const float* __restrict__ z, const float* st, int V, int n, int t,
                                         float& lp, float& keep) {
  const float zt = z[(size_t)n * V + t];
  if (zt == NEG_INF) { lp = 0.0f; keep = 0.0f; }
  else { lp = zt - st[0] - st[1]; keep = 1.0f; }
}

// Adds keep * phi(k) v^T (same-head pairs) and keep * phi(k) of this thread's token, summed over
// the thread block, into `sums` (shared, ACC_BLOCK floats, zeroed by the caller).
template <class C>
__device__ __forceinline__ void add_kv(const float (&x)[C::D], const float* __restrict__ Wb, float keep, float* sums) {
  float k[C::D], v[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    float a = __ldg(Wb + C::QKV_B + C::D + i), b = __ldg(Wb + C::QKV_B + 2 * C::D + i);
#pragma unroll
    for (int j = 0; j < C::D; ++j) {
      a = fmaf(__ldg(Wb + C::QKV_W + (C::D + i) * C::D + j), x[j], a);
      b = fmaf(__ldg(Wb + C::QKV_W + (2 * C::D + i) * C::D + j), x[j], b);
    }
    k[i] = keep * elu_plus_one(a);
    v[i] = b;
  }
  const bool lane0 = (threadIdx.x % 32) == 0;
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    const int head = i / C::HW;
#pragma unroll
    for (int j = 0; j < C::HW; ++j) {
      const float p = warp_sum(k[i] * v[head * C::HW + j]);
      if (lane0) atomicAdd(sums + i * C::HW + j, p);
    }
    const float q = warp_sum(k[i]);
    if (lane0) atomicAdd(sums + C::D * C::HW + i, q);
  }
}

__device__ __forceinline__ void zero_shared(float* s, int count) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) s[i] = 0.0f;
}

__device__ __forceinline__ void flush_sums(const float* s, float* __restrict__ dst, int count) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) atomicAdd(dst + i, s[i]);
}

template <class C>
__device__ __forceinline__ void layer_norm(float (&y)[C::D], const float* __restrict__ w, const float* __restrict__ b) {
  float mean = 0.0f;
#pragma unroll
  for (int i = 0; i < C::D; ++i) mean += y[i];
  mean *= 1.0f / C::D;
  float var = 0.0f;
#pragma unroll
  for (int i = 0; i < C::D; ++i) { y[i] -= mean; var = fmaf(y[i], y[i], var); }
  const float inv = rsqrtf(var * (1.0f / C::D) + LAYER_NORM_EPS);
#pragma unroll
  for (int i = 0; i < C::D; ++i) y[i] = fmaf(y[i] * inv, __ldg(w + i), __ldg(b + i));
}

// x = encoder(lp) for every token, and block 0's sums.
template <class C>
__device__ void encode(const float* __restrict__ z, const float* __restrict__ stats, const float* __restrict__ W,
                       float* __restrict__ xs, float* __restrict__ acc, int V, int blocks) {
  __shared__ float sums[C::ACC_BLOCK];
  zero_shared(sums, C::ACC_BLOCK);
  __syncthreads();
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  const bool valid = t < V;
  float lp = 0.0f, keep = 0.0f;
  if (valid) token_lp(z, row_stats(stats, n), V, n, t, lp, keep);
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
    for (int i = 0; i < C::D; ++i) xs[x_index<C>(n, i, V, t)] = x[i];
  }
  add_kv<C>(x, W + C::ENC_SIZE, keep, sums);
  __syncthreads();
  flush_sums(sums, acc + (size_t)n * C::acc_row(blocks), C::ACC_BLOCK);
}

// Block b on every token (x in place), then block b+1's sums or the pool sum.
template <class C>
__device__ void block(const float* __restrict__ z, const float* __restrict__ stats, const float* __restrict__ W,
                      float* __restrict__ xs, float* __restrict__ acc, int V, int blocks, int b) {
  __shared__ float in_sums[C::ACC_BLOCK];
  __shared__ float out_sums[C::ACC_BLOCK];
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  float* row_acc = acc + (size_t)n * C::acc_row(blocks);
  for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) in_sums[i] = row_acc[b * C::ACC_BLOCK + i];
  zero_shared(out_sums, C::ACC_BLOCK);
  __syncthreads();
  const bool valid = t < V;
  float lp = 0.0f, keep = 0.0f;
  if (valid) token_lp(z, row_stats(stats, n), V, n, t, lp, keep);
  float x[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = valid ? xs[x_index<C>(n, i, V, t)] : 0.0f;
  const float* Wb = W + C::ENC_SIZE + b * C::BLOCK_SIZE;
  // attention: a = (phi(q)^T S) / (phi(q)^T s + eps) per head, y = x + out(a)
  float q[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    float a = __ldg(Wb + C::QKV_B + i);
#pragma unroll
    for (int j = 0; j < C::D; ++j) a = fmaf(__ldg(Wb + C::QKV_W + i * C::D + j), x[j], a);
    q[i] = elu_plus_one(a);
  }
  float att[C::D];
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    float den = 0.0f;
#pragma unroll
    for (int i = 0; i < C::HW; ++i) den = fmaf(q[h * C::HW + i], in_sums[C::D * C::HW + h * C::HW + i], den);
    const float inv = 1.0f / (den + ATTENTION_EPS);
#pragma unroll
    for (int j = 0; j < C::HW; ++j) {
      float num = 0.0f;
#pragma unroll
      for (int i = 0; i < C::HW; ++i) num = fmaf(q[h * C::HW + i], in_sums[(h * C::HW + i) * C::HW + j], num);
      att[h * C::HW + j] = num * inv;
    }
  }
  float y[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) {
    float a = __ldg(Wb + C::OUT_B + i);
#pragma unroll
    for (int j = 0; j < C::D; ++j) a = fmaf(__ldg(Wb + C::OUT_W + i * C::D + j), att[j], a);
    y[i] = x[i] + a;
  }
  layer_norm<C>(y, Wb + C::LN1_W, Wb + C::LN1_B);
  // FFN: x = LN2(y + down(silu(gate y) * up y))
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = y[i] + __ldg(Wb + C::FD_B + i);
#pragma unroll 2
  for (int f = 0; f < C::FF; ++f) {
    float g = __ldg(Wb + C::FG_B + f), u = __ldg(Wb + C::FU_B + f);
#pragma unroll
    for (int j = 0; j < C::D; ++j) {
      g = fmaf(__ldg(Wb + C::FG_W + f * C::D + j), y[j], g);
      u = fmaf(__ldg(Wb + C::FU_W + f * C::D + j), y[j], u);
    }
    const float hf = silu(g) * u;
#pragma unroll
    for (int i = 0; i < C::D; ++i) x[i] = fmaf(__ldg(Wb + C::FD_W + i * C::FF + f), hf, x[i]);
  }
  layer_norm<C>(x, Wb + C::LN2_W, Wb + C::LN2_B);
  if (valid) {
#pragma unroll
    for (int i = 0; i < C::D; ++i) xs[x_index<C>(n, i, V, t)] = x[i];
  }
  if (b + 1 < blocks) {
    add_kv<C>(x, Wb + C::BLOCK_SIZE, keep, out_sums);
    __syncthreads();
    flush_sums(out_sums, row_acc + (b + 1) * C::ACC_BLOCK, C::ACC_BLOCK);
  } else {
    const bool lane0 = (threadIdx.x % 32) == 0;
#pragma unroll
    for (int i = 0; i < C::D; ++i) {
      const float p = warp_sum(keep * x[i]);
      if (lane0) atomicAdd(out_sums + i, p);
    }
    __syncthreads();
    flush_sums(out_sums, row_acc + blocks * C::ACC_BLOCK, C::D);
  }
}

// c = pool / #kept; per row the transform's context part, mult and (s, tau); per token the
// transform head and the gate.
template <class C>
__device__ void head(const float* __restrict__ z, const float* __restrict__ stats, const float* __restrict__ W,
                     const float* __restrict__ xs, const float* __restrict__ acc, float* __restrict__ out, int V,
                     int blocks) {
  __shared__ float c[C::D];
  __shared__ float ctx[2 * C::FT];
  __shared__ float gate[3];  // mult, s, tau
  __shared__ float hidden[2 * C::FS];
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  const float* st = row_stats(stats, n);
  const float* Wh = W + C::ENC_SIZE + blocks * C::BLOCK_SIZE;
  const float* pool = acc + (size_t)n * C::acc_row(blocks) + blocks * C::ACC_BLOCK;
  for (int i = threadIdx.x; i < C::D; i += blockDim.x) c[i] = pool[i] / st[3];
  __syncthreads();
  for (int f = threadIdx.x; f < C::FT; f += blockDim.x) {
    float g = __ldg(Wh + C::TG_B + f), u = __ldg(Wh + C::TU_B + f);
    for (int j = 0; j < C::D; ++j) {
      g = fmaf(__ldg(Wh + C::TG_W + f * 2 * C::D + C::D + j), c[j], g);
      u = fmaf(__ldg(Wh + C::TU_W + f * 2 * C::D + C::D + j), c[j], u);
    }
    ctx[f] = g;
    ctx[C::FT + f] = u;
  }
  // the scale and truncation heads' hidden units, one thread each (warps 1 and 2)
  const int tid = threadIdx.x;
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
    gate[0] = mult;
    gate[1] = softplus(s);
    gate[2] = softplus(tau);
  }
  __syncthreads();
  if (t >= V) return;
  float lp, keep;
  token_lp(z, st, V, n, t, lp, keep);
  const size_t idx = (size_t)n * V + t;
  if (keep == 0.0f) { out[idx] = NEG_INF; return; }
  float x[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) x[i] = xs[x_index<C>(n, i, V, t)];
  float l_mod = __ldg(Wh + C::TD_B);
#pragma unroll 3
  for (int f = 0; f < C::FT; ++f) {
    float g = ctx[f], u = ctx[C::FT + f];
#pragma unroll
    for (int j = 0; j < C::D; ++j) {
      g = fmaf(__ldg(Wh + C::TG_W + f * 2 * C::D + j), x[j], g);
      u = fmaf(__ldg(Wh + C::TU_W + f * 2 * C::D + j), x[j], u);
    }
    l_mod = fmaf(__ldg(Wh + C::TD_W + f), silu(g) * u, l_mod);
  }
  const float l = (lp + l_mod) * gate[0];
  out[idx] = l + logsigmoid(fmaf(gate[1], l, gate[2]));
}

// One set of entry points per compiled configuration: name suffix d{D}_h{H}_e{EH}_f{DFF}_s{0|1}.
#define SN_CONFIG(NAME, D, H, EH, DFF, SC)                                                          \
  extern "C" __global__ void __launch_bounds__(THREADS) sn_encode_##NAME(                          \
      const float* z, const float* stats, const float* W, float* xs, float* acc, int V, int blocks) { \
    encode<Net<D, H, EH, DFF, SC>>(z, stats, W, xs, acc, V, blocks);                                \
  }                                                                                                 \
  extern "C" __global__ void __launch_bounds__(THREADS) sn_block_##NAME(                           \
      const float* z, const float* stats, const float* W, float* xs, float* acc, int V, int blocks,   \
      int b) {                                                                                      \
    block<Net<D, H, EH, DFF, SC>>(z, stats, W, xs, acc, V, blocks, b);                              \
  }                                                                                                 \
  extern "C" __global__ void __launch_bounds__(THREADS) sn_head_##NAME(                            \
      const float* z, const float* stats, const float* W, const float* xs, const float* acc,         \
      float* out, int V, int blocks) {                                                              \
    head<Net<D, H, EH, DFF, SC>>(z, stats, W, xs, acc, out, V, blocks);                             \
  }

// configs/samplers/sampling_network.yaml (the reference) and sampling_network_tiny.yaml, with
// and without the scale head; keep in sync with gpu::fused::COMPILED_CONFIGS.
SN_CONFIG(d32_h4_e32_f64_s1, 32, 4, 32, 64, true)
SN_CONFIG(d32_h4_e32_f64_s0, 32, 4, 32, 64, false)
SN_CONFIG(d16_h2_e32_f32_s1, 16, 2, 32, 32, true)
SN_CONFIG(d16_h2_e32_f32_s0, 16, 2, 32, 32, false)

// ---------------------------------------------------------------------------------------------
// SimpleDistributionAwareTransform(h, dynamic) (SPEC section 2): per row the stats
// [max lp, H] = [-L, H] (from sn_row_stats), per token f = silu(local(lp)),
// l = lp + mlp([f, max lp, H]), out = l + logsigmoid(s l + tau); one launch after the stats.
// Packed weights: local.{weight [h,1], bias}, mlp.{gate, up} ([F, h+2], [F]), mlp.down ([1, F],
// [1]), then truncation.{weight [2,2], bias [2]} (dynamic) or truncation.{scale_raw,
// threshold_raw} (static).
template <int HID_, bool DYN_>
struct Simple {
  static constexpr int HID = HID_, F = 2 * HID_ / 3, IN = HID_ + 2;
  static constexpr bool DYN = DYN_;
  static constexpr int L_W = 0, L_B = HID, G_W = 2 * HID, G_B = G_W + F * IN, U_W = G_B + F;
  static constexpr int U_B = U_W + F * IN, D_W = U_B + F, D_B = D_W + F, T = D_B + 1;
};

template <class C>
__device__ void simple_forward(const float* __restrict__ z, const float* __restrict__ stats,
                               const float* __restrict__ W, float* __restrict__ out, int V) {
  __shared__ float ctx[2 * C::F];
  __shared__ float gate[2];  // s, tau
  const int n = blockIdx.y, t = blockIdx.x * blockDim.x + threadIdx.x;
  const float* st = row_stats(stats, n);
  const float max_lp = -st[1], entropy = st[4];
  for (int f = threadIdx.x; f < C::F; f += blockDim.x) {
    ctx[f] = __ldg(W + C::G_B + f) + __ldg(W + C::G_W + f * C::IN + C::HID) * max_lp +
             __ldg(W + C::G_W + f * C::IN + C::HID + 1) * entropy;
    ctx[C::F + f] = __ldg(W + C::U_B + f) + __ldg(W + C::U_W + f * C::IN + C::HID) * max_lp +
                    __ldg(W + C::U_W + f * C::IN + C::HID + 1) * entropy;
  }
  if (threadIdx.x == 0) {
    if (C::DYN) {
      gate[0] = softplus(__ldg(W + C::T + 4) + __ldg(W + C::T + 0) * max_lp + __ldg(W + C::T + 1) * entropy);
      gate[1] = softplus(__ldg(W + C::T + 5) + __ldg(W + C::T + 2) * max_lp + __ldg(W + C::T + 3) * entropy);
    } else {
      gate[0] = softplus(__ldg(W + C::T));
      gate[1] = softplus(__ldg(W + C::T + 1));
    }
  }
  __syncthreads();
  if (t >= V) return;
  float lp, keep;
  token_lp(z, st, V, n, t, lp, keep);
  const size_t idx = (size_t)n * V + t;
  if (keep == 0.0f) { out[idx] = NEG_INF; return; }
  float feat[C::HID];
#pragma unroll
  for (int h = 0; h < C::HID; ++h) feat[h] = silu(fmaf(__ldg(W + C::L_W + h), lp, __ldg(W + C::L_B + h)));
  float mod = __ldg(W + C::D_B);
#pragma unroll 2
  for (int f = 0; f < C::F; ++f) {
    float g = ctx[f], u = ctx[C::F + f];
#pragma unroll
    for (int h = 0; h < C::HID; ++h) {
      g = fmaf(__ldg(W + C::G_W + f * C::IN + h), feat[h], g);
      u = fmaf(__ldg(W + C::U_W + f * C::IN + h), feat[h], u);
    }
    mod = fmaf(__ldg(W + C::D_W + f), silu(g) * u, mod);
  }
  const float l = lp + mod;
  out[idx] = l + logsigmoid(fmaf(gate[0], l, gate[1]));
}

// Entry points per compiled hidden width: sdat_forward_h{HID}_{dyn|static}.
#define SDAT_CONFIG(NAME, HID, DYN)                                                              \
  extern "C" __global__ void __launch_bounds__(THREADS) sdat_forward_##NAME(                    \
      const float* z, const float* stats, const float* W, float* out, int V) {                 \
    simple_forward<Simple<HID, DYN>>(z, stats, W, out, V);                                     \
  }

// configs/samplers/simple_{dynamic,static}.yaml (h 64) and h 16 / 32; keep in sync with
// gpu::fused::COMPILED_SIMPLE_HIDDEN.
SDAT_CONFIG(h64_dyn, 64, true)
SDAT_CONFIG(h64_static, 64, false)
SDAT_CONFIG(h32_dyn, 32, true)
SDAT_CONFIG(h32_static, 32, false)
SDAT_CONFIG(h16_dyn, 16, true)
SDAT_CONFIG(h16_static, 16, false)
