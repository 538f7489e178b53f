//! Q4_1 matrix × f32 activations, computed the way llama.cpp does it (candle 0.11 has only a
//! scalar Q4_1 dot product, 75 % of a decode step on the default model).
//!
//! Activations are quantized per 32-value block to Q8_1 (`d = max|x| / 127`,
//! `q = round_half_even(x · 127 / max|x|)`, `s = d · Σq`, `d` and `s` rounded to f16 as ggml stores
//! them); a weight block holds `w = d_w · q4 + m_w` (4-bit `q4`), so a block's dot product is
//! `d_w · d_x · Σ q4·q8 + m_w · s_x` — ggml's `ggml_vec_dot_q4_1_q8_1`. The integer sums run on
//! AVX2 (`maddubs`/`madd`) when compiled with it, with a scalar fallback. Each weight block is
//! read once per call for all activation rows, so batched decoding shares weight reads.

use candle_core::quantized::{GgmlDType, QTensor};
use half::f16;
use rayon::prelude::*;

use crate::error::{EngineError, Result};

/// Values per block.
const QK: usize = 32;

/// One Q4_1 weight block with its scales widened to f32 (exactly the f16 values).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct WeightBlock {
    d: f32,
    m: f32,
    qs: [u8; QK / 2],
}

/// One Q8_1 activation block.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct ActBlock {
    d: f32,
    s: f32,
    qs: [i8; QK],
}

/// A Q4_1 weight matrix `[rows, cols]` ready for [`Q41Matrix::matmul`].
#[derive(Debug)]
pub struct Q41Matrix {
    rows: usize,
    cols: usize,
    blocks: Vec<WeightBlock>,
}

impl Q41Matrix {
    /// Takes the raw blocks of a Q4_1 tensor `[rows, cols]`; `None` for other types.
    pub fn from_qtensor(t: &QTensor) -> Result<Option<Self>> {
        if t.dtype() != GgmlDType::Q4_1 {
            return Ok(None);
        }
        let dims = t.shape().dims();
        let (rows, cols) = match dims {
            [r, c] => (*r, *c),
            _ => return Ok(None),
        };
        if cols % QK != 0 {
            return Ok(None);
        }
        let raw = t.data()?;
        let nb = rows * cols / QK;
        if raw.len() != nb * 20 {
            return Err(EngineError::Metadata {
                key: "tensor shape".into(),
                reason: format!(
                    "Q4_1 tensor of shape {dims:?} holds {} bytes, expected {}",
                    raw.len(),
                    nb * 20
                ),
            });
        }
        let blocks = raw
            .chunks_exact(20)
            .map(|b| {
                let mut qs = [0u8; QK / 2];
                qs.copy_from_slice(&b[4..20]);
                WeightBlock {
                    d: f16::from_le_bytes([b[0], b[1]]).to_f32(),
                    m: f16::from_le_bytes([b[2], b[3]]).to_f32(),
                    qs,
                }
            })
            .collect();
        Ok(Some(Self { rows, cols, blocks }))
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `y = x · Wᵀ` for `x` of `n` rows × `cols` (row-major); returns `n × rows`.
    pub fn matmul(&self, x: &[f32], n: usize) -> Vec<f32> {
        let nb = self.cols / QK;
        let acts: Vec<ActBlock> = x.chunks_exact(QK).map(quantize_q8_1).collect();
        debug_assert_eq!(acts.len(), n * nb);
        // Output rows in chunks across threads; each weight row is dotted with all `n` inputs.
        const CHUNK: usize = 32;
        let mut out_t = vec![0f32; self.rows * n];
        out_t
            .par_chunks_mut(CHUNK * n)
            .enumerate()
            .for_each(|(c, dst)| {
                for (k, dst_row) in dst.chunks_exact_mut(n).enumerate() {
                    let r = c * CHUNK + k;
                    let w = &self.blocks[r * nb..(r + 1) * nb];
                    for (i, o) in dst_row.iter_mut().enumerate() {
                        *o = dot(w, &acts[i * nb..(i + 1) * nb]);
                    }
                }
            });
        if n == 1 {
            return out_t;
        }
        let mut out = vec![0f32; n * self.rows];
        for r in 0..self.rows {
            for i in 0..n {
                out[i * self.rows + r] = out_t[r * n + i];
            }
        }
        out
    }
}

/// ggml's `quantize_row_q8_1` for one block.
fn quantize_q8_1(x: &[f32]) -> ActBlock {
    let amax = x.iter().fold(0f32, |m, &v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let r = (v * id).round_ties_even() as i32;
        *q = r as i8;
        sum += r;
    }
    ActBlock {
        d: f16::from_f32(d).to_f32(),
        s: f16::from_f32(d * sum as f32).to_f32(),
        qs,
    }
}

/// `Σ_blocks d_w·d_x·Σ q4·q8 + m_w·s_x` over one weight row and one activation row.
#[inline]
fn dot(w: &[WeightBlock], a: &[ActBlock]) -> f32 {
    #[cfg(target_feature = "avx2")]
    {
        // SAFETY: compiled only when AVX2 (and FMA, part of the same x86-64-v3 baseline) is on.
        unsafe { dot_avx2(w, a) }
    }
    #[cfg(not(target_feature = "avx2"))]
    {
        dot_scalar(w, a)
    }
}

/// Portable reference of [`dot`].
#[cfg_attr(target_feature = "avx2", allow(dead_code))]
fn dot_scalar(w: &[WeightBlock], a: &[ActBlock]) -> f32 {
    let mut acc = 0f32;
    let mut summs = 0f32;
    for (wb, ab) in w.iter().zip(a) {
        let mut isum = 0i32;
        for j in 0..QK / 2 {
            let lo = (wb.qs[j] & 0x0f) as i32;
            let hi = (wb.qs[j] >> 4) as i32;
            isum += lo * ab.qs[j] as i32 + hi * ab.qs[j + QK / 2] as i32;
        }
        acc += wb.d * ab.d * isum as f32;
        summs += wb.m * ab.s;
    }
    acc + summs
}

#[cfg(target_feature = "avx2")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(w: &[WeightBlock], a: &[ActBlock]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    let low = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    for (wb, ab) in w.iter().zip(a) {
        summs += wb.m * ab.s;
        // 16 bytes of nibbles → 32 values: low nibbles first (values 0..16), high after (16..32).
        let q128 = _mm_loadu_si128(wb.qs.as_ptr() as *const __m128i);
        let q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q128, 4), q128), low);
        let y = _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i);
        // u8 × i8 pairs → i16 (no saturation: |q4·q8| ≤ 15·127·2), then pairs → i32.
        let p16 = _mm256_maddubs_epi16(q, y);
        let p32 = _mm256_madd_epi16(p16, ones);
        let xy = _mm256_cvtepi32_ps(p32);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(wb.d * ab.d), xy, acc);
    }
    // Horizontal sum.
    let h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    let h = _mm_add_ss(h, _mm_movehdup_ps(h));
    _mm_cvtss_f32(h) + summs
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn matches_dequantized_matmul_and_the_scalar_path() {
        let (rows, cols, n) = (70, 128, 3);
        let mut s = 7u64;
        let w: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut s)).collect();
        let x: Vec<f32> = (0..n * cols).map(|_| lcg(&mut s)).collect();
        let wt = Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&wt, GgmlDType::Q4_1).unwrap();
        let m = Q41Matrix::from_qtensor(&q).unwrap().unwrap();
        let y = m.matmul(&x, n);
        // Reference: dequantized weights × exact activations (differs only by the Q8_1 rounding).
        let wd = q.dequantize(&Device::Cpu).unwrap();
        let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu).unwrap();
        let r: Vec<f32> = xt
            .matmul(&wd.t().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in y.iter().zip(&r) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
        // The SIMD and scalar dot products agree to float rounding.
        let nb = cols / QK;
        let acts: Vec<ActBlock> = x.chunks_exact(QK).map(quantize_q8_1).collect();
        for i in 0..n {
            for r in 0..rows {
                let a = dot(&m.blocks[r * nb..(r + 1) * nb], &acts[i * nb..(i + 1) * nb]);
                let b = dot_scalar(&m.blocks[r * nb..(r + 1) * nb], &acts[i * nb..(i + 1) * nb]);
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
                assert_eq!(a, y[i * rows + r]);
            }
        }
    }

    #[test]
    fn other_types_are_not_taken() {
        let t = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        let q = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap();
        assert!(Q41Matrix::from_qtensor(&q).unwrap().is_none());
    }
}
