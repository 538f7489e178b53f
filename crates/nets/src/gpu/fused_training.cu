// Fused CUDA training step of the SamplingNetwork (SPEC section 2): forward with the block inputs
// kept, TruncatedLogitsLoss, backward; f32 storage and accumulation, the blocks' matrix products
// in split f16 on tensor cores (about f32 accuracy), the rest f32.
//
// The network runs over *units* (tr_units_count, tr_units_assign, tr_units_fill): the distinct
// f16 values among a row's finite logits when all of them are exact f16 values (the replay
// cache's rows), each split into units of at most max_weight tokens, else every token (then
// masked tokens are units of weight 0). Tokens with the same logit have the same lp, so every
// per-token layer gives them the same activations: a unit stands for its tokens, with their count
// as its weight in the vocabulary-wide sums (attention sums, pool, and the backward terms of those
// sums), and its output gradient is the sum of its tokens' (every backward step is linear in it).
// The units buffer is [4][N][V']: the unit's logit (-inf: no unit), its
// weight, the target probability summed over its target-kept tokens and the number of its
// target-removed tokens; V' = the most units of a row. Below, V is V' and "token" means unit,
// except in the row statistics, the unit kernels and tr_loss, which read the tokens.
//
// Every per-token buffer is channel-major over all tokens of the batch, [C][N][V] (channel c of
// token (n, t) at c*T + n*V + t, T = N*V). The head, its backward and the encoder's backward
// run one thread per (row n, token t); the encoder and the blocks, forward and backward, run on
// tensor cores, one warp per 16-token tile of a row (see "Blocks on tensor cores" below), and
// the blocks' backward adds the weight gradients of their Linears in-kernel. The Linears outside
// the blocks (the encoder's down projection, the transform's gate and up token columns) get
// theirs as one GEMM over the T tokens each (cuBLAS, from gpu::fused_training): a layer's input
// buffer carries one extra channel of ones after its K channels, which makes the last column of
// dY * X^T the bias gradient. The kernels of one step:
//
//   tr_row_stats (z, then target)   per row: max, log sum exp(x - max), #NaN/+inf, #finite
//   tr_units_count, _assign, _fill  per row: the units (the host reads their number before _fill)
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
//   tr_bwd_ffn_<cfg>  (b = B-1..0)  tensor cores (see "Blocks on tensor cores" below):
//   tr_bwd_attn_<cfg>               recompute block b, its backward and its Linears' weight
//   tr_bwd_qkv_<cfg>                gradients in-kernel; dx_b = dL/dx_b
//   tr_encode_bwd_<cfg>             the encoder's backward
//
// Sums over tokens in the per-thread kernels: warp shuffles, then shared-memory atomics per
// thread block, then global atomics (f32); in the tensor-core kernels: tensor-core products
// with the tokens as the reduction dimension into each warp's shared-memory copy, then global
// atomics. Masked tokens (z = -inf) are no unit, or units of weight 0 (lp = 0,
// MASKED_LP_SENTINEL): they take no part in any sum, get -inf out and a zero gradient, exactly
// as the candle path.
//
// The weights are one packed f32 buffer in the order of `gpu::fused::packing_order` (every
// Linear as weight [out, in] row-major followed by bias [out]).

#include "common.cuh"
#include "tensor_core.cuh"

#define THREADS 128
// threads per block of the per-row head kernels (tr_rows, tr_rows_bwd; one block per row)
#define ROW_HEAD_THREADS 128
// warps per thread block of the tensor-core block kernels (forward and backward)
#define BW_WARPS 8
#define BW_THREADS (BW_WARPS * 32)
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

// Per row, from the units' outputs `out` ([N][Vu]; token t's is out[unit_of[t]], -inf at
// input-masked tokens, unit_of -1) and the target (row stats `tstats`), over the row's V tokens:
// {lse = log sum exp(out), KL = sum_{target kept} p_t (log p_t - log q) (+inf when a token the
// target keeps has out = -inf), penalty = sum_{target masked} q, #such uncovered tokens}. One
// block per row.
__device__ __forceinline__ float token_out(const float* __restrict__ o_row, const int* __restrict__ u_row, int i) {
  const int k = u_row[i];
  return k < 0 ? NEG_INF : o_row[k];
}

extern "C" __global__ void tr_loss(const float* __restrict__ out, const int* __restrict__ unit_of,
                                   const float* __restrict__ target, const float* __restrict__ tstats, int V, int Vu,
                                   float* __restrict__ loss) {
  const int n = blockIdx.x;
  const float* o_row = out + (size_t)n * Vu;
  const int* u_row = unit_of + (size_t)n * V;
  const float* t_row = target + (size_t)n * V;
  float m = NEG_INF, s = 0.0f, uncovered = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float o = token_out(o_row, u_row, i);
    if (o != NEG_INF) lse_merge(m, s, o, 1.0f);
    else if (t_row[i] != NEG_INF) uncovered += 1.0f;
  }
  block_lse(m, s);
  uncovered = block_sum(uncovered);
  const float lse = m + logf(s);
  const float mt = tstats[STATS * n], lst = tstats[STATS * n + 1];
  float kl = 0.0f, pen = 0.0f;
  for (int i = threadIdx.x; i < V; i += blockDim.x) {
    const float o = token_out(o_row, u_row, i);
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

// Packs the parameters into one buffer dst (FusedTrainer::pack): `table` holds per parameter its
// device address, element count and offset in dst (64-bit each); grid x: blocks striding over a
// parameter, y: the parameter.
extern "C" __global__ void tr_pack(const unsigned long long* __restrict__ table, float* __restrict__ dst) {
  const unsigned long long* e = table + 3 * blockIdx.y;
  const float* src = reinterpret_cast<const float*>(e[0]);
  const unsigned long long len = e[1], off = e[2];
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < len;
       i += (unsigned long long)gridDim.x * blockDim.x)
    dst[off + i] = src[i];
}

// ---- Units (see the top) ----
// The unit kernels run UNIT_SLICES blocks of UNIT_THREADS per row (grid (N, UNIT_SLICES)), each
// over its slice of the row's tokens or of the f16 bit patterns (the keys).
#define UNIT_THREADS 256
#define UNIT_SLICES 8
#define UNIT_KEYS 65536
#define KEYS_PER_SLICE (UNIT_KEYS / UNIT_SLICES)

// Whether the finite `v` is an exact f16 value, and its f16 bit pattern.
__device__ __forceinline__ bool f16_key(float v, unsigned& key) {
  const __half h = __float2half_rn(v);
  key = __half_as_ushort(h);
  return __half2float(h) == v;
}

// Units of a value held by c tokens: ceil(c / max_weight) (a unit stands for at most max_weight
// tokens).
__device__ __forceinline__ unsigned units_of(unsigned c, int max_weight) {
  return (c + (unsigned)max_weight - 1u) / (unsigned)max_weight;
}

// The tokens [begin, end) of this block's slice of a row of V.
__device__ __forceinline__ void token_slice(int V, int& begin, int& end) {
  const int per = (V + UNIT_SLICES - 1) / UNIT_SLICES;
  begin = min(V, (int)blockIdx.y * per);
  end = min(V, begin + per);
}

// Counts each row's tokens per f16 value into keys ([N][UNIT_KEYS], zeroed). units ([N][2],
// zeroed): units[2n + 1] = 1 when the row's units are its tokens (not all its finite logits exact
// f16 values, or `group` 0).
extern "C" __global__ void tr_units_count(const float* __restrict__ z, int V, int group,
                                          unsigned* __restrict__ keys, int* __restrict__ units) {
  const int n = blockIdx.x;
  if (group == 0) {
    if (blockIdx.y == 0 && threadIdx.x == 0) units[2 * n + 1] = 1;
    return;
  }
  const float* row = z + (size_t)n * V;
  unsigned* count = keys + (size_t)n * UNIT_KEYS;
  int begin, end;
  token_slice(V, begin, end);
  int inexact = 0;
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float v = row[i];
    if (!(fabsf(v) < POS_INF)) continue;  // masked, or NaN / +inf (the row statistics report those)
    unsigned key;
    if (f16_key(v, key)) atomicAdd(count + key, 1u);
    else inexact = 1;
  }
  if (__syncthreads_or(inexact) && threadIdx.x == 0) units[2 * n + 1] = 1;
}

// For grouped rows (after tr_units_count): each value's count in keys becomes its first unit, and
// units[2n] the row's number of units (a value's units numbered consecutively, the values' in no
// fixed order). Rows whose units are their tokens are left as they are.
extern "C" __global__ void tr_units_assign(int max_weight, unsigned* __restrict__ keys, int* __restrict__ units) {
  const int n = blockIdx.x, lane = threadIdx.x & 31;
  if (units[2 * n + 1] != 0) return;
  unsigned* count = keys + (size_t)n * UNIT_KEYS + (size_t)blockIdx.y * KEYS_PER_SLICE;
  for (int k = threadIdx.x; k < KEYS_PER_SLICE; k += blockDim.x) {
    const unsigned c = count[k], mine = units_of(c, max_weight);
    unsigned incl = mine;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned y = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += y;
    }
    const unsigned total = __shfl_sync(0xffffffffu, incl, 31);
    unsigned base = 0;
    if (lane == 0 && total != 0) base = (unsigned)atomicAdd(units + 2 * n, (int)total);
    base = __shfl_sync(0xffffffffu, base, 0);
    if (c != 0) count[k] = base + incl - mine;
  }
}

// After tr_units_assign: fills the units buffer u ([4][N][Vu], zeroed, its logits -inf; see the
// top) and unit_of ([N][V]: token -> unit, -1 at masked tokens). A grouped value's tokens take
// its units max_weight at a time (in no fixed order: `seen`, [N][UNIT_KEYS] zeroed, counts
// them).
extern "C" __global__ void tr_units_fill(const float* __restrict__ z, const float* __restrict__ target,
                                         const float* __restrict__ tstats, int V, int Vu, int max_weight,
                                         const int* __restrict__ units, const unsigned* __restrict__ keys,
                                         unsigned* __restrict__ seen, float* __restrict__ u,
                                         int* __restrict__ unit_of) {
  const int n = blockIdx.x;
  const bool tokens = units[2 * n + 1] != 0;
  const float* row = z + (size_t)n * V;
  const unsigned* first = keys + (size_t)n * UNIT_KEYS;
  unsigned* rank = seen + (size_t)n * UNIT_KEYS;
  const size_t T = (size_t)gridDim.x * Vu, r0 = (size_t)n * Vu;
  float *uz = u + r0, *uw = u + T + r0, *up = u + 2 * T + r0, *um = u + 3 * T + r0;
  const float mt = tstats[STATS * n], lst = tstats[STATS * n + 1];
  int begin, end;
  token_slice(V, begin, end);
  for (int t = begin + threadIdx.x; t < end; t += blockDim.x) {
    const float v = row[t];
    const bool finite = fabsf(v) < POS_INF;
    int k = -1;
    if (finite) {
      if (tokens) k = t;
      else {
        unsigned key;
        f16_key(v, key);
        k = (int)(first[key] + atomicAdd(rank + key, 1u) / (unsigned)max_weight);
      }
    }
    unit_of[(size_t)n * V + t] = k;
    if (k < 0) continue;
    const float tv = target[(size_t)n * V + t];
    if (tokens) {
      uz[k] = v;
      uw[k] = 1.0f;
      if (tv == NEG_INF) um[k] = 1.0f;
      else up[k] = expf((tv - mt) - lst);
    } else {
      uz[k] = v;  // the same value from every token of the unit
      atomicAdd(uw + k, 1.0f);
      if (tv == NEG_INF) atomicAdd(um + k, 1.0f);
      else atomicAdd(up + k, expf((tv - mt) - lst));
    }
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

  // The tensor-core block backward: k-chunks (16 channels) and n-tiles (8 channels) of d_model
  // and of the FFN hidden width (padded), the attention's numerator + denominator n-tiles, and
  // the shared-memory row strides (halves) of staged matrices with d_model / FFN-hidden columns.
  using L::H, L::HW, L::FF, L::ACC_BLOCK;
  static_assert(HW == 8, "the tensor-core kernels take heads of width 8");
  static_assert(D % 16 == 0, "d_model must be a multiple of 16");
  static_assert(H <= 4, "one shared scale slot per head, 4 slots");
  static constexpr int KD = D / 16, ND = D / 8, KF = (FF + 15) / 16, NF = 2 * KF, NA = ND + 1;
  static_assert(FF < 16 * KF, "the FFN hidden width needs a padding channel (the down bias column)");
  static constexpr int LDD = 16 * KD + 8, LDF = 16 * KF + 8;
  // per-block weight gradients `wgrad`: each Linear as [out][in + 1], the bias last
  static constexpr int WG_QKV = 0, WG_OUT = 3 * D * (D + 1), WG_GATE = WG_OUT + D * (D + 1);
  static constexpr int WG_UP = WG_GATE + FF * (D + 1), WG_DOWN = WG_UP + FF * (D + 1);
  static constexpr int WG_BLOCK = WG_DOWN + D * (FF + 1);
  // dynamic shared memory of a kernel: staged matrices (f16 hi, then the same lo), staged sums
  // (ACC_BLOCK floats), 4 scale slots, each warp's f32 copy of its sums (priv floats)
  static constexpr int smem(int halves, int priv) { return 4 * halves + 4 * (ACC_BLOCK + 4 + BW_WARPS * priv); }
  // tr_bwd_ffn: W_q, W_out, W_gate, W_up, W_down, the attention operand (offsets in halves);
  // a warp's sums: gate, up, down (the wgrad layout), ln1 w, ln1 b, ln2 w, ln2 b
  static constexpr int F_Q = 0, F_OUT = F_Q + D * LDD, F_G = F_OUT + D * LDD, F_U = F_G + 16 * KF * LDD;
  static constexpr int F_DN = F_U + 16 * KF * LDD, F_ATT = F_DN + D * LDF, F_HALVES = F_ATT + 8 * NA * LDD;
  static constexpr int F_GATE = 0, F_UP = FF * (D + 1), F_DOWN = 2 * FF * (D + 1), F_LN = F_DOWN + D * (FF + 1);
  static constexpr int F_PRIV = F_LN + 4 * D, F_SMEM = smem(F_HALVES, F_PRIV);
  // tr_encode: the encoder's down projection (LDE: its hidden width, padded), block 0's W_k,
  // W_v; sums: block 0's S, s
  static constexpr int KE = (FE + 15) / 16, LDE = 16 * KE + 8;
  static constexpr int E_ENC = 0, E_KV = D * LDE, E_HALVES = E_KV + 2 * D * LDD, E_PRIV = ACC_BLOCK;
  static constexpr int E_SMEM = smem(E_HALVES, E_PRIV);
  // tr_block (forward): the F_* matrices, then block b+1's W_k, W_v; sums: S, s (or the pool)
  static constexpr int P_KV = F_HALVES, P_HALVES = P_KV + 2 * D * LDD, P_PRIV = ACC_BLOCK;
  static constexpr int P_SMEM = smem(P_HALVES, P_PRIV);
  // tr_bwd_attn: W_q, W_out, the attention operand and its transpose; sums: out (wgrad), dS', ds'
  static constexpr int A_Q = 0, A_OUT = D * LDD, A_ATT = 2 * D * LDD, A_ATTT = A_ATT + 8 * NA * LDD;
  static constexpr int A_HALVES = A_ATTT + D * LDD, A_PRIV = D * (D + 1) + ACC_BLOCK, A_SMEM = smem(A_HALVES, A_PRIV);
  // tr_bwd_qkv: W_qkv, the dk and dv operands; sums: qkv (wgrad)
  static constexpr int B_QKV = 0, B_M1 = 3 * D * LDD, B_M2 = B_M1 + D * LDD, B_HALVES = B_M2 + D * LDD;
  static constexpr int B_PRIV = 3 * D * (D + 1), B_SMEM = smem(B_HALVES, B_PRIV);
};

// lp and weight of unit t of row n in the units buffer z (see the top; the grid's y dimension
// is the N rows).
__device__ __forceinline__ void token_lp(const float* __restrict__ z, const float* __restrict__ zstats, int V, int n,
                                         int t, float& lp, float& keep) {
  const size_t tok = (size_t)n * V + t;
  const float zt = z[tok];
  if (zt == NEG_INF) { lp = 0.0f; keep = 0.0f; }
  else { lp = zt - zstats[STATS * n] - zstats[STATS * n + 1]; keep = z[(size_t)gridDim.y * V + tok]; }
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

// One round of warp_sum32: lanes with bit O set keep v[O .. 2O), the others v[0 .. O), each
// adding its partner's (lane ^ O) copy of the half it keeps, into v[0 .. O).
template <int O>
__device__ __forceinline__ void warp_fold(float (&v)[32], int lane) {
  const bool upper = (lane & O) != 0;
#pragma unroll
  for (int j = 0; j < O; ++j) {
    const float send = upper ? v[j] : v[j + O];
    const float keep = upper ? v[j + O] : v[j];
    v[j] = keep + __shfl_xor_sync(0xffffffffu, send, O);
  }
}

// The warp's sums of 32 values per lane: returns, in lane j, the sum over the lanes of their
// v[j] (v is overwritten). A transposing reduction, 16 + 8 + 4 + 2 + 1 = 31 shuffles for the 32
// sums (warp_sum: 5 per sum).
__device__ __forceinline__ float warp_sum32(float (&v)[32]) {
  const int lane = threadIdx.x & 31;
  warp_fold<16>(v, lane);
  warp_fold<8>(v, lane);
  warp_fold<4>(v, lane);
  warp_fold<2>(v, lane);
  warp_fold<1>(v, lane);
  return v[0];
}

// Channel c of token (n, t) in a [C][N][V] buffer.
__device__ __forceinline__ size_t at(int c, size_t T, size_t tok) { return (size_t)c * T + tok; }

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

// dL/dout of every unit, the sum of its tokens' (L = scale * sum_rows (KL + gamma penalty); rows
// with an uncovered token get none): scale (w q (1 - gamma pen) - P + gamma q M) with the unit's
// weight w, target mass P and target-removed count M (the units buffer z), then the gate's and
// the transform's backward: dx_B -> dx, the transform's d(gate | up) pre-activations -> dgu
// [2 FT], per-row sums (dmult, ds, dtau, dctx) -> rowgrad, the transform's down-projection
// gradients -> pgrad.
template <class C>
__device__ void head_backward(const float* __restrict__ z, const float* __restrict__ zstats,
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
    const float p = z[2 * T + tok], removed = z[3 * T + tok];
    dout = scale * (fmaf(keep * q, 1.0f - gamma * lr[2], -p) + gamma * q * removed);
  }
  const float sg = sigmoidf_(-fmaf(s, l, tau));
  const float dl = dout * fmaf(s, sg, 1.0f);
  const float du_total = mult * dl;
  float d[C::D];
#pragma unroll
  for (int i = 0; i < C::D; ++i) d[i] = 0.0f;
  // The block's sums, 8 f at a time through warp_sum32: value j of a group is, for f = f0 + j % 8,
  // psum[f] (j < 8), rsum[f] (j < 16), rsum[FT + f] (j < 24); values 24..27 of the first group
  // are the row terms dmult, ds, dtau and the down projection's bias sum psum[FT].
#pragma unroll
  for (int f0 = 0; f0 < C::FT; f0 += 8) {
    float sums[32];
#pragma unroll
    for (int j = 24; j < 32; ++j) sums[j] = 0.0f;
    if (f0 == 0) {
      sums[24] = dl * uu;
      sums[25] = dout * sg * l;
      sums[26] = dout * sg;
      sums[27] = du_total;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int f = f0 + j;
      float ps = 0.0f, dg = 0.0f, du = 0.0f;
      if (f < C::FT) {
        const float sgf = sigmoidf_(g[f]);
        const float si = g[f] * sgf;
        ps = du_total * si * u[f];
        const float dh = du_total * __ldg(Wh + C::TD_W + f);
        dg = dh * u[f] * sgf * fmaf(g[f], 1.0f - sgf, 1.0f);
        du = dh * si;
        if (valid) {
          dgu[at(f, T, tok)] = dg;
          dgu[at(C::FT + f, T, tok)] = du;
        }
#pragma unroll
        for (int i = 0; i < C::D; ++i)
          d[i] = fmaf(dg, __ldg(Wh + C::TG_W + f * 2 * C::D + i), fmaf(du, __ldg(Wh + C::TU_W + f * 2 * C::D + i), d[i]));
      }
      sums[j] = ps;
      sums[8 + j] = dg;
      sums[16 + j] = du;
    }
    const float total = warp_sum32(sums);
    const int lane = threadIdx.x & 31, f = f0 + (lane & 7);
    if (lane < 24) {
      if (f < C::FT) atomicAdd(lane < 8 ? psum + f : rsum + (lane < 16 ? f : C::FT + f), total);
    } else if (f0 == 0 && lane < 28) {
      const int row_term = lane == 24 ? C::R_MULT : lane == 25 ? C::R_S : C::R_TAU;
      atomicAdd(lane < 27 ? rsum + row_term : psum + C::FT, total);
    }
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

// ---------------------------------------------------------------------------------------------
// Blocks on tensor cores. Grid (thread blocks per row, rows), BW_WARPS warps per thread block,
// each warp looping over its row's 16-token tiles. Forward, one launch for the encoder and one
// per block:
//
//   tr_encode_<cfg>    lp -> x_0 (the down projection on tensor cores); block 0's sums
//   tr_block_<cfg>     x_b -> x_{b+1}; block b+1's sums S = sum phi(k) v^T, s = sum phi(k)
//                      (tensor-core products over the tokens) or the pool sum
//
// Backward, three launches per block:
//
//   tr_bwd_ffn_<cfg>   recompute block b from x_b and its forward sums; from dL/dx_{b+1} (+ the
//                      pool's share for the last block): LN2, FFN and LN1 backward -> dy1 (the
//                      LN1 input gradient); weight gradients of the FFN's gate, up and down
//                      Linears, LN sums
//   tr_bwd_attn_<cfg>  recompute phi(q) and the attention output; from dy1: the output
//                      projection's weight gradient, the attention backward -> dq, and the row's
//                      dS' = sum phi(q) dnum'^T, ds' = sum dden' phi(q)
//   tr_bwd_qkv_<cfg>   recompute k, v; dk, dv from dS, ds; the qkv weight gradient;
//                      dx = dL/dx_b = dy1 + W_qkv^T dqkv
//
// Every per-token product runs on tensor cores in split f16 (a = a_hi + a_lo, three mmas per
// product, ~22 bits) with 16 tokens as the M dimension: y = x W^T with W staged as the B operand
// (rows = outputs), dx = dy W with W read transposed by ldmatrix.trans (rows = the reduction).
// The weight gradients dW += dY^T X are tensor-core products with the tile's 16 tokens as the
// reduction dimension: both operands transposed in registers (movmatrix) from the token-major
// C fragments, each channel scaled over the tile by a power of two (max |.| in [2^7, 2^8)) before
// the f16 split and the products scaled back in f32; a B column of ones gives the bias
// gradient. Every warp adds its tiles' products to its own f32 copy in shared memory (no
// atomics), and the thread block adds the warps' copies to global memory once (atomics).
// Per-token operands of the dx products are scaled per token the same way (gradients have no
// fixed range).
// `wgrad`: per block, every Linear's gradient as [out][in + 1] (the bias last): qkv, out, gate,
// up, down (`Net::WG_*`).
// ---------------------------------------------------------------------------------------------

namespace trc {

using tc::AFrag;
using tc::SMat;

// Power of two that brings max |.| = m into [2^7, 2^8) (1 for m = 0 or not finite); exact.
__device__ __forceinline__ float norm_scale(float m) {
  if (!(m > 0.0f) || !(m <= 3.0e38f)) return 1.0f;
  const int e = ((__float_as_int(m) >> 23) & 0xff) - 127;  // m in [2^e, 2^(e+1)) (normal m)
  const int k = min(max(7 - e, -126), 126);
  return __int_as_float((k + 127) << 23);
}

// 1 / s for a power of two s = 2^k, |k| <= 126 (exact).
__device__ __forceinline__ float inv_pow2(float s) { return __int_as_float((254 << 23) - __float_as_int(s)); }

// norm_scale per token of the tile (rows g, g+8; a quad holds a token's channels).
template <int NT>
__device__ __forceinline__ void token_scales(const float (&c)[NT][4], float (&s)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    s[r] = norm_scale(tc::token_absmax(c, r));
  }
}

// norm_scale per channel over the tile's 16 tokens: s[n][e] for channel 8 n + 2 t + e.
template <int NT>
__device__ __forceinline__ void channel_scales(const float (&c)[NT][4], float (&s)[NT][2]) {
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float m = fmaxf(fabsf(c[n][e]), fabsf(c[n][e + 2]));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 4));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 8));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 16));
      s[n][e] = norm_scale(m);
    }
}

// Transposes an 8x8 f16 matrix held as fragments (lane g, t: row g, columns 2t, 2t+1).
__device__ __forceinline__ uint32_t trans8x8(uint32_t x) {
  uint32_t r;
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(r) : "r"(x));
  return r;
}

// One n-tile (8 channels) of a token-major tile, transposed: lane (g, t) holds channel g of
// tokens 2t, 2t+1 (h[0], l[0]: tokens 0..7; h[1], l[1]: tokens 8..15), f16 hi / lo. It is the
// B operand (k = tokens, n = channels) as it stands, and two n-tiles form an A operand
// (rows = 16 channels, k = tokens).
struct TFrag { uint32_t h[2], l[2]; };

// c (times its channel scales s) -> transposed f16 hi / lo fragments.
template <int NT>
__device__ __forceinline__ void to_tfrags(TFrag (&f)[NT], const float (&c)[NT][4], const float (&s)[NT][2]) {
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      uint32_t hi, lo;
      tc::split2<2>(c[n][2 * j] * s[n][0], c[n][2 * j + 1] * s[n][1], hi, lo);
      f[n].h[j] = trans8x8(hi);
      f[n].l[j] = trans8x8(lo);
    }
}

// The A operand (channels 16 m .. 16 m + 15 as rows, tokens as k) from transposed n-tiles
// a0 (channels 16 m ..) and a1 (16 m + 8 ..).
__device__ __forceinline__ AFrag afrag_t(const TFrag& a0, const TFrag& a1) {
  AFrag f;
  f.h[0] = a0.h[0]; f.h[1] = a1.h[0]; f.h[2] = a0.h[1]; f.h[3] = a1.h[1];
  f.l[0] = a0.l[0]; f.l[1] = a1.l[0]; f.l[2] = a0.l[1]; f.l[3] = a1.l[1];
  return f;
}

// c += a . b in split f16 (a_hi b_hi + a_lo b_hi + a_hi b_lo).
__device__ __forceinline__ void mma3(float (&c)[4], const AFrag& a, uint32_t bh0, uint32_t bh1, uint32_t bl0,
                                     uint32_t bl1) {
  tc::mma(c, a.h, bh0, bh1);
  tc::mma(c, a.l, bh0, bh1);
  tc::mma(c, a.h, bl0, bl1);
}

// 1 / scale of channel 8 n + g (lane g), from channel_scales' s[n] (held by the lanes t = g / 2).
__device__ __forceinline__ float row_inv(const float (&s)[2], int lane) {
  const int g = lane >> 2;
  const float a = __shfl_sync(0xffffffffu, s[0], g >> 1), b = __shfl_sync(0xffffffffu, s[1], g >> 1);
  return inv_pow2((g & 1) ? b : a);
}

// dst [R][ld] += A^T B summed over the tile's 16 tokens: the rows are the channels of the 2 MT
// n-tiles a (channel scales sa), the columns those of the NB n-tiles b (sb); columns >= NC are
// skipped; with BIAS, column NC gets the rows' sums over the tokens (a B column of ones).
// dst is this warp's own copy (no other thread writes it).
template <int MT, int NB, bool BIAS>
__device__ __forceinline__ void add_wgrad(float* dst, int ld, int R, int NC, const TFrag (&a)[2 * MT],
                                          const float (&sa)[2 * MT][2], const TFrag (&b)[NB],
                                          const float (&sb)[NB][2], int lane) {
  const int g = lane >> 2, t = lane & 3;
  const uint32_t ones = g == 0 ? 0x3c003c00u : 0u;  // f16 pair (1, 1)
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    const AFrag af = afrag_t(a[2 * m], a[2 * m + 1]);
    const int r0 = 16 * m + g, r1 = r0 + 8;
    const float i0 = row_inv(sa[2 * m], lane), i1 = row_inv(sa[2 * m + 1], lane);
#pragma unroll
    for (int n = 0; n < NB; ++n) {
      float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      mma3(c, af, b[n].h[0], b[n].h[1], b[n].l[0], b[n].l[1]);
      const int c0 = 8 * n + 2 * t;
      const float j0 = inv_pow2(sb[n][0]), j1 = inv_pow2(sb[n][1]);
      if (r0 < R) {
        if (c0 < NC) dst[r0 * ld + c0] += c[0] * i0 * j0;
        if (c0 + 1 < NC) dst[r0 * ld + c0 + 1] += c[1] * i0 * j1;
      }
      if (r1 < R) {
        if (c0 < NC) dst[r1 * ld + c0] += c[2] * i1 * j0;
        if (c0 + 1 < NC) dst[r1 * ld + c0 + 1] += c[3] * i1 * j1;
      }
    }
    if (BIAS) {
      float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      tc::mma(c, af.h, ones, ones);
      tc::mma(c, af.l, ones, ones);
      if (t == 0) {
        if (r0 < R) dst[r0 * ld + NC] += c[0] * i0;
        if (r1 < R) dst[r1 * ld + NC] += c[2] * i1;
      }
    }
  }
}

// Loads two 8x8 f16 matrices from shared memory transposed (lanes 0..15 give the row addresses).
__device__ __forceinline__ void ldsm_x2_trans(uint32_t& r0, uint32_t& r1, const __half* p) {
  const uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(a));
}

// out[nt] += a . W for W staged [16 KC rows][LD] (rows = the reduction dimension, columns
// 8 nt .. 8 nt + 7 the outputs): the transposed product of tc::linear.
template <int KC, int NT, int LD>
__device__ __forceinline__ void linear_t(float (&out)[NT][4], const AFrag (&a)[KC], SMat w, int lane) {
  const int row = lane & 15;
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int k = 0; k < KC; ++k) {
      const int off = (16 * k + row) * LD + 8 * n;
      uint32_t h0, h1, l0, l1;
      ldsm_x2_trans(h0, h1, w.hi + off);
      ldsm_x2_trans(l0, l1, w.lo + off);
      mma3(out[n], a[k], h0, h1, l0, l1);
    }
}

// `in` scaled per token -> A fragments; inv: the inverse scales of rows g, g+8.
template <int KC>
__device__ __forceinline__ void to_afrags(AFrag (&a)[KC], float (&inv)[2], const float (&in)[2 * KC][4]) {
  float s[2];
  token_scales(in, s);
  tc::to_frags<KC, 2>(a, in, s);
  inv[0] = inv_pow2(s[0]);
  inv[1] = inv_pow2(s[1]);
}

template <int NT>
__device__ __forceinline__ void unscale(float (&c)[NT][4], const float (&inv)[2]) {
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    c[n][0] *= inv[0];
    c[n][1] *= inv[0];
    c[n][2] *= inv[1];
    c[n][3] *= inv[1];
  }
}

// out = in W^T (TRANS = false; W rows = outputs) or in W (TRANS; W rows = the reduction), `in`
// scaled per token for the f16 split.
template <int KC, int NT, int LD, bool TRANS>
__device__ __forceinline__ void token_product(float (&out)[NT][4], const float (&in)[2 * KC][4], SMat w, int lane) {
  AFrag a[KC];
  float inv[2];
  to_afrags<KC>(a, inv, in);
  tc::zero(out);
  if (TRANS) linear_t<KC, NT, LD>(out, a, w, lane);
  else tc::linear<KC, NT, 2, LD>(out, a, w, lane);
  unscale(out, inv);
}

// o1 = in W1^T, o2 = in W2^T (W rows = outputs) from one scaled split of `in` (per token).
template <int KC, int NT, int LD>
__device__ __forceinline__ void token_product2(float (&o1)[NT][4], float (&o2)[NT][4], const float (&in)[2 * KC][4],
                                               SMat w1, SMat w2, int lane) {
  AFrag a[KC];
  float inv[2];
  to_afrags<KC>(a, inv, in);
  tc::zero(o1);
  tc::zero(o2);
  tc::linear<KC, NT, 2, LD>(o1, a, w1, lane);
  tc::linear<KC, NT, 2, LD>(o2, a, w2, lane);
  unscale(o1, inv);
  unscale(o2, inv);
}

// c += bias (entries >= count read as 0).
template <int NT>
__device__ __forceinline__ void add_bias(float (&c)[NT][4], const float* __restrict__ bias, int count, int lane) {
  const int t = lane & 3;
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    const int ch = 8 * n + 2 * t;
    const float b0 = ch < count ? __ldg(bias + ch) : 0.0f, b1 = ch + 1 < count ? __ldg(bias + ch + 1) : 0.0f;
    c[n][0] += b0;
    c[n][1] += b1;
    c[n][2] += b0;
    c[n][3] += b1;
  }
}

// The tile's channels of a channel-major [C][N][V] buffer (`base` = channel 0; T = N V; the
// row's tokens start at row0); tokens past V read 0.
template <int NT>
__device__ __forceinline__ void load_cm(float (&c)[NT][4], const float* __restrict__ base, size_t T, size_t row0,
                                        int t0, int V, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int tok = t0 + g + 8 * r;
    const bool ok = tok < V;
    const float* p = base + row0 + tok;
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) c[n][2 * r + e] = ok ? p[(size_t)(8 * n + 2 * t + e) * T] : 0.0f;
  }
}

template <int NT>
__device__ __forceinline__ void store_cm(float* __restrict__ base, const float (&c)[NT][4], size_t T, size_t row0,
                                         int t0, int V, int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int tok = t0 + g + 8 * r;
    if (tok >= V) continue;
    float* p = base + row0 + tok;
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) p[(size_t)(8 * n + 2 * t + e) * T] = c[n][2 * r + e];
  }
}

// Adds the tile's per-channel sums over its tokens of v to dst (lanes g = 0 write).
template <int NT>
__device__ __forceinline__ void add_channel_sums(float* dst, const float (&v)[NT][2], int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float s = v[n][e];
      s += __shfl_xor_sync(0xffffffffu, s, 4);
      s += __shfl_xor_sync(0xffffffffu, s, 8);
      s += __shfl_xor_sync(0xffffffffu, s, 16);
      if (g == 0) dst[8 * n + 2 * t + e] += s;
    }
}

// y <- (y - mean) / sqrt(var + eps) per token; r = 1 / sqrt(var + eps) of rows g, g+8.
template <int ND>
__device__ __forceinline__ void normalize_tile(float (&y)[ND][4], float (&r)[2]) {
  constexpr float inv_d = 1.0f / (8 * ND);
#pragma unroll
  for (int q = 0; q < 2; ++q) {
    float s = 0.0f;
#pragma unroll
    for (int n = 0; n < ND; ++n) s += y[n][2 * q] + y[n][2 * q + 1];
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    const float mean = s * inv_d;
    float v = 0.0f;
#pragma unroll
    for (int n = 0; n < ND; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        y[n][2 * q + e] -= mean;
        v = fmaf(y[n][2 * q + e], y[n][2 * q + e], v);
      }
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    r[q] = rsqrtf(v * inv_d + LAYER_NORM_EPS);
#pragma unroll
    for (int n = 0; n < ND; ++n) {
      y[n][2 * q] *= r[q];
      y[n][2 * q + 1] *= r[q];
    }
  }
}

// y = xh w + b per channel.
template <int ND>
__device__ __forceinline__ void affine(float (&y)[ND][4], const float (&xh)[ND][4], const float* __restrict__ w,
                                       const float* __restrict__ b, int lane) {
  const int t = lane & 3;
#pragma unroll
  for (int n = 0; n < ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int ch = 8 * n + 2 * t + (e & 1);
      y[n][e] = fmaf(xh[n][e], __ldg(w + ch), __ldg(b + ch));
    }
}

// LayerNorm backward in place: gr (dL/d output) -> dL/d input = r (gw - mean(gw) - xh mean(gw xh)),
// gw = gr w; adds the tile's sums of gr xh and gr per channel to wsum, bsum (this warp's copy).
template <int ND>
__device__ __forceinline__ void ln_backward(float (&gr)[ND][4], const float (&xh)[ND][4], const float (&r)[2],
                                            const float* __restrict__ w, float* wsum, float* bsum, int lane) {
  const int t = lane & 3;
  float sw[ND][2], sb[ND][2];
#pragma unroll
  for (int n = 0; n < ND; ++n)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      sw[n][e] = fmaf(gr[n][e], xh[n][e], gr[n][e + 2] * xh[n][e + 2]);
      sb[n][e] = gr[n][e] + gr[n][e + 2];
    }
  add_channel_sums(wsum, sw, lane);
  add_channel_sums(bsum, sb, lane);
  float m1[2] = {0.0f, 0.0f}, m2[2] = {0.0f, 0.0f};
#pragma unroll
  for (int n = 0; n < ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float gw = gr[n][e] * __ldg(w + 8 * n + 2 * t + (e & 1));
      gr[n][e] = gw;
      m1[e >> 1] += gw;
      m2[e >> 1] = fmaf(gw, xh[n][e], m2[e >> 1]);
    }
  constexpr float inv_d = 1.0f / (8 * ND);
#pragma unroll
  for (int q = 0; q < 2; ++q) {
    m1[q] += __shfl_xor_sync(0xffffffffu, m1[q], 1);
    m1[q] += __shfl_xor_sync(0xffffffffu, m1[q], 2);
    m2[q] += __shfl_xor_sync(0xffffffffu, m2[q], 1);
    m2[q] += __shfl_xor_sync(0xffffffffu, m2[q], 2);
    m1[q] *= inv_d;
    m2[q] *= inv_d;
  }
#pragma unroll
  for (int n = 0; n < ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) gr[n][e] = r[e >> 1] * (gr[n][e] - m1[e >> 1] - xh[n][e] * m2[e >> 1]);
}

// Stages block b's forward sums `sums` (S [D][8], s [D]) / kept: f32 into `sf` (ACC_BLOCK
// floats), and as the attention B operand at hi / lo + o_att ([8 NA][LDD]: rows = the D
// numerator columns then the H denominators, columns = q channels), head h's entries times
// sc[h] (power of two, max in [2^7, 2^8)); with o_attt >= 0 also [D][LDD] with entry (c, r) =
// S[c][r % 8] sc[h] for channels c, r of head h (dphi(q) = dnum S^T). `scal` (4 floats) must be
// zero; the thread block must call this together.
template <class C>
__device__ void stage_attention(__half* hi, __half* lo, int o_att, int o_attt, const float* __restrict__ sums,
                                float kept, float* sf, float* scal, float (&sc)[C::H]) {
  for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) {
    const float v = sums[i] / kept;
    sf[i] = v;
    const int head = i < C::D * 8 ? i / 64 : (i - C::D * 8) / 8;
    atomicMax(reinterpret_cast<int*>(scal + head), __float_as_int(fabsf(v)));
  }
  __syncthreads();
#pragma unroll
  for (int h = 0; h < C::H; ++h) sc[h] = norm_scale(scal[h]);
  for (int i = threadIdx.x; i < 8 * C::NA * C::D; i += blockDim.x) {
    const int r = i / C::D, c = i % C::D, head = c / 8;
    float v = 0.0f;
    if (r < C::D) {
      if (r / 8 == head) v = sf[c * 8 + (r % 8)];
    } else if (r - C::D == head) {
      v = sf[C::D * 8 + c];
    }
    v *= sc[head];
    const __half h = __float2half_rn(v);
    hi[o_att + r * C::LDD + c] = h;
    lo[o_att + r * C::LDD + c] = __float2half_rn(v - __half2float(h));
  }
  if (o_attt >= 0) {
    for (int i = threadIdx.x; i < C::D * C::D; i += blockDim.x) {
      const int c = i / C::D, r = i % C::D, head = c / 8;
      const float v = r / 8 == head ? sf[c * 8 + (r % 8)] * sc[head] : 0.0f;
      const __half h = __float2half_rn(v);
      hi[o_attt + c * C::LDD + r] = h;
      lo[o_attt + c * C::LDD + r] = __float2half_rn(v - __half2float(h));
    }
  }
}

// phi(q), the attention output a and inv[h][r] = 1 / (den + eps) (row r of the tile, den and eps
// of the sums / kept) from the block input x.
template <class C>
__device__ __forceinline__ void attention_fwd(const float (&x)[C::ND][4], const float* __restrict__ Wb, SMat q,
                                              SMat att, const float (&sc)[C::H], float eps_k,
                                              float (&phiq)[C::ND][4], float (&a)[C::ND][4], float (&inv)[C::H][2],
                                              int lane) {
  token_product<C::KD, C::ND, C::LDD, false>(phiq, x, q, lane);
  add_bias(phiq, Wb + C::QKV_B, C::D, lane);
#pragma unroll
  for (int n = 0; n < C::ND; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) phiq[n][e] = elu_plus_one(phiq[n][e]);
  AFrag qa[C::KD];
  float iq[2];
  to_afrags<C::KD>(qa, iq, phiq);
  float nd[C::NA][4];
  tc::zero(nd);
  tc::linear<C::KD, C::NA, 2, C::LDD>(nd, qa, att, lane);
  // numerators and denominators carry the token's phi(q) scale and the head's sums scale
#pragma unroll
  for (int h = 0; h < C::H; ++h) {
    const int src = (lane & ~3) | (h >> 1);
    const float d0 = __shfl_sync(0xffffffffu, nd[C::ND][h & 1], src);
    const float d1 = __shfl_sync(0xffffffffu, nd[C::ND][2 + (h & 1)], src);
    const float s0 = sc[h] * inv_pow2(iq[0]), s1 = sc[h] * inv_pow2(iq[1]);
    const float i0 = 1.0f / (d0 + eps_k * s0), i1 = 1.0f / (d1 + eps_k * s1);
    a[h][0] = nd[h][0] * i0;
    a[h][1] = nd[h][1] * i0;
    a[h][2] = nd[h][2] * i1;
    a[h][3] = nd[h][3] * i1;
    inv[h][0] = i0 * s0;
    inv[h][1] = i1 * s1;
  }
}

// The thread block's warp copies (BW_WARPS x count floats at priv) summed and added to
// dst(i) for i < split, dst2(i - split) after.
__device__ __forceinline__ void flush_warps(const float* priv, int count, int split, float* __restrict__ dst,
                                            float* __restrict__ dst2) {
  __syncthreads();
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < BW_WARPS; ++w) s += priv[w * count + i];
    if (i < split) atomicAdd(dst + i, s);
    else atomicAdd(dst2 + (i - split), s);
  }
}

// The kernels' common start: checks the dynamic shared memory, zeroes the warps' copies
// (BW_WARPS x priv_count floats) and the 4 scale slots.
__device__ __forceinline__ void begin(int need, float* priv, int priv_count, float* scal) {
  if (tc::dynamic_smem_size() < (uint32_t)need) __trap();
  for (int i = threadIdx.x; i < BW_WARPS * priv_count; i += blockDim.x) priv[i] = 0.0f;
  if (threadIdx.x < 4) scal[threadIdx.x] = 0.0f;
  __syncthreads();
}

// The dynamic shared memory of a tensor-core kernel: staged matrices (f16 hi, then the same lo,
// `halves` each), the staged sums (ACC_BLOCK floats), 4 scale slots, then the warps' own sums
// (BW_WARPS x priv_count floats); begin() checks the size and zeroes the sums and slots.
struct Smem { __half* hi; __half* lo; float* sf; float* scal; float* priv; };

template <class C>
__device__ __forceinline__ Smem carve(int halves, int need, int priv_count) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem m;
  m.hi = reinterpret_cast<__half*>(smem_raw);
  m.lo = m.hi + halves;
  m.sf = reinterpret_cast<float*>(m.lo + halves);
  m.scal = m.sf + C::ACC_BLOCK;
  m.priv = m.scal + 4;
  begin(need, m.priv, priv_count, m.scal);
  return m;
}

}  // namespace trc

// dst[(8 h + g) 8 + j] += sum over the tile's 16 tokens of a_c b_(8 h + j) for the channels c =
// 8 h + g, 8 h + j of each head h (per-head outer products, the layout of the attention sums S;
// this warp's own copy): split-f16 tensor-core products with the tokens as the reduction
// dimension, each channel scaled over the tile. A = a^T of the head pair 2 (h / 2),
// 2 (h / 2) + 1 (ND = H is even: D % 16 == 0 and heads of width 8), B = b of head h; head h's
// rows of the product are g (h even, c0 c1) or g + 8 (h odd, c2 c3).
template <int ND>
__device__ __forceinline__ void add_head_outer(float* dst, const float (&a)[ND][4], const float (&b)[ND][4],
                                               int lane) {
  using namespace trc;
  const int g = lane >> 2, t = lane & 3;
  float sa[ND][2], sb[ND][2];
  TFrag ta[ND], tb[ND];
  channel_scales(a, sa);
  to_tfrags(ta, a, sa);
  channel_scales(b, sb);
  to_tfrags(tb, b, sb);
#pragma unroll
  for (int h = 0; h < ND; ++h) {
    const AFrag af = afrag_t(ta[2 * (h / 2)], ta[2 * (h / 2) + 1]);
    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    mma3(c, af, tb[h].h[0], tb[h].h[1], tb[h].l[0], tb[h].l[1]);
    const int e0 = 2 * (h & 1);
    const float ir = row_inv(sa[h], lane);
    float2* d = reinterpret_cast<float2*>(dst + (8 * h + g) * 8 + 2 * t);  // dst: 8-byte aligned
    float2 v = *d;
    v.x += c[e0] * ir * inv_pow2(sb[h][0]);
    v.y += c[e0 + 1] * ir * inv_pow2(sb[h][1]);
    *d = v;
  }
}

// k (the pre-activation, bias added) and v of the tile x for block weights Wb, with W_k and W_v
// staged as wk, wv.
template <class C>
__device__ __forceinline__ void key_value_tile(const float (&x)[C::ND][4], const float* __restrict__ Wb,
                                               trc::SMat wk, trc::SMat wv, float (&k)[C::ND][4],
                                               float (&v)[C::ND][4], int lane) {
  using namespace trc;
  token_product2<C::KD, C::ND, C::LDD>(k, v, x, wk, wv, lane);
  add_bias(k, Wb + C::QKV_B + C::D, C::D, lane);
  add_bias(v, Wb + C::QKV_B + 2 * C::D, C::D, lane);
}

// Adds the tile's share of the next block's attention sums to `mine` (ACC_BLOCK floats, this
// warp's): S[c][j] += sum keep phi(k)_c v_j (c, j of one head), s[c] += sum keep phi(k)_c, with
// k, v = W_k x, W_v x of that block (weights Wn, W_k and W_v staged as wk, wv).
template <class C>
__device__ __forceinline__ void add_kv_tile(float* mine, const float (&x)[C::ND][4], const float* __restrict__ Wn,
                                            trc::SMat wk, trc::SMat wv, const float (&keep)[2], int lane) {
  using namespace trc;
  float pk[C::ND][4], v[C::ND][4];
  key_value_tile<C>(x, Wn, wk, wv, pk, v, lane);
#pragma unroll
  for (int i = 0; i < C::ND; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) pk[i][e] = keep[e >> 1] * elu_plus_one(pk[i][e]);
  // S[c][j] += sum phi(k)_c v_j (c, j of one head) on tensor cores; s[c] += sum phi(k)_c in f32
  add_head_outer(mine, pk, v, lane);
  float ks[C::ND][2];
#pragma unroll
  for (int i = 0; i < C::ND; ++i)
#pragma unroll
    for (int e = 0; e < 2; ++e) ks[i][e] = pk[i][e] + pk[i][e + 2];
  add_channel_sums(mine + C::D * 8, ks, lane);
}

// x_0 = encoder(lp) into slot 0 of xs (slots of D + 1 channels, the last all ones) on tensor
// cores (the hidden units f32, the down projection a tensor-core product), and block 0's sums
// (tr_encode).
template <class C>
__device__ void fwd_encode(const float* __restrict__ z, const float* __restrict__ zstats, const float* __restrict__ W,
                           float* __restrict__ xs, float* __restrict__ acc, int V, int blocks) {
  using namespace trc;
  const auto [hi, lo, sf, scal, priv] = carve<C>(C::E_HALVES, C::E_SMEM, C::E_PRIV);
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = lane & 3;
  const float* W0 = W + C::ENC_SIZE;  // block 0
  tc::stage<2, C::LDE>(hi + C::E_ENC, lo + C::E_ENC, W + C::ENC_DW, C::D, C::FE, C::D, 16 * C::KE);
  tc::stage<2, C::LDD>(hi + C::E_KV, lo + C::E_KV, W0 + C::QKV_W + C::D * C::D, 2 * C::D, C::D, 2 * C::D, C::D);
  __syncthreads();
  const SMat enc{hi + C::E_ENC, lo + C::E_ENC};
  const SMat wk{hi + C::E_KV, lo + C::E_KV}, wv{hi + C::E_KV + C::D * C::LDD, lo + C::E_KV + C::D * C::LDD};
  float* mine = priv + warp * C::E_PRIV;
  const size_t T = (size_t)gridDim.y * V, row0 = (size_t)n * V;
  const float* zrow = z + row0;
  const int tiles = (V + 15) / 16;
  for (int tile = blockIdx.x * BW_WARPS + warp; tile < tiles; tile += gridDim.x * BW_WARPS) {
    const int t0 = 16 * tile;
    float lp[2], keep[2];
    tc::tile_lp(zrow, zstats + STATS * n, V, t0, lane, lp, keep);
    float h[2 * C::KE][4];
#pragma unroll
    for (int i = 0; i < 2 * C::KE; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int f = 8 * i + 2 * t + (e & 1);
        float v = 0.0f;
        if (f < C::FE) {
          const float l = lp[e >> 1];
          const float gt = fmaf(__ldg(W + C::ENC_GW + f), l, __ldg(W + C::ENC_GB + f));
          const float u = fmaf(__ldg(W + C::ENC_UW + f), l, __ldg(W + C::ENC_UB + f));
          v = silu(gt) * u;
        }
        h[i][e] = v;
      }
    float x[C::ND][4];
    token_product<C::KE, C::ND, C::LDE, false>(x, h, enc, lane);
    add_bias(x, W + C::ENC_DB, C::D, lane);
    store_cm(xs, x, T, row0, t0, V, lane);
    add_kv_tile<C>(mine, x, W0, wk, wv, keep, lane);
  }
  flush_warps(priv, C::ACC_BLOCK, C::ACC_BLOCK, acc + (size_t)n * C::acc_row(blocks), nullptr);
}

// A block's staged matrices (stage_block's shared-memory plan F_*): W_q, W_out, the attention
// operand, W_gate, W_up, W_down.
struct BlockMats { trc::SMat q, out, att, gate, up, down; };

// Block b on the tile x (tensor cores): xh1, r1 = LN1's normalized input and 1 / sigma, y1 its
// output; hg, hu the FFN's gate and up pre-activations, hf = silu(hg) hu; xh2, r2 = LN2's
// normalized input and 1 / sigma (the block output is xh2 w + b).
template <class C>
__device__ __forceinline__ void block_tile(const float (&x)[C::ND][4], const float* __restrict__ Wb,
                                           const BlockMats& m, const float (&sc)[C::H], float eps_k,
                                           float (&xh1)[C::ND][4], float (&r1)[2], float (&y1)[C::ND][4],
                                           float (&hg)[C::NF][4], float (&hu)[C::NF][4], float (&hf)[C::NF][4],
                                           float (&xh2)[C::ND][4], float (&r2)[2], int lane) {
  using namespace trc;
  {
    float phiq[C::ND][4], a[C::ND][4], inv[C::H][2];
    attention_fwd<C>(x, Wb, m.q, m.att, sc, eps_k, phiq, a, inv, lane);
    token_product<C::KD, C::ND, C::LDD, false>(xh1, a, m.out, lane);
  }
  add_bias(xh1, Wb + C::OUT_B, C::D, lane);
#pragma unroll
  for (int i = 0; i < C::ND; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) xh1[i][e] += x[i][e];
  normalize_tile(xh1, r1);
  affine(y1, xh1, Wb + C::LN1_W, Wb + C::LN1_B, lane);
  token_product2<C::KD, C::NF, C::LDD>(hg, hu, y1, m.gate, m.up, lane);
  add_bias(hg, Wb + C::FG_B, C::FF, lane);
  add_bias(hu, Wb + C::FU_B, C::FF, lane);
#pragma unroll
  for (int i = 0; i < C::NF; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) hf[i][e] = silu(hg[i][e]) * hu[i][e];
  token_product<C::KF, C::ND, C::LDF, false>(xh2, hf, m.down, lane);
  add_bias(xh2, Wb + C::FD_B, C::D, lane);
#pragma unroll
  for (int i = 0; i < C::ND; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) xh2[i][e] += y1[i][e];
  normalize_tile(xh2, r2);
}

// Stages block b's matrices for block_tile (the shared-memory plan F_*) and its attention
// operand from the row's sums; the thread block calls this together (and synchronises before
// reading the returned matrices).
template <class C>
__device__ __forceinline__ BlockMats stage_block(__half* hi, __half* lo, const float* __restrict__ Wb,
                                            const float* __restrict__ sums, float kept, float* sf, float* scal,
                                            float (&sc)[C::H]) {
  tc::stage<2, C::LDD>(hi + C::F_Q, lo + C::F_Q, Wb + C::QKV_W, C::D, C::D, C::D, C::D);
  tc::stage<2, C::LDD>(hi + C::F_OUT, lo + C::F_OUT, Wb + C::OUT_W, C::D, C::D, C::D, C::D);
  tc::stage<2, C::LDD>(hi + C::F_G, lo + C::F_G, Wb + C::FG_W, C::FF, C::D, 16 * C::KF, C::D);
  tc::stage<2, C::LDD>(hi + C::F_U, lo + C::F_U, Wb + C::FU_W, C::FF, C::D, 16 * C::KF, C::D);
  tc::stage<2, C::LDF>(hi + C::F_DN, lo + C::F_DN, Wb + C::FD_W, C::D, C::FF, C::D, 16 * C::KF);
  trc::stage_attention<C>(hi, lo, C::F_ATT, -1, sums, kept, sf, scal, sc);
  return BlockMats{{hi + C::F_Q, lo + C::F_Q}, {hi + C::F_OUT, lo + C::F_OUT}, {hi + C::F_ATT, lo + C::F_ATT},
                   {hi + C::F_G, lo + C::F_G}, {hi + C::F_U, lo + C::F_U},   {hi + C::F_DN, lo + C::F_DN}};
}

// Block b's forward on tensor cores (tr_block): x_b (slot b) -> x_{b+1} (slot b + 1), then
// block b+1's attention sums S = sum phi(k) v^T, s = sum phi(k) over the kept tokens, or (last
// block) the pool sum, added to the row's acc.
template <class C>
__device__ void fwd_block(const float* __restrict__ z, const float* __restrict__ zstats, const float* __restrict__ W,
                          float* __restrict__ xs, float* __restrict__ acc, int V, int blocks, int b) {
  using namespace trc;
  const auto [hi, lo, sf, scal, priv] = carve<C>(C::P_HALVES, C::P_SMEM, C::P_PRIV);
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const bool has_next = b + 1 < blocks;
  const float* Wb = W + C::ENC_SIZE + b * C::BLOCK_SIZE;
  const float* Wn = Wb + C::BLOCK_SIZE;  // block b + 1 (if any)
  const float kept = zstats[STATS * n + 3];
  float* row_acc = acc + (size_t)n * C::acc_row(blocks);
  float sc[C::H];
  const BlockMats mats = stage_block<C>(hi, lo, Wb, row_acc + b * C::ACC_BLOCK, kept, sf, scal, sc);
  if (has_next)
    tc::stage<2, C::LDD>(hi + C::P_KV, lo + C::P_KV, Wn + C::QKV_W + C::D * C::D, 2 * C::D, C::D, 2 * C::D, C::D);
  __syncthreads();
  const SMat wk{hi + C::P_KV, lo + C::P_KV}, wv{hi + C::P_KV + C::D * C::LDD, lo + C::P_KV + C::D * C::LDD};
  const float eps_k = ATTENTION_EPS / kept;
  // This warp's sums: block b+1's S, s (ACC_BLOCK floats) or the pool (D floats), the warps'
  // copies at the stride flush_warps reads them with (its count).
  const int priv_count = has_next ? C::ACC_BLOCK : C::D;
  float* mine = priv + warp * priv_count;
  const size_t T = (size_t)gridDim.y * V, row0 = (size_t)n * V;
  const float* xb = xs + (size_t)b * (C::D + 1) * T;
  float* xo = xs + (size_t)(b + 1) * (C::D + 1) * T;
  const float* zrow = z + row0;
  const int tiles = (V + 15) / 16;
  for (int tile = blockIdx.x * BW_WARPS + warp; tile < tiles; tile += gridDim.x * BW_WARPS) {
    const int t0 = 16 * tile;
    float lp[2], keep[2];
    tc::tile_lp(zrow, zstats + STATS * n, V, t0, lane, lp, keep);
    float x[C::ND][4], xh1[C::ND][4], r1[2], y1[C::ND][4], hg[C::NF][4], hu[C::NF][4], hf[C::NF][4];
    float xh2[C::ND][4], r2[2];
    load_cm(x, xb, T, row0, t0, V, lane);
    block_tile<C>(x, Wb, mats, sc, eps_k, xh1, r1, y1, hg, hu, hf, xh2, r2, lane);
    affine(x, xh2, Wb + C::LN2_W, Wb + C::LN2_B, lane);
    store_cm(xo, x, T, row0, t0, V, lane);
    if (has_next) {
      add_kv_tile<C>(mine, x, Wn, wk, wv, keep, lane);
    } else {
      float ps[C::ND][2];
#pragma unroll
      for (int i = 0; i < C::ND; ++i)
#pragma unroll
        for (int e = 0; e < 2; ++e) ps[i][e] = fmaf(keep[0], x[i][e], keep[1] * x[i][e + 2]);
      add_channel_sums(mine, ps, lane);
    }
  }
  if (has_next) flush_warps(priv, priv_count, priv_count, row_acc + (b + 1) * C::ACC_BLOCK, nullptr);
  else flush_warps(priv, priv_count, priv_count, row_acc + blocks * C::ACC_BLOCK, nullptr);
}

// Block b's backward, FFN part (tr_bwd_ffn, see above): dx = dL/dx_{b+1}; writes dy1.
template <class C>
__device__ void bwd_ffn(const float* __restrict__ z, const float* __restrict__ zstats, const float* __restrict__ W,
                        const float* __restrict__ xs, const float* __restrict__ acc, const float* __restrict__ dcu,
                        const float* __restrict__ dx, float* __restrict__ dy1_buf, float* __restrict__ wgrad,
                        float* __restrict__ pgrad, int V, int blocks, int b, int pool) {
  using namespace trc;
  const auto [hi, lo, sf, scal, priv] = carve<C>(C::F_HALVES, C::F_SMEM, C::F_PRIV);
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = lane & 3;
  const float* Wb = W + C::ENC_SIZE + b * C::BLOCK_SIZE;
  const float kept = zstats[STATS * n + 3];
  float sc[C::H];
  const BlockMats mats =
      stage_block<C>(hi, lo, Wb, acc + (size_t)n * C::acc_row(blocks) + b * C::ACC_BLOCK, kept, sf, scal, sc);
  __syncthreads();
  const float eps_k = ATTENTION_EPS / kept;
  float* mine = priv + warp * C::F_PRIV;
  const size_t T = (size_t)gridDim.y * V, row0 = (size_t)n * V;
  const float* xb = xs + (size_t)b * (C::D + 1) * T;
  const float* zrow = z + row0;
  const int tiles = (V + 15) / 16;
  for (int tile = blockIdx.x * BW_WARPS + warp; tile < tiles; tile += gridDim.x * BW_WARPS) {
    const int t0 = 16 * tile;
    float lp[2], keep[2];
    tc::tile_lp(zrow, zstats + STATS * n, V, t0, lane, lp, keep);
    float x[C::ND][4], xh1[C::ND][4], r1[2], y1[C::ND][4], hg[C::NF][4], hu[C::NF][4], hf[C::NF][4];
    float xh2[C::ND][4], r2[2];
    load_cm(x, xb, T, row0, t0, V, lane);
    block_tile<C>(x, Wb, mats, sc, eps_k, xh1, r1, y1, hg, hu, hf, xh2, r2, lane);
    // dL/dx_{b+1} (+ the pool's share) -> dy2 through LN2
    float gr[C::ND][4];
    load_cm(gr, dx, T, row0, t0, V, lane);
    if (pool) {
#pragma unroll
      for (int i = 0; i < C::ND; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          gr[i][e] = fmaf(keep[e >> 1], __ldg(dcu + (size_t)n * C::D + 8 * i + 2 * t + (e & 1)), gr[i][e]);
    }
    ln_backward(gr, xh2, r2, Wb + C::LN2_W, mine + C::F_LN + 2 * C::D, mine + C::F_LN + 3 * C::D, lane);
    // down: dW += dy2^T [hf | 1] (the ones in hf's first padding channel), dh = dy2 W_down
    {
      if (t == (C::FF % 8) / 2) {
        hf[C::FF / 8][C::FF % 2] = 1.0f;
        hf[C::FF / 8][2 + C::FF % 2] = 1.0f;
      }
      float sa[C::ND][2], sb[C::NF][2];
      channel_scales(gr, sa);
      channel_scales(hf, sb);
      TFrag ta[C::ND], tb[C::NF];
      to_tfrags(ta, gr, sa);
      to_tfrags(tb, hf, sb);
      add_wgrad<C::KD, C::NF, false>(mine + C::F_DOWN, C::FF + 1, C::D, C::FF + 1, ta, sa, tb, sb, lane);
    }
    float dh[C::NF][4];
    token_product<C::KD, C::NF, C::LDF, true>(dh, gr, mats.down, lane);
    // SwiGLU backward: hg <- dg, hu <- du
#pragma unroll
    for (int i = 0; i < C::NF; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float g = hg[i][e], u = hu[i][e];
        const float sg = sigmoidf_(g);
        hg[i][e] = dh[i][e] * u * sg * fmaf(g, 1.0f - sg, 1.0f);
        hu[i][e] = dh[i][e] * g * sg;
      }
    // gate, up: dW += d^T [y1 | 1]; dy1 = dy2 + dg W_gate + du W_up
    {
      float sy[C::ND][2], sg[C::NF][2];
      TFrag ty[C::ND], tg[C::NF];
      channel_scales(y1, sy);
      to_tfrags(ty, y1, sy);
      channel_scales(hg, sg);
      to_tfrags(tg, hg, sg);
      add_wgrad<C::KF, C::ND, true>(mine + C::F_GATE, C::D + 1, C::FF, C::D, tg, sg, ty, sy, lane);
      channel_scales(hu, sg);
      to_tfrags(tg, hu, sg);
      add_wgrad<C::KF, C::ND, true>(mine + C::F_UP, C::D + 1, C::FF, C::D, tg, sg, ty, sy, lane);
    }
    {
      float s[2], m[2];
      token_scales(hg, s);
      token_scales(hu, m);
      s[0] = fminf(s[0], m[0]);  // the smaller factor fits both
      s[1] = fminf(s[1], m[1]);
      AFrag ag[C::KF], au[C::KF];
      tc::to_frags<C::KF, 2>(ag, hg, s);
      tc::to_frags<C::KF, 2>(au, hu, s);
      float d1[C::ND][4];
      tc::zero(d1);
      linear_t<C::KF, C::ND, C::LDD>(d1, ag, mats.gate, lane);
      linear_t<C::KF, C::ND, C::LDD>(d1, au, mats.up, lane);
      const float inv[2] = {inv_pow2(s[0]), inv_pow2(s[1])};
#pragma unroll
      for (int i = 0; i < C::ND; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) gr[i][e] = fmaf(d1[i][e], inv[e >> 1], gr[i][e]);
    }
    ln_backward(gr, xh1, r1, Wb + C::LN1_W, mine + C::F_LN, mine + C::F_LN + C::D, lane);
    store_cm(dy1_buf, gr, T, row0, t0, V, lane);
  }
  flush_warps(priv, C::F_PRIV, C::F_LN, wgrad + (size_t)b * C::WG_BLOCK + C::WG_GATE, pgrad + C::pg_block(b));
}

// Block b's backward, attention part (tr_bwd_attn): from dy1, writes dq and adds the row's
// dS' = sum phi(q) dnum'^T, ds' = sum dden' phi(q) (dnum', dden' of the sums / kept: dS = dS' /
// kept) to dacc.
template <class C>
__device__ void bwd_attn(const float* __restrict__ z, const float* __restrict__ zstats, const float* __restrict__ W,
                         const float* __restrict__ xs, const float* __restrict__ acc,
                         const float* __restrict__ dy1_buf, float* __restrict__ dq_buf, float* __restrict__ dacc,
                         float* __restrict__ wgrad, int V, int blocks, int b) {
  using namespace trc;
  const auto [hi, lo, sf, scal, priv] = carve<C>(C::A_HALVES, C::A_SMEM, C::A_PRIV);
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = lane & 3;
  const float* Wb = W + C::ENC_SIZE + b * C::BLOCK_SIZE;
  const float kept = zstats[STATS * n + 3];
  tc::stage<2, C::LDD>(hi + C::A_Q, lo + C::A_Q, Wb + C::QKV_W, C::D, C::D, C::D, C::D);
  tc::stage<2, C::LDD>(hi + C::A_OUT, lo + C::A_OUT, Wb + C::OUT_W, C::D, C::D, C::D, C::D);
  float sc[C::H];
  stage_attention<C>(hi, lo, C::A_ATT, C::A_ATTT, acc + (size_t)n * C::acc_row(blocks) + b * C::ACC_BLOCK, kept, sf,
                     scal, sc);
  __syncthreads();
  const SMat q{hi + C::A_Q, lo + C::A_Q}, out{hi + C::A_OUT, lo + C::A_OUT};
  const SMat att{hi + C::A_ATT, lo + C::A_ATT}, attt{hi + C::A_ATTT, lo + C::A_ATTT};
  const float eps_k = ATTENTION_EPS / kept;
  float* mine = priv + warp * C::A_PRIV;
  const size_t T = (size_t)gridDim.y * V, row0 = (size_t)n * V;
  const float* xb = xs + (size_t)b * (C::D + 1) * T;
  const int tiles = (V + 15) / 16;
  for (int tile = blockIdx.x * BW_WARPS + warp; tile < tiles; tile += gridDim.x * BW_WARPS) {
    const int t0 = 16 * tile;
    float phiq[C::ND][4], a[C::ND][4], inv[C::H][2];
    {
      float x[C::ND][4];
      load_cm(x, xb, T, row0, t0, V, lane);
      attention_fwd<C>(x, Wb, q, att, sc, eps_k, phiq, a, inv, lane);
    }
    float g1[C::ND][4];
    load_cm(g1, dy1_buf, T, row0, t0, V, lane);
    // out: dW += dy1^T [a | 1]
    {
      float sa[C::ND][2], sb[C::ND][2];
      TFrag ta[C::ND], tb[C::ND];
      channel_scales(g1, sa);
      to_tfrags(ta, g1, sa);
      channel_scales(a, sb);
      to_tfrags(tb, a, sb);
      add_wgrad<C::KD, C::ND, true>(mine, C::D + 1, C::D, C::D, ta, sa, tb, sb, lane);
    }
    // da = dy1 W_out -> dnum' = da inv, dden' = -(da . a) inv per head
    float dn[C::ND][4], dden[C::H][2];
    token_product<C::KD, C::ND, C::LDD, true>(dn, g1, out, lane);
#pragma unroll
    for (int h = 0; h < C::H; ++h)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float dot = fmaf(dn[h][2 * r], a[h][2 * r], dn[h][2 * r + 1] * a[h][2 * r + 1]);
        dot += __shfl_xor_sync(0xffffffffu, dot, 1);
        dot += __shfl_xor_sync(0xffffffffu, dot, 2);
        dden[h][r] = -dot * inv[h][r];
        dn[h][2 * r] *= inv[h][r];
        dn[h][2 * r + 1] *= inv[h][r];
      }
    // dphi(q) = dnum' S'^T + dden' s'; dq = dphi(q) phi'(q) (phi' = min(phi, 1))
    {
      float dp[C::ND][4];
      token_product<C::KD, C::ND, C::LDD, false>(dp, dn, attt, lane);
#pragma unroll
      for (int h = 0; h < C::H; ++h) {
        const float is = inv_pow2(sc[h]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float s = sf[C::D * 8 + 8 * h + 2 * t + (e & 1)];
          dp[h][e] = fmaf(dp[h][e], is, dden[h][e >> 1] * s) * fminf(phiq[h][e], 1.0f);
        }
      }
      store_cm(dq_buf, dp, T, row0, t0, V, lane);
    }
    // dS'[c][j] += sum phi(q)_c dnum'_j (c, j of one head), ds'[c] += sum dden'_h phi(q)_c
    {
      add_head_outer(mine + C::D * (C::D + 1), phiq, dn, lane);
      float ds[C::ND][2];
#pragma unroll
      for (int h = 0; h < C::ND; ++h)
#pragma unroll
        for (int e = 0; e < 2; ++e) ds[h][e] = fmaf(dden[h][0], phiq[h][e], dden[h][1] * phiq[h][e + 2]);
      add_channel_sums(mine + C::D * (C::D + 1) + C::D * 8, ds, lane);
    }
  }
  flush_warps(priv, C::A_PRIV, C::D * (C::D + 1), wgrad + (size_t)b * C::WG_BLOCK + C::WG_OUT,
              dacc + (size_t)n * C::ACC_BLOCK);
}

// Block b's backward, qkv part (tr_bwd_qkv): dk = keep dphi(k) phi'(k) with dphi(k) = dS_h v +
// ds_h, dv = keep dS_h^T phi(k); the qkv weight gradient; dx = dL/dx_b = dy1 + W_qkv^T dqkv.
template <class C>
__device__ void bwd_qkv(const float* __restrict__ z, const float* __restrict__ zstats, const float* __restrict__ W,
                        const float* __restrict__ xs, const float* __restrict__ dacc,
                        const float* __restrict__ dy1_buf, const float* __restrict__ dq_buf, float* __restrict__ dx,
                        float* __restrict__ wgrad, int V, int blocks, int b) {
  using namespace trc;
  const auto [hi, lo, sf, scal, priv] = carve<C>(C::B_HALVES, C::B_SMEM, C::B_PRIV);
  const int n = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = lane & 3;
  const float* Wb = W + C::ENC_SIZE + b * C::BLOCK_SIZE;
  const float kept = zstats[STATS * n + 3];
  tc::stage<2, C::LDD>(hi + C::B_QKV, lo + C::B_QKV, Wb + C::QKV_W, 3 * C::D, C::D, 3 * C::D, C::D);
  // dS, ds = dS', ds' / kept; per-head scales of dS
  const float* dsum = dacc + (size_t)n * C::ACC_BLOCK;
  for (int i = threadIdx.x; i < C::ACC_BLOCK; i += blockDim.x) {
    const float v = dsum[i] / kept;
    sf[i] = v;
    if (i < C::D * 8) atomicMax(reinterpret_cast<int*>(scal + i / 64), __float_as_int(fabsf(v)));
  }
  __syncthreads();
  float sc[C::H];
#pragma unroll
  for (int h = 0; h < C::H; ++h) sc[h] = norm_scale(scal[h]);
  // M1 (c, r) = dS[c][r % 8] (dphi(k) = v M1^T), M2 (o, i) = dS[i][o % 8] (dv = phi(k) M2^T), same head
  for (int i = threadIdx.x; i < C::D * C::D; i += blockDim.x) {
    const int r = i / C::D, c = i % C::D, head = r / 8;
    const bool same = c / 8 == head;
    const float v1 = same ? sf[r * 8 + (c % 8)] * sc[head] : 0.0f;
    const float v2 = same ? sf[c * 8 + (r % 8)] * sc[head] : 0.0f;
    __half h = __float2half_rn(v1);
    hi[C::B_M1 + r * C::LDD + c] = h;
    lo[C::B_M1 + r * C::LDD + c] = __float2half_rn(v1 - __half2float(h));
    h = __float2half_rn(v2);
    hi[C::B_M2 + r * C::LDD + c] = h;
    lo[C::B_M2 + r * C::LDD + c] = __float2half_rn(v2 - __half2float(h));
  }
  __syncthreads();
  const SMat qkv{hi + C::B_QKV, lo + C::B_QKV};
  const SMat wk{hi + C::B_QKV + C::D * C::LDD, lo + C::B_QKV + C::D * C::LDD};
  const SMat wv{hi + C::B_QKV + 2 * C::D * C::LDD, lo + C::B_QKV + 2 * C::D * C::LDD};
  const SMat m1{hi + C::B_M1, lo + C::B_M1}, m2{hi + C::B_M2, lo + C::B_M2};
  float* mine = priv + warp * C::B_PRIV;
  const size_t T = (size_t)gridDim.y * V, row0 = (size_t)n * V;
  const float* xb = xs + (size_t)b * (C::D + 1) * T;
  const float* zrow = z + row0;
  const int tiles = (V + 15) / 16;
  for (int tile = blockIdx.x * BW_WARPS + warp; tile < tiles; tile += gridDim.x * BW_WARPS) {
    const int t0 = 16 * tile;
    float lp[2], keep[2];
    tc::tile_lp(zrow, zstats + STATS * n, V, t0, lane, lp, keep);
    float x[C::ND][4];
    load_cm(x, xb, T, row0, t0, V, lane);
    // dqkv = [dq, dk, dv]
    float d[3 * C::ND][4];
    {
      float pk[C::ND][4], v[C::ND][4];
      key_value_tile<C>(x, Wb, wk, wv, pk, v, lane);
#pragma unroll
      for (int i = 0; i < C::ND; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) pk[i][e] = elu_plus_one(pk[i][e]);
      float dk[C::ND][4], dv[C::ND][4];
      token_product<C::KD, C::ND, C::LDD, false>(dk, v, m1, lane);
      token_product<C::KD, C::ND, C::LDD, false>(dv, pk, m2, lane);
#pragma unroll
      for (int h = 0; h < C::ND; ++h) {
        const float is = inv_pow2(sc[h]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float kp = keep[e >> 1];
          const float s = sf[C::D * 8 + 8 * h + 2 * t + (e & 1)];
          d[C::ND + h][e] = kp * fmaf(dk[h][e], is, s) * fminf(pk[h][e], 1.0f);
          d[2 * C::ND + h][e] = kp * dv[h][e] * is;
        }
      }
    }
    {
      float dq[C::ND][4];
      load_cm(dq, dq_buf, T, row0, t0, V, lane);
#pragma unroll
      for (int i = 0; i < C::ND; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) d[i][e] = dq[i][e];
    }
    // qkv: dW += dqkv^T [x | 1]
    {
      float sa[3 * C::ND][2], sb[C::ND][2];
      TFrag ta[3 * C::ND], tb[C::ND];
      channel_scales(d, sa);
      to_tfrags(ta, d, sa);
      channel_scales(x, sb);
      to_tfrags(tb, x, sb);
      add_wgrad<3 * C::KD, C::ND, true>(mine, C::D + 1, 3 * C::D, C::D, ta, sa, tb, sb, lane);
    }
    // dx = dy1 + dqkv W_qkv
    float o[C::ND][4];
    token_product<3 * C::KD, C::ND, C::LDD, true>(o, d, qkv, lane);
    float y[C::ND][4];
    load_cm(y, dy1_buf, T, row0, t0, V, lane);
#pragma unroll
    for (int i = 0; i < C::ND; ++i)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[i][e] += y[i][e];
    store_cm(dx, o, T, row0, t0, V, lane);
  }
  flush_warps(priv, C::B_PRIV, C::B_PRIV, wgrad + (size_t)b * C::WG_BLOCK + C::WG_QKV, nullptr);
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
  // The four sums per f (gate weight and bias, up weight and bias), 8 f at a time through
  // warp_sum32: value j of a group is sum j / 8 of f = f0 + j % 8.
#pragma unroll 1
  for (int f0 = 0; f0 < C::FE; f0 += 8) {
    float sums[32];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int f = f0 + j;
      float dg = 0.0f, du = 0.0f;
      if (f < C::FE) {
        const float g = fmaf(__ldg(W + C::ENC_GW + f), lp, __ldg(W + C::ENC_GB + f));
        const float u = fmaf(__ldg(W + C::ENC_UW + f), lp, __ldg(W + C::ENC_UB + f));
        const float sg = sigmoidf_(g);
        const float si = g * sg;
        if (valid) h_buf[at(f, T, tok)] = si * u;
        float dh = 0.0f;
#pragma unroll
        for (int i = 0; i < C::D; ++i) dh = fmaf(__ldg(W + C::ENC_DW + i * C::FE + f), d[i], dh);
        dg = dh * u * sg * fmaf(g, 1.0f - sg, 1.0f);
        du = dh * si;
      }
      sums[j] = dg * lp;
      sums[8 + j] = dg;
      sums[16 + j] = du * lp;
      sums[24 + j] = du;
    }
    const float total = warp_sum32(sums);
    const int lane = threadIdx.x & 31, f = f0 + (lane & 7);
    if (f < C::FE) atomicAdd(esum + (lane >> 3) * C::FE + f, total);
  }
  __syncthreads();
  flush_sums(esum, pgrad + C::PG_ENC, 4 * C::FE);
}

// One set of entry points per compiled configuration: name suffix d{D}_h{H}_e{EH}_f{DFF}_s{0|1}.
#define TR_CONFIG(NAME, D, H, EH, DFF, SC)                                                               \
  typedef Net<D, H, EH, DFF, SC> Net_##NAME;                                                             \
  extern "C" __global__ void __launch_bounds__(BW_THREADS, 1) tr_encode_##NAME(                        \
      const float* z, const float* zs, const float* W, float* xs, float* acc, int V, int blocks) {         \
    fwd_encode<Net_##NAME>(z, zs, W, xs, acc, V, blocks);                                                \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(BW_THREADS, 2) tr_block_##NAME(                         \
      const float* z, const float* zs, const float* W, float* xs, float* acc, int V, int blocks, int b) {  \
    fwd_block<Net_##NAME>(z, zs, W, xs, acc, V, blocks, b);                                              \
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
  extern "C" __global__ void __launch_bounds__(THREADS, 4) tr_head_bwd_##NAME(                             \
      const float* z, const float* zs, const float* loss, const float* W, const float* xs,                 \
      const float* rows, float* dx, float* dgu, float* rowgrad, float* pgrad, int V, int blocks,          \
      float gamma, float scale) {                                                                        \
    head_backward<Net_##NAME>(z, zs, loss, W, xs, rows, dx, dgu, rowgrad, pgrad, V, blocks, gamma, scale); \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(BW_THREADS, 1) tr_bwd_ffn_##NAME(                       \
      const float* z, const float* zs, const float* W, const float* xs, const float* acc,                 \
      const float* dcu, const float* dx, float* dy1, float* wgrad, float* pgrad, int V, int blocks,       \
      int b, int pool) {                                                                                 \
    bwd_ffn<Net_##NAME>(z, zs, W, xs, acc, dcu, dx, dy1, wgrad, pgrad, V, blocks, b, pool);              \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(BW_THREADS, 2) tr_bwd_attn_##NAME(                      \
      const float* z, const float* zs, const float* W, const float* xs, const float* acc,                 \
      const float* dy1, float* dq, float* dacc, float* wgrad, int V, int blocks, int b) {                \
    bwd_attn<Net_##NAME>(z, zs, W, xs, acc, dy1, dq, dacc, wgrad, V, blocks, b);                         \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(BW_THREADS, 1) tr_bwd_qkv_##NAME(                       \
      const float* z, const float* zs, const float* W, const float* xs, const float* dacc,                \
      const float* dy1, const float* dq, float* dx, float* wgrad, int V, int blocks, int b) {            \
    bwd_qkv<Net_##NAME>(z, zs, W, xs, dacc, dy1, dq, dx, wgrad, V, blocks, b);                           \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(THREADS) tr_encode_bwd_##NAME(                           \
      const float* z, const float* zs, const float* W, const float* dx, float* h_buf, float* pgrad,       \
      int V) {                                                                                           \
    encode_backward<Net_##NAME>(z, zs, W, dx, h_buf, pgrad, V);                                          \
  }

// The compiled shapes (common.cuh, gpu::fused::COMPILED_CONFIGS).
SN_COMPILED_SHAPES(TR_CONFIG)
