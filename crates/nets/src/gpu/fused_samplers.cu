// Fused CUDA kernels of the learned samplers (SPEC section 2), f32 storage and arithmetic:
//
//   sn_row_stats     per row: max z, log sum exp(z - max), #NaN/+inf, #kept, H (one block per
//                    row); the SamplingNetwork's tensor-core kernels (sampling_network_tc.cu)
//                    and the SimpleDistributionAwareTransform below start from it
//   sn_fill          fills a buffer (NaN-poisoning in tests; the training step's fills too)
//   sdat_forward_*   the SimpleDistributionAwareTransform, one thread per (row n, token t)
//
// The weights are one packed f32 buffer in the order of `gpu::fused::simple_packing_order`
// (every Linear as weight [out, in] row-major followed by bias [out]). Masked tokens (z = -inf)
// use lp = 0 (MASKED_LP_SENTINEL) and get -inf out, exactly as `arch::prepare` / `arch::finish`.

#include "common.cuh"

#define THREADS 128

// Per row (SN_STATS floats): {max z, L = log sum exp(z - max z), #NaN or +inf entries,
// #finite entries, H = -sum p lp = max z + L - sum exp(z - max z) z / exp(L)}.
// One block of 1024 threads per row.
extern "C" __global__ void sn_row_stats(const float* __restrict__ z, int V, float* __restrict__ stats) {
  __shared__ float sm[32], ss[32], sw[32], sb[32], sk[32];
  const int n = blockIdx.x;
  const float* row = z + (size_t)n * V;
  float m = NEG_INF, s = 0.0f, w = 0.0f, bad = 0.0f, kept = 0.0f;
  // four entries per step, loaded before any is merged (independent loads in flight)
  for (int i0 = threadIdx.x; i0 < V; i0 += 4 * blockDim.x) {
    float xs[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int i = i0 + u * blockDim.x;
      xs[u] = i < V ? row[i] : NEG_INF;
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const float x = xs[u];
      if (isnan(x) || x == POS_INF) { bad += 1.0f; continue; }
      if (x == NEG_INF) continue;
      kept += 1.0f;
      lse_merge(m, s, w, x, 1.0f, x);
    }
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
    float* out = stats + SN_STATS * n;
    out[0] = m;
    out[1] = L;
    out[2] = bad;
    out[3] = kept;
    out[4] = m + L - w / s;
  }
}

// p[0..count) = value (grid-stride); NaN-poisons buffers in tests, and the training step's
// fills (gpu::fused::fill).
extern "C" __global__ void sn_fill(float* p, unsigned long long count, float value) {
  const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
    p[i] = value;
}

__device__ __forceinline__ const float* row_stats(const float* stats, int n) { return stats + SN_STATS * n; }

// lp and keep of token t of row n (t < V): lp = z - max - lse, or the sentinel 0 when masked.
__device__ __forceinline__ void token_lp(const float* __restrict__ z, const float* st, int V, int n, int t,
                                         float& lp, float& keep) {
  const float zt = z[(size_t)n * V + t];
  if (zt == NEG_INF) { lp = 0.0f; keep = 0.0f; }
  else { lp = zt - st[0] - st[1]; keep = 1.0f; }
}

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
