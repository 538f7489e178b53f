// Device helpers shared by the fused learned-sampler kernels (fused_samplers.cu,
// sampling_network_tc.cu, fused_training.cu): constants, activations, the online log-sum-exp
// merge, the SamplingNetwork's packed-weight layout, its per-row head (sn_head_ctx) and the list
// of compiled SamplingNetwork shapes. Everything here is inlined into its callers, so the
// kernels' code does not depend on it living here (the build compiles each .cu with this folder
// on the include path; build.rs reruns when this file changes).
#pragma once

#define NEG_INF __int_as_float(0xff800000)
#define POS_INF __int_as_float(0x7f800000)
// The SamplingNetwork's epsilons (SPEC section 2): linear attention's denominator, LayerNorm.
#define ATTENTION_EPS 1e-6f
#define LAYER_NORM_EPS 1e-5f
// Floats per row of `sn_row_stats` (fused_samplers.cu), read by the forward kernels:
// {max z, L = log sum exp(z - max z), #NaN or +inf entries, #finite entries, entropy H}.
#define SN_STATS 5

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float softplus(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }
__device__ __forceinline__ float logsigmoid(float x) { return -softplus(-x); }
// phi of the linear attention: elu(x) + 1.
__device__ __forceinline__ float elu_plus_one(float x) { return x > 0.0f ? x + 1.0f : expf(x); }

// Online (max m, s = sum exp(x - m)) combination; an empty side has m = -inf, s = 0.
__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
  if (m2 == NEG_INF) return;
  if (m == NEG_INF) { m = m2; s = s2; return; }
  if (m2 > m) { s = s * expf(m - m2) + s2; m = m2; }
  else { s += s2 * expf(m2 - m); }
}

// Online (max m, s = sum exp(x - m), w = sum exp(x - m) x) combination (for the entropy); an
// empty side has m = -inf, s = w = 0.
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

// The SamplingNetwork's packed weights (`gpu::fused::packing_order`: every Linear as weight
// [out, in] row-major followed by bias [out]) as offsets, and its widths; the kernels' `Net`
// types extend it.
template <int D_, int H_, int EH_, int DFF_, bool SCALE_>
struct SnLayout {
  static constexpr int D = D_, H = H_, HW = D_ / H_;
  // SwiGLU hidden widths: encoder, FFN, transform, per-row heads (scale, truncation)
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
  // offsets from the end of the blocks: the transform SwiGLU(2D, D, 1), the scale head
  // SwiGLU(D, D/2, 1) (if SCALE), the truncation head SwiGLU(D, D/2, 2)
  static constexpr int TG_W = 0, TG_B = FT * 2 * D, TU_W = TG_B + FT, TU_B = TU_W + FT * 2 * D;
  static constexpr int TD_W = TU_B + FT, TD_B = TD_W + FT, T_END = TD_B + 1;
  static constexpr int SG_W = T_END, SG_B = SG_W + FS * D, SU_W = SG_B + FS, SU_B = SU_W + FS * D;
  static constexpr int SD_W = SU_B + FS, SD_B = SD_W + FS, S_END = SCALE ? SD_B + 1 : T_END;
  static constexpr int RG_W = S_END, RG_B = RG_W + FS * D, RU_W = RG_B + FS, RU_B = RU_W + FS * D;
  static constexpr int RD_W = RU_B + FS, RD_B = RD_W + 2 * FS, HEAD_SIZE = RD_B + 2;
  // attention sums per row: per block S [D][HW] (row = channel of phi(k), column = channel of
  // v within the head) then s [D]; after the blocks the pool sum [D]
  static constexpr int ACC_BLOCK = D * HW + D;
  static __host__ __device__ int acc_row(int blocks) { return blocks * ACC_BLOCK + D; }
};

// Hidden pre-activations g (gate) and u (up) of unit f of a per-row SwiGLU head whose gate
// weight [FS][D] starts at Wh + gate_w (then gate bias [FS], up weight [FS][D], up bias [FS]),
// on the row's pooled context c [D]. C: an SnLayout.
template <class C>
__device__ __forceinline__ void sn_row_hidden(const float* __restrict__ Wh, int gate_w, int f, const float* c, float& g,
                                              float& u) {
  const int gate_b = gate_w + C::FS * C::D, up_w = gate_b + C::FS, up_b = up_w + C::FS * C::D;
  g = __ldg(Wh + gate_b + f);
  u = __ldg(Wh + up_b + f);
  for (int j = 0; j < C::D; ++j) {
    g = fmaf(__ldg(Wh + gate_w + f * C::D + j), c[j], g);
    u = fmaf(__ldg(Wh + up_w + f * C::D + j), c[j], u);
  }
}

// The per-row part of the SamplingNetwork's head (SPEC section 2), one thread block of at least
// 64 + FS threads per row: c = pool / kept (pool: the row's sum of the last block's outputs over
// its kept tokens, D floats), then out = [ctx_g (FT), ctx_u (FT), mult, s, tau] with ctx_g / ctx_u
// = the transform's gate / up context parts W[:, D:2D] c + b, mult = softplus(scale head(c)) (1
// without the scale head), (s, tau) = softplus(truncation head(c)). Wh: the packed weights after
// the blocks. Used by the inference forward (snt_head_ctx) and the training step (tr_rows).
template <class C>
__device__ void sn_head_ctx(float kept, const float* __restrict__ Wh, const float* __restrict__ pool,
                            float* __restrict__ out) {
  __shared__ float c[C::D];
  __shared__ float hidden[2 * C::FS];
  const int tid = threadIdx.x;
  for (int i = tid; i < C::D; i += blockDim.x) c[i] = pool[i] / kept;
  __syncthreads();
  for (int f = tid; f < C::FT; f += blockDim.x) {
    float g = __ldg(Wh + C::TG_B + f), u = __ldg(Wh + C::TU_B + f);
    for (int j = 0; j < C::D; ++j) {
      g = fmaf(__ldg(Wh + C::TG_W + f * 2 * C::D + C::D + j), c[j], g);
      u = fmaf(__ldg(Wh + C::TU_W + f * 2 * C::D + C::D + j), c[j], u);
    }
    out[f] = g;
    out[C::FT + f] = u;
  }
  if (C::SCALE && tid >= 32 && tid < 32 + C::FS) {
    float g, u;
    sn_row_hidden<C>(Wh, C::SG_W, tid - 32, c, g, u);
    hidden[tid - 32] = silu(g) * u;
  }
  if (tid >= 64 && tid < 64 + C::FS) {
    float g, u;
    sn_row_hidden<C>(Wh, C::RG_W, tid - 64, c, g, u);
    hidden[C::FS + tid - 64] = silu(g) * u;
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
    out[2 * C::FT] = mult;
    out[2 * C::FT + 1] = softplus(s);
    out[2 * C::FT + 2] = softplus(tau);
  }
}

// The compiled SamplingNetwork shapes, X(name suffix, d_model, n_heads, encoder_hidden, d_ff,
// scale head): configs/samplers/sampling_network.yaml (the reference) and
// sampling_network_tiny.yaml, with and without the scale head; keep in sync with
// gpu::fused::COMPILED_CONFIGS.
#define SN_COMPILED_SHAPES(X)                   \
  X(d32_h4_e32_f64_s1, 32, 4, 32, 64, true)     \
  X(d32_h4_e32_f64_s0, 32, 4, 32, 64, false)    \
  X(d16_h2_e32_f32_s1, 16, 2, 32, 32, true)     \
  X(d16_h2_e32_f32_s0, 16, 2, 32, 32, false)
