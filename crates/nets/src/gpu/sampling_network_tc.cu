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
// operands) per channel over a 16-token tile, the attention sums per head (its numerators and
// its denominator apart), by a power of two before the f16 conversion (the products are scaled
// back in f32 by the exact inverse, both read off the exponent bits), so large
// |log-probabilities| cannot overflow f16; values under 2^10 are never rescaled. Where a head's
// sums span more than WIDE_RANGE (soft-masked rows: finite logits ~1e4 below the maximum), no
// such factor keeps every term within split f16's 22 bits: that row's thread blocks compute
// phi(q) . [S | s] in f32 on the CUDA cores instead (attention_f32).
//
// Per-token exponentials, logarithms and reciprocals use the hardware approximations (ex2, lg2,
// rcp .approx.ftz: within 2 ulp of f32, far below the f16 split's rounding); docs/gpu.md gives
// the measured worst differences from plain candle.
//
// Passes (one launch each) over every (row n, token t), for B blocks:
//   snt_pass (p = 0)        encoder(lp) -> block 0's sums S = sum phi(k) v^T, s = sum phi(k)
//   snt_pass (p = 1..B)     x = encoder(lp) (p = 1) or x_{p-1} from memory; block p-1 on x;
//                           store x_p; then block p's sums (p < B) or the pool sum (p = B)
//   snt_head_ctx            per row: c = pool / #kept, the transform's context part, mult, s, tau
//   snt_head                per token: the transform head and the soft truncation gate
// A pass kernel is compiled per kind (name snt_pass{K}, K = the SNT_* bits below: 5 for p = 0,
// 7 or 3 for p = 1 with or without a next block, 6 for 1 < p < B, 2 for p = B > 1), so each
// carries only its own stages.
// Each thread block works on one row (grid.y = row); its 8 warps loop over that row's 16-token
// tiles; the sums go warp registers -> shared memory -> global atomics (the `acc` layout of
// common.cuh's SnLayout: per block S [D][8] then s [D]; after the blocks the pool [D]).
// Activations between passes: [N][V][D] in lane order, f32 (P = 2) or f16 (P = 0); load_x.
//
// Fragment layouts (PTX ISA, mma.m16n8k16, g = lane / 4, t = lane % 4):
//   A (16x16, row-major): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
//   B (16x8, k x n):      b0 = (k 2t..2t+1, n g), b1 = (k 2t+8..2t+9, n g)
//   C (16x8, f32):        c0 = (g, 2t), c1 = (g, 2t+1), c2 = (g+8, 2t), c3 = (g+8, 2t+1)
// so the C tiles of channels 16c..16c+15 are the A fragment of k-chunk c of the next product.
// The weights sit in shared memory in fragment order (stage_b / stage_a): a lane's whole
// fragment (hi and lo) is one 16-byte load.

#include <cuda_fp16.h>
#include <stdint.h>

#include "common.cuh"
#include "mma.cuh"

#define TC_WARPS 8
#define TC_THREADS (TC_WARPS * 32)
// Dynamic shared memory every pass kernel is launched with (gpu::fused::TC_SMEM_BYTES).
#define TC_SMEM_BYTES 65536
// Pass kinds (bits of the kernel name's K): the encoder makes x, a block runs on x, the next
// block's attention sums (else the mean pool) are added (gpu::fused::pass_kind).
#define SNT_ENC 1
#define SNT_BLOCK 2
#define SNT_NEXT 4

// The pass's shared f32 scalar slots (`scal`, SLOTS of them; head h < 4 at base + h):
// S_NUM / S_DEN: max |.| of head h's attention numerators / denominators (block p-1's sums /
// #kept), S_DMIN: their smallest denominator entry; S_EPS: ATTENTION_EPS / #kept times the
// denominators' factor, S_RATIO: denominators' factor / numerators' factor (head_scale); slots
// 4 .. 15: the |weight| and |bias| maxima of the pass's Bounds; S_EPS32: ATTENTION_EPS / #kept.
#define S_NUM 0
#define S_DEN 16
#define S_DMIN 20
#define S_EPS 24
#define S_RATIO 28
#define S_EPS32 32
#define SLOTS 36

// A head's sums count as wide (attention in f32 on the CUDA cores, see block) when its largest
// denominator entry (mean phi(k) over the row's kept tokens, one k channel) exceeds its
// smallest more than this many times (2^28 = 2.7e8). In an f64 emulation of block 0 on the CPU
// (docs/gpu.md, "Open limitation"; 84 rows each) the largest head's span was 3.7e4 .. 1.5e8 on
// ordinary rows, 2.4e9 .. 9.5e13 on soft-masked rows.
#define WIDE_RANGE 268435456.0f

namespace tc {

// The hardware approximations (MUFU, one instruction each; subnormal inputs and results flush
// to 0): 2^x, 1 / x, log2 x, each within 2 ulp of f32.
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float rcp_approx(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float lg2_approx(float x) {
  float y;
  asm("lg2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// e^x = 2^(x log2 e).
__device__ __forceinline__ float fast_exp(float x) { return ex2_approx(x * 1.4426950408889634f); }
// silu(x) = x sigmoid(x) = x / (1 + e^-x) (x < -88: -0).
__device__ __forceinline__ float fast_silu(float x) { return x * rcp_approx(1.0f + fast_exp(-x)); }
// phi of the linear attention, elu(x) + 1.
__device__ __forceinline__ float fast_elu_plus_one(float x) { return x > 0.0f ? x + 1.0f : fast_exp(x); }
// softplus(x) = max(x, 0) + log(1 + e^-|x|).
__device__ __forceinline__ float fast_softplus(float x) {
  return fmaxf(x, 0.0f) + 0.6931471805599453f * lg2_approx(1.0f + fast_exp(-fabsf(x)));
}


// v summed over the lanes that differ from this one in the bits of MASKS (xor shuffles, in order).
template <int... MASKS>
__device__ __forceinline__ float xor_sum(float v) {
  ((v += __shfl_xor_sync(0xffffffffu, v, MASKS)), ...);
  return v;
}





// A power-of-two factor s and its exact inverse.
struct Pow2 { float s, inv; };

// The factor that brings |value| <= m (m >= 0) under 2^8, from m's exponent bits E (m in
// [2^(E-127), 2^(E-126))): s = 2^(134 - E), inv = 2^(E - 134); s = inv = 1 if m is below 2^10
// (E < 137) or not finite (E = 255).
__device__ __forceinline__ Pow2 scale_for(float m) {
  const int e = __float_as_int(m) >> 23;
  const bool big = e >= 137 && e < 255;
  return big ? Pow2{__int_as_float((261 - e) << 23), __int_as_float((e - 7) << 23)} : Pow2{1.0f, 1.0f};
}

// The factor that brings a head's largest attention sum m (>= 0) into [2^7, 2^8): 2^(134 - E)
// for E from 8 (below: 2^126) to 254; 1 if m = 0.
__device__ __forceinline__ float head_scale(float m) {
  const int e = max(__float_as_int(m) >> 23, 8);
  return m > 0.0f ? __int_as_float((261 - e) << 23) : 1.0f;
}

// scale_for per token: s[0] for row g, s[1] for row g+8 (a token's channels live in a quad), so
// one huge token does not push its tile-mates' values into f16's subnormal range.
template <int NT>
__device__ __forceinline__ void row_scales(const float (&c)[NT][4], Pow2 (&s)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    s[r] = scale_for(tc::token_absmax(c, r));
  }
}

// C tiles (NT = 2 KC n-tiles of 8 channels; rows g, g+8 times s0, s1) -> KC A fragments.
template <int KC, int P>
__device__ __forceinline__ void to_frags(AFrag (&a)[KC], const float (&c)[2 * KC][4], float s0, float s1) {
#pragma unroll
  for (int k = 0; k < KC; ++k) {
    split2<P>(c[2 * k][0] * s0, c[2 * k][1] * s0, a[k].h[0], a[k].l[0]);
    split2<P>(c[2 * k][2] * s1, c[2 * k][3] * s1, a[k].h[1], a[k].l[1]);
    split2<P>(c[2 * k + 1][0] * s0, c[2 * k + 1][1] * s0, a[k].h[2], a[k].l[2]);
    split2<P>(c[2 * k + 1][2] * s1, c[2 * k + 1][3] * s1, a[k].h[3], a[k].l[3]);
  }
}

// One lane's B fragment of one (n-tile, k-chunk) in shared memory: {hi b0, hi b1, lo b0, lo b1}
// at P = 2, {hi b0, hi b1} at P = 0.
template <int P> struct BUnit { using T = uint4; };
template <> struct BUnit<0> { using T = uint2; };

// Stages the matrix value(r, c) (rows r < 8 NT: output channels, columns c < 16 KC: input
// channels) as B fragments in fragment order: unit (n KC + k) 32 + lane. The staging helpers
// run on thread blocks of TC_THREADS threads (the kernels check).
template <int P, int NT, int KC, class F>
__device__ __forceinline__ void stage_b(void* dst, F value) {
  using U = typename BUnit<P>::T;
  U* out = reinterpret_cast<U*>(dst);
#pragma unroll
  for (int u = threadIdx.x; u < NT * KC * 32; u += TC_THREADS) {
    const int lane = u & 31, k = (u >> 5) % KC, n = (u >> 5) / KC;
    const int r = 8 * n + (lane >> 2), c = 16 * k + 2 * (lane & 3);
    uint32_t h0, h1, l0, l1;
    split2<2>(value(r, c), value(r, c + 1), h0, l0);
    split2<2>(value(r, c + 8), value(r, c + 9), h1, l1);
    if constexpr (P >= 2) out[u] = make_uint4(h0, h1, l0, l1);
    else out[u] = make_uint2(h0, h1);
  }
}

// Stages the matrix value(r, c) (r < 16 MT, c < 16 KC) as A fragments: hi unit (m KC + k) 32 +
// lane = {a0, a1, a2, a3}, and at P = 2 the lo units after all hi units.
template <int P, int MT, int KC, class F>
__device__ __forceinline__ void stage_a(uint4* dst, F value) {
  constexpr int UNITS = MT * KC * 32;
#pragma unroll
  for (int u = threadIdx.x; u < UNITS; u += TC_THREADS) {
    const int lane = u & 31, k = (u >> 5) % KC, m = (u >> 5) / KC;
    const int r = 16 * m + (lane >> 2), c = 16 * k + 2 * (lane & 3);
    uint4 h, l;
    split2<2>(value(r, c), value(r, c + 1), h.x, l.x);
    split2<2>(value(r + 8, c), value(r + 8, c + 1), h.y, l.y);
    split2<2>(value(r, c + 8), value(r, c + 9), h.z, l.z);
    split2<2>(value(r + 8, c + 8), value(r + 8, c + 9), h.w, l.w);
    dst[u] = h;
    if (P >= 2) dst[UNITS + u] = l;
  }
}

// dst[i] = i < count ? src[i] : 0 for i < padded (a bias or LayerNorm vector in shared memory).
__device__ __forceinline__ void stage_vec(float* dst, const float* __restrict__ src, int count, int padded) {
#pragma unroll 4
  for (int i = threadIdx.x; i < padded; i += TC_THREADS) dst[i] = i < count ? __ldg(src + i) : 0.0f;
}

// out[nt] += a . W^T for the W rows 8 (n0 + nt) .. 8 (n0 + nt) + 7 and the k-chunks k0 .. k0 +
// KC - 1 (w: stage_b's fragments of a matrix of KS k-chunks).
template <int KC, int NT, int P, int KS = KC>
__device__ __forceinline__ void linear(float (&out)[NT][4], const AFrag (&a)[KC], const void* w, int lane,
                                       int k0 = 0, int n0 = 0) {
  using U = typename BUnit<P>::T;
  const U* f = reinterpret_cast<const U*>(w) + lane;
#pragma unroll
  for (int n = 0; n < NT; ++n) {
#pragma unroll
    for (int k = 0; k < KC; ++k) {
      const U b = f[((n0 + n) * KS + k0 + k) * 32];
      if constexpr (P >= 2) mma_p<P>(out[n], a[k], b.x, b.y, b.z, b.w);
      else mma_p<P>(out[n], a[k], b.x, b.y, 0u, 0u);
    }
  }
}


// c = c * inv[row] + bias[channel] (channel = 8 n + 2 t + e % 2; bias: a zero-padded shared
// vector of at least 8 NT entries).
template <int NT>
__device__ __forceinline__ void rescale_bias(float (&c)[NT][4], float i0, float i1, const float* bias, int lane) {
  const int t = lane & 3;
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    const float2 b = *reinterpret_cast<const float2*>(bias + 8 * n + 2 * t);
    c[n][0] = fmaf(c[n][0], i0, b.x);
    c[n][1] = fmaf(c[n][1], i0, b.y);
    c[n][2] = fmaf(c[n][2], i1, b.x);
    c[n][3] = fmaf(c[n][3], i1, b.y);
  }
}

// The A fragments of `c` scaled per token (row_scales, factors in s), or with unit factors when
// `bounded` (every |value| known to be under 2^10, where row_scales gives 1 too: the same
// result without the maxima).
template <int KC, int P>
__device__ __forceinline__ void to_frags_scaled(AFrag (&a)[KC], const float (&c)[2 * KC][4], bool bounded,
                                                Pow2 (&s)[2]) {
  if (bounded) {
    s[0] = s[1] = Pow2{1.0f, 1.0f};
    to_frags<KC, P>(a, c, 1.0f, 1.0f);
  } else {
    row_scales(c, s);
    to_frags<KC, P>(a, c, s[0].s, s[1].s);
  }
}

// out = W in + bias on tensor cores, `in` (C tiles of 2 KC n-tiles) scaled per token for its
// f16 conversion unless `bounded` (to_frags_scaled), the products scaled back.
template <int KC, int NT, int P>
__device__ __forceinline__ void scaled_linear(float (&out)[NT][4], const float (&in)[2 * KC][4], bool bounded,
                                              const void* w, const float* bias, int lane) {
  Pow2 s[2];
  AFrag a[KC];
  to_frags_scaled<KC, P>(a, in, bounded, s);
  zero(out);
  linear<KC, NT, P>(out, a, w, lane);
  rescale_bias(out, s[0].inv, s[1].inv, bias, lane);
}

// Magnitude under which a value is never rescaled (scale_for: 2^10), with a margin for rounding.
#define BOUND 1000.0f

// A bound of a LayerNorm's outputs from its max |weight| mw and max |bias| mb: |y| <= sqrt(D) mw
// + mb (the normalised values' squares sum to at most D).
template <int D>
__device__ __forceinline__ float ln_bound(float mw, float mb) {
  return sqrtf((float)D) * mw + mb;
}

// *slot = max(*slot, max |src[i]|, i < n) over the thread block (slot: shared, >= 0; NaN wins).
__device__ __forceinline__ void abs_max(float* slot, const float* __restrict__ src, int n) {
  float m = 0.0f;
#pragma unroll 4
  for (int i = threadIdx.x; i < n; i += TC_THREADS) {
    const float v = fabsf(__ldg(src + i));
    m = v > m || v != v ? v : m;
  }
  atomicMax(reinterpret_cast<int*>(slot), __float_as_int(m));
}

// out = W in + bias for `in` bounded by a LayerNorm (no scaling).
template <int KC, int NT, int P>
__device__ __forceinline__ void plain_linear(float (&out)[NT][4], const AFrag (&a)[KC], const void* w,
                                             const float* bias, int lane) {
  zero(out);
  linear<KC, NT, P>(out, a, w, lane);
  rescale_bias(out, 1.0f, 1.0f, bias, lane);
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
  // shared-memory fragment matrices in 16-byte units (stage_b: NT x KC x 32; the kv A operand:
  // hi and lo units of 2 KD m-tiles x KD k-chunks x 32)
  static constexpr int U_ENC = ND * KE * 32, U_Q = ND * KD * 32, U_OUT = U_Q, U_G = NF * KD * 32, U_U = U_G;
  static constexpr int U_DN = ND * KF * 32, U_ATT = NA * KD * 32, U_KV = 2 * (2 * KD) * KD * 32;
  static constexpr int O_ENC = 0, O_Q = O_ENC + U_ENC, O_OUT = O_Q + U_Q, O_G = O_OUT + U_OUT, O_U = O_G + U_G;
  static constexpr int O_DN = O_U + U_U, O_ATT = O_DN + U_DN, O_KV = O_ATT + U_ATT, UNITS = O_KV + U_KV;
  // shared f32 vectors (zero-padded): block p-1's biases and LayerNorms, block p's k, v bias,
  // the encoder's down bias and gate / up {weight, bias, weight, bias} per hidden unit
  static constexpr int V_QB = 0, V_OB = V_QB + D, V_LN1W = V_OB + D, V_LN1B = V_LN1W + D;
  static constexpr int V_FGB = V_LN1B + D, V_FUB = V_FGB + 16 * KF, V_FDB = V_FUB + 16 * KF;
  static constexpr int V_LN2W = V_FDB + D, V_LN2B = V_LN2W + D, V_KVB = V_LN2B + D, V_EDB = V_KVB + 2 * D;
  static constexpr int V_ENC = V_EDB + D, VECS = V_ENC + 4 * 16 * KE;
  // f32 shared: sums of this thread block (ACC_BLOCK), attention staging (ACC_BLOCK), SLOTS
  // scalars (the S_* slots below), the vectors
  static constexpr int SMEM_BYTES = UNITS * 16 + (2 * ACC_BLOCK + SLOTS + VECS) * 4;
  static_assert(H <= 4, "four shared slots per head and kind");
  static_assert(SMEM_BYTES <= TC_SMEM_BYTES, "shared memory over TC_SMEM_BYTES");
};


// lp and keep of tokens g and g+8 of the tile starting at t0 (past V: lp 0, keep 0).
__device__ __forceinline__ void tile_lp(const float* __restrict__ zrow, float zmax, float lse, int V, int t0,
                                        int lane, float (&lp)[2], float (&keep)[2]) {
  const int g = lane >> 2;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = t0 + g + 8 * r;
    const float z = t < V ? __ldg(zrow + t) : NEG_INF;
    const bool kept = z != NEG_INF;
    lp[r] = kept ? (z - zmax) - lse : 0.0f;
    keep[r] = kept ? 1.0f : 0.0f;
  }
}

// Activations between passes (`xs`): per token its D channels in lane order — lane t of the
// token's quad holds channels 8 c + 2 t, 8 c + 2 t + 1 (c < ND) of the C fragments, and they lie
// together at t 2 ND, so a lane reads or writes a token with one or two vector accesses. f32 at
// P = 2; f16 at P = 0, whose next pass and head round x to f16 for their products anyway (the
// residual add and the pool take the f16 rounding too), halving the passes' memory traffic.
template <int P> struct XStore { using T = float; };
template <> struct XStore<0> { using T = __half; };
// The vector type of ND half2 (one lane's part of a token at P = 0).
template <int ND> struct Half2s;
template <> struct Half2s<2> { using T = uint2; };
template <> struct Half2s<4> { using T = uint4; };

// Bytes of one row's activations (V tokens of D channels) in `xs` at precision P.
template <class C, int P>
__device__ __forceinline__ size_t x_row_bytes(int V) {
  return (size_t)V * C::D * sizeof(typename XStore<P>::T);
}

// The tile's x from the row's activations `xrow` (tokens g and g+8; past V: 0).
template <class C, int P>
__device__ __forceinline__ void load_x(float (&x)[C::ND][4], const unsigned char* __restrict__ xrow, int V, int t0,
                                       int lane) {
  static_assert(C::ND == 2 || C::ND == 4, "lane-order storage of 16 or 32 channels");
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int tok = t0 + g + 8 * r;
    const size_t lane_unit = (size_t)tok * 4 + t;  // this lane's part of the token
    if constexpr (P == 0) {
      using U = typename Half2s<C::ND>::T;
      U u{};
      if (tok < V) u = reinterpret_cast<const U*>(xrow)[lane_unit];
      const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
      for (int c = 0; c < C::ND; ++c) {
        const float2 f = __half22float2(h[c]);
        x[c][2 * r] = f.x;
        x[c][2 * r + 1] = f.y;
      }
    } else {
      const float4* src = reinterpret_cast<const float4*>(xrow) + lane_unit * (C::ND / 2);
#pragma unroll
      for (int q = 0; q < C::ND / 2; ++q) {
        const float4 f = tok < V ? src[q] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        x[2 * q][2 * r] = f.x;
        x[2 * q][2 * r + 1] = f.y;
        x[2 * q + 1][2 * r] = f.z;
        x[2 * q + 1][2 * r + 1] = f.w;
      }
    }
  }
}

// Stores the tile's x into the row's activations `xrow` (load_x's layout; tokens past V skipped).
template <class C, int P>
__device__ __forceinline__ void store_x(const float (&x)[C::ND][4], unsigned char* __restrict__ xrow, int V, int t0,
                                        int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int tok = t0 + g + 8 * r;
    if (tok >= V) continue;
    const size_t lane_unit = (size_t)tok * 4 + t;
    if constexpr (P == 0) {
      using U = typename Half2s<C::ND>::T;
      U u;
      __half2* h = reinterpret_cast<__half2*>(&u);
#pragma unroll
      for (int c = 0; c < C::ND; ++c) h[c] = __floats2half2_rn(x[c][2 * r], x[c][2 * r + 1]);
      reinterpret_cast<U*>(xrow)[lane_unit] = u;
    } else {
      float4* dst = reinterpret_cast<float4*>(xrow) + lane_unit * (C::ND / 2);
#pragma unroll
      for (int q = 0; q < C::ND / 2; ++q)
        dst[q] = make_float4(x[2 * q][2 * r], x[2 * q][2 * r + 1], x[2 * q + 1][2 * r], x[2 * q + 1][2 * r + 1]);
    }
  }
}

// x = encoder(lp) for the tile: h = silu(gate lp) * (up lp) computed in A-fragment order (the
// gate / up weights and biases from the shared vector `gu`: {gw, gb, uw, ub} per hidden unit,
// zero past FE), then the down projection on tensor cores.
template <class C, int P>
__device__ __forceinline__ void encoder(float (&x)[C::ND][4], const float (&lp)[2], const float* gu,
                                        const void* enc, const float* bias, int lane) {
  const int t = lane & 3;
  float h[2 * C::KE][4];
#pragma unroll
  for (int n = 0; n < 2 * C::KE; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int f = 8 * n + 2 * t + (e & 1);
      const float4 w = *reinterpret_cast<const float4*>(gu + 4 * f);
      const float l = lp[e >> 1];
      h[n][e] = fast_silu(fmaf(w.x, l, w.y)) * fmaf(w.z, l, w.w);
    }
  }
  scaled_linear<C::KE, C::ND, P>(x, h, false, enc, bias, lane);
}

// LayerNorm over the D channels of rows g and g+8 (a quad holds a row); w, b: shared vectors.
template <class C>
__device__ __forceinline__ void layer_norm(float (&y)[C::ND][4], const float* w, const float* b, int lane) {
  const int t = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float s = 0.0f;
#pragma unroll
    for (int n = 0; n < C::ND; ++n) s += y[n][2 * r] + y[n][2 * r + 1];
    s = xor_sum<1, 2>(s);
    const float mean = s * (1.0f / C::D);
    float v = 0.0f;
#pragma unroll
    for (int n = 0; n < C::ND; ++n) {
      y[n][2 * r] -= mean;
      y[n][2 * r + 1] -= mean;
      v = fmaf(y[n][2 * r], y[n][2 * r], v);
      v = fmaf(y[n][2 * r + 1], y[n][2 * r + 1], v);
    }
    v = xor_sum<1, 2>(v);
    const float inv = rsqrtf(v * (1.0f / C::D) + LAYER_NORM_EPS);
#pragma unroll
    for (int n = 0; n < C::ND; ++n) {
      const int ch = 8 * n + 2 * t;
      const float2 wv = *reinterpret_cast<const float2*>(w + ch);
      const float2 bv = *reinterpret_cast<const float2*>(b + ch);
      y[n][2 * r] = fmaf(y[n][2 * r] * inv, wv.x, bv.x);
      y[n][2 * r + 1] = fmaf(y[n][2 * r + 1] * inv, wv.y, bv.y);
    }
  }
}

// Shared-memory pointers of a pass: fragment matrices, vectors, the scalar slots and the
// attention sums in f32 (block p-1's, / #kept: [D][8] numerators then [D] denominators).
struct Smem {
  const void *enc, *q, *out, *gate, *up, *down, *att;
  const uint4* kv;
  const float *vec, *slots, *att32;
};

// What is known to stay under 2^10 in magnitude (to_frags_scaled) for a pass's tiles: the block
// input x, phi(q), the attention output (block p-1, from its weights and x's LayerNorm), and
// x, k, phi(k), v of add_kv (block p's weights, block p-1's LayerNorm); `wide`: block p-1's
// sums span more than WIDE_RANGE within a head (the same for the whole thread block).
struct Bounds { bool x, q, a, kv, wide; };

// The attention output of the tile in f32 on the CUDA cores, as the plain path computes it,
// in place (qa: phi(q) in, the output out; n-tile h at a time, so no second tile array):
// a_h = phi(q)_h S_h / (phi(q)_h . s_h + eps) with S, s from `att32` (f32, unscaled). Head h
// is n-tile h (heads of width 8): a quad holds a token's 8 phi(q) entries of the head, two
// each; every lane gathers all 8 by shuffles, then its two output channels 2 t, 2 t + 1 and
// the denominator are 8-term f32 dot products.
template <class C>
__device__ __forceinline__ void attention_f32(float (&qa)[C::ND][4], const float* att32, float eps, int lane) {
  const int t = lane & 3, quad = lane & ~3;
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    float out[4];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float n0 = 0.0f, n1 = 0.0f, d = 0.0f;
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        const float q = __shfl_sync(0xffffffffu, qa[h][2 * r + (c & 1)], quad | (c >> 1));
        const int ch = 8 * h + c;
        const float2 sv = *reinterpret_cast<const float2*>(att32 + ch * 8 + 2 * t);
        n0 = fmaf(q, sv.x, n0);
        n1 = fmaf(q, sv.y, n1);
        d = fmaf(q, att32[C::D * 8 + ch], d);
      }
      const float i = rcp_approx(d + eps);
      out[2 * r] = n0 * i;
      out[2 * r + 1] = n1 * i;
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) qa[h][e] = out[e];
  }
}

// The tile's attention output on tensor cores: `sm.att` holds the row's sums as the B operand
// [D numerators + H denominators][q channel], head h's numerators scaled by its factor
// num_scale[h], its denominator by den_scale[h] (apart: their ratio is about |v|, ~1e7 on
// soft-masked rows, where one shared factor made the denominators f16-subnormal); slots
// S_EPS + h = ATTENTION_EPS / #kept * den_scale[h], S_RATIO + h = den_scale[h] / num_scale[h]
// (a power of two: `ratio * (1 / den)` rounds as `ratio / den`, and spills less).
template <class C, int P>
__device__ __forceinline__ void attention_tc(float (&a)[C::ND][4], const float (&qc)[C::ND][4], const Smem& sm,
                                             bool bounded_q, int lane) {
  // numerators and denominators
  Pow2 sq[2];
  AFrag qa[C::KD];
  to_frags_scaled<C::KD, P>(qa, qc, bounded_q, sq);
  // each head's denominator (column h of n-tile ND), then its numerators (n-tile h)
  float den[1][4];
  zero(den);
  linear<C::KD, 1, P>(den, qa, sm.att, lane, 0, C::ND);
  // numerators and denominators of a token carry its phi(q) scale: so must the epsilon
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    // head h's denominator: lane t = h / 2, element h % 2
    const int src = (lane & ~3) | (h >> 1);
    const float d0 = __shfl_sync(0xffffffffu, den[0][h & 1], src);
    const float d1 = __shfl_sync(0xffffffffu, den[0][2 + (h & 1)], src);
    const float eps = sm.slots[S_EPS + h], ratio = sm.slots[S_RATIO + h];
    const float i0 = ratio * rcp_approx(fmaf(eps, sq[0].s, d0));
    const float i1 = ratio * rcp_approx(fmaf(eps, sq[1].s, d1));
    // head h's numerators use only its own q channels 8 h .. 8 h + 7: k-chunk h / 2 (the other
    // chunks' entries are zero)
    float num[1][4];
    zero(num);
    const AFrag (&qh)[1] = reinterpret_cast<const AFrag (&)[1]>(qa[h >> 1]);
    linear<1, 1, P, C::KD>(num, qh, sm.att, lane, h >> 1, h);
    a[h][0] = num[0][0] * i0;
    a[h][1] = num[0][1] * i0;
    a[h][2] = num[0][2] * i1;
    a[h][3] = num[0][3] * i1;
  }
}

// One block on the tile: x = LN2(y + FFN(y)), y = LN1(x + out(attention(x))); the attention on
// tensor cores (attention_tc), or in f32 (attention_f32) when block p-1's sums are wide
// (`bounded.wide`: split f16 with one factor per head cannot hold a head's rows spanning ~1e17,
// the soft-masked rows' case, docs/gpu.md).
template <class C, int P>
__device__ __forceinline__ void block(float (&x)[C::ND][4], const Smem& sm, const Bounds& bounded, int lane) {
  const float* vec = sm.vec;
  // phi(q)
  float qc[C::ND][4];
  scaled_linear<C::KD, C::ND, P>(qc, x, bounded.x, sm.q, vec + C::V_QB, lane);
#pragma unroll
  for (int n = 0; n < C::ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) qc[n][e] = fast_elu_plus_one(qc[n][e]);
  // qc becomes the attention output a
  if (bounded.wide) {
    attention_f32<C>(qc, sm.att32, sm.slots[S_EPS32], lane);
  } else {
    float a[C::ND][4];
    attention_tc<C, P>(a, qc, sm, bounded.q, lane);
#pragma unroll
    for (int n = 0; n < C::ND; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) qc[n][e] = a[n][e];
  }
  // y = LN1(x + out(a))
  float y[C::ND][4];
  scaled_linear<C::KD, C::ND, P>(y, qc, bounded.a, sm.out, vec + C::V_OB, lane);
#pragma unroll
  for (int n = 0; n < C::ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) y[n][e] += x[n][e];
  layer_norm<C>(y, vec + C::V_LN1W, vec + C::V_LN1B, lane);
  // x = LN2(y + down(silu(gate y) * up y)); LayerNorm outputs are bounded: unit scales. The
  // hidden units in chunks of 16 (one k-chunk of the down projection each).
  AFrag ya[C::KD];
  to_frags<C::KD, P>(ya, y, 1.0f, 1.0f);
  zero(x);
#pragma unroll
  for (int c = 0; c < C::KF; ++c) {
    float hg[2][4], hu[2][4];
    zero(hg);
    zero(hu);
    linear<C::KD, 2, P>(hg, ya, sm.gate, lane, 0, 2 * c);
    linear<C::KD, 2, P>(hu, ya, sm.up, lane, 0, 2 * c);
    rescale_bias(hg, 1.0f, 1.0f, vec + C::V_FGB + 16 * c, lane);
    rescale_bias(hu, 1.0f, 1.0f, vec + C::V_FUB + 16 * c, lane);
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) hg[n][e] = fast_silu(hg[n][e]) * hu[n][e];
    AFrag ha[1];
    to_frags<1, P>(ha, hg, 1.0f, 1.0f);
    linear<1, C::ND, P, C::KF>(x, ha, sm.down, lane, c);
  }
  rescale_bias(x, 1.0f, 1.0f, vec + C::V_FDB, lane);
#pragma unroll
  for (int n = 0; n < C::ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) x[n][e] += y[n][e];
  layer_norm<C>(x, vec + C::V_LN2W, vec + C::V_LN2B, lane);
}

// Adds the tile's keep phi(k) v^T (same-head pairs) to S and keep phi(k) to s (warp registers):
// k^T and v^T = W_kv x^T with the weights as the A operand (kv: stage_a's fragments, kvb: the
// k, v bias), then S = phi(k)^T v on tensor cores with the 16 tokens as the reduction dimension;
// 16 k channels and their 16 v channels (two heads) at a time. BOUNDED: x, k, phi(k) and v are
// known to stay under 2^10 (Bounds::kv), so every factor is 1.
template <class C, int P, bool BOUNDED>
__device__ __forceinline__ void add_kv(float (&S)[C::H][4], float (&s)[C::KD][2], const float (&x)[C::ND][4],
                                       const uint4* kv, const float* kvb, const float (&keep)[2], int lane) {
  static_assert(C::H == 2 * C::KD, "two heads per 16 channels");
  const int g = lane >> 2, t = lane & 3;
  Pow2 sx[2];
  AFrag xa[C::KD];
  to_frags_scaled<C::KD, P>(xa, x, BOUNDED, sx);
  // 1 / scale of token 8 j + 2 t + b (a column of k^T, v^T): row r's scale sits in lane 4 r
  float inv_tok[2][2];
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int b = 0; b < 2; ++b)
      inv_tok[j][b] = BOUNDED ? 1.0f : __shfl_sync(0xffffffffu, sx[j].inv, 4 * (2 * t + b));
  // keep of token 8 j + 2 t + (e % 2) (the tile's rows live in quads: bit 4 r = keep of row r)
  const uint32_t mask0 = __ballot_sync(0xffffffffu, keep[0] != 0.0f);
  const uint32_t mask1 = __ballot_sync(0xffffffffu, keep[1] != 0.0f);
  constexpr int LO = 2 * C::KD * C::KD * 32;  // the lo units follow the hi units
#pragma unroll
  for (int mp = 0; mp < C::KD; ++mp) {
    // kvt[i][j]: i = 0 the k channels 16 mp .. 16 mp + 15 (m-tile mp of [k; v]), i = 1 the v
    // channels 16 mp .. (m-tile KD + mp); tokens 8 j .. 8 j + 7
    float kvt[2][2][4];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) kvt[i][j][e] = 0.0f;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int m = mp + i * C::KD;
#pragma unroll
      for (int k = 0; k < C::KD; ++k) {
        AFrag w;
        const int unit = (m * C::KD + k) * 32 + lane;
        const uint4 h = kv[unit];
        w.h[0] = h.x;
        w.h[1] = h.y;
        w.h[2] = h.z;
        w.h[3] = h.w;
        if (P >= 2) {
          const uint4 l = kv[LO + unit];
          w.l[0] = l.x;
          w.l[1] = l.y;
          w.l[2] = l.z;
          w.l[3] = l.w;
        }
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          // B = x^T: (k = channels 2t.., n = token g) is x's A fragment of row g (j = 0) or g+8
          const uint32_t xh0 = xa[k].h[j], xh1 = xa[k].h[2 + j];
          mma(kvt[i][j], w.h, xh0, xh1);
          if (P >= 1) mma(kvt[i][j], w.h, xa[k].l[j], xa[k].l[2 + j]);
          if (P >= 2) mma(kvt[i][j], w.l, xh0, xh1);
        }
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const uint32_t mask = j == 0 ? mask0 : mask1;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int ch = 16 * m + g + 8 * (e >> 1);  // c0/c1: row g, c2/c3: row g + 8
          float v = fmaf(kvt[i][j][e], inv_tok[j][e & 1], kvb[ch]);
          if (i == 0) {
            const float kp = (mask >> (8 * t + 4 * (e & 1))) & 1u ? 1.0f : 0.0f;
            v = kp * fast_elu_plus_one(v);
          }
          kvt[i][j][e] = v;
        }
      }
    }
    // A = phi(k)^T (16 channels x 16 tokens), B = v (tokens x a head's 8 channels). Scale
    // factors per channel (over the tile's 16 tokens): a channel is a row of A (an output row
    // of S) or a column of B (an output column), so each is undone on the f32 products.
    // chs[i][r]: channel 16 mp + g + 8 r of k (i = 0) or v (i = 1); a quad holds its tokens.
    Pow2 chs[2][2];
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        if constexpr (BOUNDED) {
          chs[i][r] = Pow2{1.0f, 1.0f};
        } else {
          float mx = fmaxf(fmaxf(fabsf(kvt[i][0][2 * r]), fabsf(kvt[i][0][2 * r + 1])),
                           fmaxf(fabsf(kvt[i][1][2 * r]), fabsf(kvt[i][1][2 * r + 1])));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          chs[i][r] = scale_for(mx);
        }
      }
    AFrag ka;
    {
      const float s0 = chs[0][0].s, s1 = chs[0][1].s;
      split2<P>(kvt[0][0][0] * s0, kvt[0][0][1] * s0, ka.h[0], ka.l[0]);
      split2<P>(kvt[0][0][2] * s1, kvt[0][0][3] * s1, ka.h[1], ka.l[1]);
      split2<P>(kvt[0][1][0] * s0, kvt[0][1][1] * s0, ka.h[2], ka.l[2]);
      split2<P>(kvt[0][1][2] * s1, kvt[0][1][3] * s1, ka.h[3], ka.l[3]);
    }
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      // head h = 2 mp + hh: v channel 8 h + g is row 8 hh + g of the v tile -> elements 2 hh + 0/1
      const int h = 2 * mp + hh, e0 = 2 * hh;
      const Pow2 sv = chs[1][hh];
      uint32_t bh0, bl0, bh1, bl1;
      split2<P>(kvt[1][0][e0] * sv.s, kvt[1][0][e0 + 1] * sv.s, bh0, bl0);
      split2<P>(kvt[1][1][e0] * sv.s, kvt[1][1][e0 + 1] * sv.s, bh1, bl1);
      float tmp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      mma_p<P>(tmp, ka, bh0, bh1, bl0, bl1);
      // output column 2 t + c is v channel 8 h + 2 t + c, whose factor quad 2 t + c holds
      const float iv0 = BOUNDED ? 1.0f : __shfl_sync(0xffffffffu, sv.inv, 4 * (2 * t));
      const float iv1 = BOUNDED ? 1.0f : __shfl_sync(0xffffffffu, sv.inv, 4 * (2 * t + 1));
      const float ik0 = chs[0][0].inv, ik1 = chs[0][1].inv;
      S[h][0] = fmaf(tmp[0], ik0 * iv0, S[h][0]);
      S[h][1] = fmaf(tmp[1], ik0 * iv1, S[h][1]);
      S[h][2] = fmaf(tmp[2], ik1 * iv0, S[h][2]);
      S[h][3] = fmaf(tmp[3], ik1 * iv1, S[h][3]);
    }
    // s: this lane's part of sum keep phi(k) over the tile (tokens 2 t, 2 t + 1, 8 + 2 t, 9 + 2 t)
    // for channels 16 mp + g (r = 0) and + 8 (r = 1), in f32; flush_kv adds the quad's parts
#pragma unroll
    for (int r = 0; r < 2; ++r)
      s[mp][r] += (kvt[0][0][2 * r] + kvt[0][0][2 * r + 1]) + (kvt[0][1][2 * r] + kvt[0][1][2 * r + 1]);
  }
}

// The warp's S, s registers -> the thread block's shared sums [D][8] then [D] (s: each lane's
// part, summed over the quad first).
template <class C>
__device__ __forceinline__ void flush_kv(float* sums, const float (&S)[C::H][4], const float (&s)[C::KD][2],
                                         int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    const int i = 8 * h + g, e0 = 2 * (h & 1);
    atomicAdd(sums + i * 8 + 2 * t, S[h][e0]);
    atomicAdd(sums + i * 8 + 2 * t + 1, S[h][e0 + 1]);
  }
#pragma unroll
  for (int m = 0; m < C::KD; ++m)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float v = xor_sum<1, 2>(s[m][r]);
      if (t == 0) atomicAdd(sums + C::D * 8 + 16 * m + g + 8 * r, v);
    }
}

// Pass p (see the top of the file; KIND: its SNT_* bits) for one row: grid (thread blocks per
// row, rows).
template <class C, int P, int KIND>
__device__ void pass(const float* __restrict__ z, const float* __restrict__ stats, const float* __restrict__ W,
                     float* __restrict__ xs, float* __restrict__ acc, int V, int blocks, int p) {
  constexpr bool ENC = (KIND & SNT_ENC) != 0, BLK = (KIND & SNT_BLOCK) != 0, NEXT = (KIND & SNT_NEXT) != 0;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  if (dynamic_smem_size() < (uint32_t)C::SMEM_BYTES || blockDim.x != TC_THREADS) __trap();
  uint4* units = reinterpret_cast<uint4*>(smem_raw);
  float* sums = reinterpret_cast<float*>(units + C::UNITS);
  float* stage_att = sums + C::ACC_BLOCK;
  float* scal = stage_att + C::ACC_BLOCK;
  float* vec = scal + SLOTS;
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float* st = stats + SN_STATS * n;
  const float* zrow = z + (size_t)n * V;
  unsigned char* xrow = reinterpret_cast<unsigned char*>(xs) + n * x_row_bytes<C, P>(V);
  float* row_acc = acc + (size_t)n * C::acc_row(blocks);
  const float* Wb = W + C::ENC_SIZE + (p - 1) * C::BLOCK_SIZE;  // block p-1 (if any)
  const float* Wn = W + C::ENC_SIZE + p * C::BLOCK_SIZE;        // block p (if any)
  for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) sums[i] = 0.0f;
  if (threadIdx.x < SLOTS) scal[threadIdx.x] = threadIdx.x >= S_DMIN && threadIdx.x < S_DMIN + 4 ? POS_INF : 0.0f;
  __syncthreads();
  if constexpr (ENC) {
    stage_b<P, C::ND, C::KE>(units + C::O_ENC, [&](int r, int c) {
      return c < C::FE ? __ldg(W + C::ENC_DW + r * C::FE + c) : 0.0f;
    });
    stage_vec(vec + C::V_EDB, W + C::ENC_DB, C::D, C::D);
    // {gate w, gate b, up w, up b} of hidden unit f = i / 4 (SnLayout: ENC_GW, GB, UW, UB are
    // FE apart)
    for (int i = threadIdx.x; i < 4 * 16 * C::KE; i += TC_THREADS) {
      const int f = i >> 2;
      vec[C::V_ENC + i] = f < C::FE ? __ldg(W + (i & 3) * C::FE + f) : 0.0f;
    }
  }
  if constexpr (BLK) {
    stage_b<P, C::ND, C::KD>(units + C::O_Q, [&](int r, int c) { return __ldg(Wb + C::QKV_W + r * C::D + c); });
    stage_b<P, C::ND, C::KD>(units + C::O_OUT, [&](int r, int c) { return __ldg(Wb + C::OUT_W + r * C::D + c); });
    stage_b<P, C::NF, C::KD>(units + C::O_G, [&](int r, int c) {
      return r < C::FF ? __ldg(Wb + C::FG_W + r * C::D + c) : 0.0f;
    });
    stage_b<P, C::NF, C::KD>(units + C::O_U, [&](int r, int c) {
      return r < C::FF ? __ldg(Wb + C::FU_W + r * C::D + c) : 0.0f;
    });
    stage_b<P, C::ND, C::KF>(units + C::O_DN, [&](int r, int c) {
      return c < C::FF ? __ldg(Wb + C::FD_W + r * C::FF + c) : 0.0f;
    });
    stage_vec(vec + C::V_QB, Wb + C::QKV_B, C::D, C::D);
    stage_vec(vec + C::V_OB, Wb + C::OUT_B, C::D, C::D);
    stage_vec(vec + C::V_LN1W, Wb + C::LN1_W, C::D, C::D);
    stage_vec(vec + C::V_LN1B, Wb + C::LN1_B, C::D, C::D);
    stage_vec(vec + C::V_FGB, Wb + C::FG_B, C::FF, 16 * C::KF);
    stage_vec(vec + C::V_FUB, Wb + C::FU_B, C::FF, 16 * C::KF);
    stage_vec(vec + C::V_FDB, Wb + C::FD_B, C::D, C::D);
    stage_vec(vec + C::V_LN2W, Wb + C::LN2_W, C::D, C::D);
    stage_vec(vec + C::V_LN2B, Wb + C::LN2_B, C::D, C::D);
    // maxima for Bounds: max |weight|, |bias| of the LayerNorm that made the input (block
    // p-2's LN2, when the input comes from memory), of block p-1's LN2 (the output), of block
    // p-1's q and v
    if (!ENC) {
      const float* Wi = W + C::ENC_SIZE + (p - 2) * C::BLOCK_SIZE;
      abs_max(scal + 4, Wi + C::LN2_W, C::D);
      abs_max(scal + 5, Wi + C::LN2_B, C::D);
    }
    abs_max(scal + 6, Wb + C::LN2_W, C::D);
    abs_max(scal + 7, Wb + C::LN2_B, C::D);
    abs_max(scal + 8, Wb + C::QKV_W, C::D * C::D);
    abs_max(scal + 9, Wb + C::QKV_B, C::D);
    abs_max(scal + 10, Wb + C::QKV_W + 2 * C::D * C::D, C::D * C::D);
    abs_max(scal + 11, Wb + C::QKV_B + 2 * C::D, C::D);
    // the attention sums: block p-1's sums / #kept in f32 (stage_att), then the B operand
    // with each head's numerators and its denominator scaled to max |.| in [2^7, 2^8), each
    // kind with its own factor (one factor for all heads would push a head with small sums
    // into f16's subnormals when another head's are huge; one for a head's numerators and
    // denominator did so to the denominator when |v| ~ 1e7); the denominators' smallest entry
    // for Bounds::wide
    const float* in = row_acc + (p - 1) * C::ACC_BLOCK;
    const float kept = fmaxf(st[3], 1.0f);
#pragma unroll 2
    for (int i = threadIdx.x; i < C::ACC_BLOCK; i += TC_THREADS) {
      const float v = in[i] / kept;
      stage_att[i] = v;
      const int bits = __float_as_int(fabsf(v));
      if (i < C::D * 8) {
        atomicMax(reinterpret_cast<int*>(scal + S_NUM + i / 64), bits);
      } else {
        const int head = (i - C::D * 8) / 8;
        atomicMax(reinterpret_cast<int*>(scal + S_DEN + head), bits);
        atomicMin(reinterpret_cast<int*>(scal + S_DMIN + head), bits);
      }
    }
  }
  if constexpr (NEXT) {
    stage_a<P, 2 * C::KD, C::KD>(units + C::O_KV, [&](int r, int c) {
      return __ldg(Wn + C::QKV_W + C::D * C::D + r * C::D + c);
    });
    stage_vec(vec + C::V_KVB, Wn + C::QKV_B + C::D, 2 * C::D, 2 * C::D);
    // maxima for Bounds: block p's k and v
    abs_max(scal + 12, Wn + C::QKV_W + C::D * C::D, C::D * C::D);
    abs_max(scal + 13, Wn + C::QKV_B + C::D, C::D);
    abs_max(scal + 14, Wn + C::QKV_W + 2 * C::D * C::D, C::D * C::D);
    abs_max(scal + 15, Wn + C::QKV_B + 2 * C::D, C::D);
  }
  __syncthreads();
  // what stays under 2^10 (a linear map's output: |W x + b| <= D max|W| max|x| + max|b|)
  Bounds bounded{false, false, false, false, false};
  {
    const float x_in = ENC ? POS_INF : ln_bound<C::D>(scal[4], scal[5]);
    const float x_out = BLK ? ln_bound<C::D>(scal[6], scal[7]) : POS_INF;
    bounded.x = x_in < BOUND;
    bounded.q = fmaf(C::D * scal[8], x_in, scal[9]) + 1.0f < BOUND;  // phi(q) <= |q| + 1
    bounded.a = fmaf(C::D * scal[10], x_in, scal[11]) < BOUND;        // |a| <= max |v|
    bounded.kv = NEXT && x_out < BOUND && fmaf(C::D * scal[12], x_out, scal[13]) + 1.0f < BOUND &&
                 fmaf(C::D * scal[14], x_out, scal[15]) < BOUND;
  }
  if constexpr (BLK) {
    // wide: some head's denominators span more than WIDE_RANGE (a zero smallest entry beside a
    // nonzero largest counts; NaN does not): the attention in f32 for the whole thread block
#pragma unroll
    for (int h = 0; h < C::H; ++h) bounded.wide |= scal[S_DEN + h] > scal[S_DMIN + h] * WIDE_RANGE;
    if (threadIdx.x < C::H) {
      const int h = threadIdx.x;
      const float eps = ATTENTION_EPS / fmaxf(st[3], 1.0f), sd = head_scale(scal[S_DEN + h]);
      scal[S_EPS + h] = eps * sd;
      scal[S_RATIO + h] = sd / head_scale(scal[S_NUM + h]);
      if (h == 0) scal[S_EPS32] = eps;
    }
    // row r: output column (numerator 8 h + j, or denominator D + h); column c: q channel
    stage_b<P, C::NA, C::KD>(units + C::O_ATT, [&](int r, int c) {
      const int head = c >> 3;
      float v = 0.0f;
      if (r < C::D) {
        if ((r >> 3) == head) v = stage_att[c * 8 + (r & 7)];
      } else if (r - C::D == head) {
        v = stage_att[C::D * 8 + c];
      }
      return v * head_scale(scal[r < C::D ? S_NUM + head : S_DEN + head]);
    });
    __syncthreads();
  }
  const Smem sm{units + C::O_ENC, units + C::O_Q,  units + C::O_OUT, units + C::O_G, units + C::O_U,
                units + C::O_DN,  units + C::O_ATT, units + C::O_KV,  vec,
                scal,             stage_att};
  float S[C::H][4], s[C::KD][2], pool[C::ND][2];
  zero(S);
#pragma unroll
  for (int m = 0; m < C::KD; ++m) s[m][0] = s[m][1] = 0.0f;
#pragma unroll
  for (int i = 0; i < C::ND; ++i) pool[i][0] = pool[i][1] = 0.0f;
  const int g = lane >> 2, t = lane & 3;
  const int tiles = (V + 15) / 16;
  const float zmax = st[0], lse = st[1];
  for (int tile = blockIdx.x * TC_WARPS + warp; tile < tiles; tile += gridDim.x * TC_WARPS) {
    const int t0 = 16 * tile;
    float lp[2], keep[2];
    tile_lp(zrow, zmax, lse, V, t0, lane, lp, keep);
    float x[C::ND][4];
    if constexpr (ENC) encoder<C, P>(x, lp, vec + C::V_ENC, sm.enc, vec + C::V_EDB, lane);
    else load_x<C, P>(x, xrow, V, t0, lane);
    if constexpr (BLK) {
      block<C, P>(x, sm, bounded, lane);
      store_x<C, P>(x, xrow, V, t0, lane);
    }
    if constexpr (NEXT) {
      if (bounded.kv) add_kv<C, P, true>(S, s, x, sm.kv, vec + C::V_KVB, keep, lane);
      else add_kv<C, P, false>(S, s, x, sm.kv, vec + C::V_KVB, keep, lane);
    } else {
#pragma unroll
      for (int c = 0; c < C::ND; ++c) {
        pool[c][0] += keep[0] * x[c][0] + keep[1] * x[c][2];
        pool[c][1] += keep[0] * x[c][1] + keep[1] * x[c][3];
      }
    }
  }
  if constexpr (NEXT) {
    flush_kv<C>(sums, S, s, lane);
  } else {
#pragma unroll
    for (int c = 0; c < C::ND; ++c)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const float v = xor_sum<4, 8, 16>(pool[c][e]);
        if (g == 0) atomicAdd(sums + 8 * c + 2 * t + e, v);
      }
  }
  __syncthreads();
  float* dst = row_acc + (NEXT ? p * C::ACC_BLOCK : blocks * C::ACC_BLOCK);
  const int count = NEXT ? C::ACC_BLOCK : C::D;
  for (int i = threadIdx.x; i < count; i += blockDim.x) atomicAdd(dst + i, sums[i]);
}

// Per row: c = pool / #kept; ctx = [transform gate, transform up] context parts (FT each),
// then mult, s, tau (common.cuh's sn_head_ctx). One thread block of 128 threads per row.
template <class C>
__device__ void head_ctx(const float* __restrict__ stats, const float* __restrict__ W, const float* __restrict__ acc,
                         float* __restrict__ ctx_out, int blocks) {
  const int n = blockIdx.x;
  sn_head_ctx<C>(stats[SN_STATS * n + 3], W + C::ENC_SIZE + blocks * C::BLOCK_SIZE,
                 acc + (size_t)n * C::acc_row(blocks) + blocks * C::ACC_BLOCK, ctx_out + (size_t)n * (2 * C::FT + 3));
}

// Per token: l_mod = down(silu(gate [x, c]) * up [x, c]), l = mult (lp + l_mod),
// out = l + logsigmoid(s l + tau); masked tokens -inf. Grid (thread blocks per row, rows).
template <class C, int P>
__device__ void head(const float* __restrict__ z, const float* __restrict__ stats, const float* __restrict__ W,
                     const float* __restrict__ xs, const float* __restrict__ ctx, float* __restrict__ out, int V,
                     int blocks) {
  constexpr int UNITS = C::NTT * C::KD * 32, ROWS = 8 * C::NTT;
  // the x columns of the transform's gate and up weights ([FT][2D], x first) as B fragments;
  // the gate / up context parts (per row, from snt_head_ctx) and the down weights, zero-padded
  __shared__ __align__(16) uint4 wf[2][UNITS];
  __shared__ __align__(16) float vec[3][ROWS];
  if (blockDim.x != TC_THREADS) __trap();
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const float* st = stats + SN_STATS * n;
  const float* Wh = W + C::ENC_SIZE + blocks * C::BLOCK_SIZE;
  const float* cx = ctx + (size_t)n * (2 * C::FT + 3);
#pragma unroll
  for (int which = 0; which < 2; ++which) {
    const float* base = Wh + (which == 0 ? C::TG_W : C::TU_W);
    stage_b<P, C::NTT, C::KD>(wf[which], [&](int r, int c) {
      return r < C::FT ? __ldg(base + r * 2 * C::D + c) : 0.0f;
    });
  }
  stage_vec(vec[0], cx, C::FT, ROWS);
  stage_vec(vec[1], cx + C::FT, C::FT, ROWS);
  stage_vec(vec[2], Wh + C::TD_W, C::FT, ROWS);
  __syncthreads();
  const float mult = cx[2 * C::FT], gs = cx[2 * C::FT + 1], gt = cx[2 * C::FT + 2];
  const float td_b = __ldg(Wh + C::TD_B), zmax = st[0], lse = st[1];
  const float* zrow = z + (size_t)n * V;
  const unsigned char* xrow = reinterpret_cast<const unsigned char*>(xs) + n * x_row_bytes<C, P>(V);
  const int tiles = (V + 15) / 16;
  for (int tile = blockIdx.x * TC_WARPS + warp; tile < tiles; tile += gridDim.x * TC_WARPS) {
    const int t0 = 16 * tile;
    float lp[2], keep[2];
    tile_lp(zrow, zmax, lse, V, t0, lane, lp, keep);
    float x[C::ND][4];
    load_x<C, P>(x, xrow, V, t0, lane);
    AFrag xa[C::KD];  // x left a LayerNorm: bounded
    to_frags<C::KD, P>(xa, x, 1.0f, 1.0f);
    float hg[C::NTT][4], hu[C::NTT][4];
    plain_linear<C::KD, C::NTT, P>(hg, xa, wf[0], vec[0], lane);
    plain_linear<C::KD, C::NTT, P>(hu, xa, wf[1], vec[1], lane);
    float part[2] = {0.0f, 0.0f};
#pragma unroll
    for (int c = 0; c < C::NTT; ++c) {
      const float2 td = *reinterpret_cast<const float2*>(vec[2] + 8 * c + 2 * t);
#pragma unroll
      for (int e = 0; e < 4; ++e)
        part[e >> 1] = fmaf(e & 1 ? td.y : td.x, fast_silu(hg[c][e]) * hu[c][e], part[e >> 1]);
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) part[r] = xor_sum<1, 2>(part[r]);
    // lane t = r writes token g + 8 r
    if (t < 2) {
      const int tok = t0 + g + 8 * t;
      if (tok < V) {
        const float l_mod = part[t] + td_b;
        const size_t idx = (size_t)n * V + tok;
        if (keep[t] == 0.0f) {
          out[idx] = NEG_INF;
        } else {
          const float l = (lp[t] + l_mod) * mult;
          out[idx] = l - fast_softplus(-fmaf(gs, l, gt));
        }
      }
    }
  }
}

}  // namespace tc

// Entry points per configuration, precision and pass kind:
// snt_pass{K}_{NAME}_p{P}, snt_head_{NAME}_p{P}, snt_head_ctx_{NAME}, NAME = d{D}_h{H}_e{EH}_f{DFF}_s{0|1}.
#define SNT_PASS(NAME, D, H, EH, DFF, SC, P, K)                                                        \
  extern "C" __global__ void __launch_bounds__(TC_THREADS, 2) snt_pass##K##_##NAME##_p##P(             \
      const float* z, const float* stats, const float* W, float* xs, float* acc, int V, int blocks, int p) { \
    tc::pass<tc::Net<D, H, EH, DFF, SC>, P, K>(z, stats, W, xs, acc, V, blocks, p);                    \
  }
#define SNT_CONFIG_P(NAME, D, H, EH, DFF, SC, P)                                                       \
  SNT_PASS(NAME, D, H, EH, DFF, SC, P, 5)                                                               \
  SNT_PASS(NAME, D, H, EH, DFF, SC, P, 7)                                                               \
  SNT_PASS(NAME, D, H, EH, DFF, SC, P, 3)                                                               \
  SNT_PASS(NAME, D, H, EH, DFF, SC, P, 6)                                                               \
  SNT_PASS(NAME, D, H, EH, DFF, SC, P, 2)                                                               \
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
