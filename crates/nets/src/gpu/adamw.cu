// AdamW (decoupled weight decay, PyTorch semantics; crate::train::optim) for many f32 tensors in
// one launch, in place. For each parameter theta with gradient g, moments m, v:
//   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
//   theta <- theta (1 - lr wd) - lr (m / bc1) / (sqrt(v / bc2) + eps),  bc_i = 1 - b_i^t,
// every operation rounded as candle's tensor ops round it in the optimizer's candle path (scalar
// factors computed in f64 and rounded to f32 by the host, one f32 rounding per operation, no
// fused multiply-add), so both paths agree to the last bits.
//
// Grid (x: blocks striding over a tensor's elements, y: tensor). `table` holds per tensor 5
// 64-bit entries: device addresses of theta, g (0: no gradient, treated as zero), m, v, then the
// element count.

#define ADAMW_ENTRIES 5

extern "C" __global__ void adamw_step(const unsigned long long* __restrict__ table, float b1, float one_minus_b1,
                                      float b2, float one_minus_b2, float inv_bc1, float inv_bc2, float eps,
                                      float decay, float lr) {
  const unsigned long long* e = table + ADAMW_ENTRIES * blockIdx.y;
  float* theta = reinterpret_cast<float*>(e[0]);
  const float* g = reinterpret_cast<const float*>(e[1]);
  float* m = reinterpret_cast<float*>(e[2]);
  float* v = reinterpret_cast<float*>(e[3]);
  const unsigned long long len = e[4];
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < len;
       i += (unsigned long long)gridDim.x * blockDim.x) {
    const float gi = g ? g[i] : 0.0f;
    const float mi = __fadd_rn(__fmul_rn(m[i], b1), __fmul_rn(gi, one_minus_b1));
    const float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(gi, gi), one_minus_b2));
    const float m_hat = __fmul_rn(mi, inv_bc1);
    const float v_hat = __fmul_rn(vi, inv_bc2);
    const float update = __fdiv_rn(m_hat, __fadd_rn(__fsqrt_rn(v_hat), eps));
    theta[i] = __fsub_rn(__fmul_rn(theta[i], decay), __fmul_rn(update, lr));
    m[i] = mi;
    v[i] = vi;
  }
}
