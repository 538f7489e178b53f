// The mma.sync.m16n8k16 primitives shared by every tensor-core kernel (sampling_network_tc.cu
// directly, fused_training.cu through tensor_core.cuh): f16 hi / lo splitting of f32 pairs, the
// A fragment, the product at precision P (0: one f16 product; 1: + a_lo·b_hi; 2: split f16,
// + a_hi·b_lo, ~22 bits), zeroed C tiles, a token's largest |.| over a C tile row, the launch's
// dynamic shared-memory size.
#pragma once

#include <cuda_fp16.h>
#include <stdint.h>

namespace tc {

__device__ __forceinline__ uint32_t pack(__half2 h) { return *reinterpret_cast<uint32_t*>(&h); }

// f16 hi / lo halves of a pair of floats: hi = f16(a), lo = f16(a - hi).
template <int P>
__device__ __forceinline__ void split2(float a, float b, uint32_t& hi, uint32_t& lo) {
  const __half2 h = __floats2half2_rn(a, b);
  hi = pack(h);
  if (P >= 1) lo = pack(__floats2half2_rn(a - __low2float(h), b - __high2float(h)));
}

// A operand (16 x 16) as hi and lo f16 pairs.
struct AFrag { uint32_t h[4], l[4]; };

__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// c += a.b at precision P; b given as hi (bh0, bh1) and lo (bl0, bl1).
template <int P>
__device__ __forceinline__ void mma_p(float (&c)[4], const AFrag& a, uint32_t bh0, uint32_t bh1, uint32_t bl0,
                                      uint32_t bl1) {
  mma(c, a.h, bh0, bh1);
  if (P >= 1) mma(c, a.l, bh0, bh1);
  if (P >= 2) mma(c, a.h, bl0, bl1);
}

template <int NT>
__device__ __forceinline__ void zero(float (&c)[NT][4]) {
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) c[n][e] = 0.0f;
}

// max |.| over the channels of token g (r = 0) or g + 8 (r = 1) of NT C tiles (a quad holds a
// token's channels), the same in the quad's four lanes.
template <int NT>
__device__ __forceinline__ float token_absmax(const float (&c)[NT][4], int r) {
  float m = 0.0f;
#pragma unroll
  for (int i = 0; i < NT; ++i) m = fmaxf(m, fmaxf(fabsf(c[i][2 * r]), fabsf(c[i][2 * r + 1])));
  m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
  return fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
}

__device__ __forceinline__ uint32_t dynamic_smem_size() {
  uint32_t r;
  asm("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
  return r;
}

}  // namespace tc
