//! The soft-sampling loss with its exact gradient in the LM head: back-propagation through time
//! over the fed mixtures (SPEC 3; the seed's `soft_sampling_forward` under autograd).
//!
//! Position `t + 1` is fed `e_{t+1} = α·W_E[x_{t+1}] + (1−α)·p_tᵀW_E` with
//! `p_t = dist(head·norm(h_t))`, so the loss at later positions depends on the head twice: through
//! its own logits and through every earlier `p_t`, back through the frozen transformer's
//! activations. The engine's forward is not differentiable (its norm, softmax and RoPE kernels
//! have no backward, and it takes inputs as plain floats), so this module runs the same frozen
//! transformer from candle operations that all have a backward, one position at a time with a
//! key/value cache made by concatenation; candle's autograd then gives `∂L/∂head` through every
//! path. Only the head is a variable: the transformer's weights and `W_E` are constants.
//!
//! The soft pipeline's distribution enters with its value unchanged and, as its derivative in
//! the logits `l`, that of a tempered softmax on the tokens it keeps:
//! `∂p/∂l = (1/T)·(diag p − p pᵀ)`, `T` the product of the pipeline's `temperature` stages. That
//! is exact for the stages the seed's `mk_proba_dist` uses (temperature, min-p) and for every
//! truncation stage and additive logit offset (penalties); for stages whose output depends on
//! the logits otherwise (dynamic temperature, mirostat) it is the derivative at fixed truncation
//! and temperature.
//!
//! Memory: the graph holds, per position, the activations of every block and the `[V]`
//! distribution — `O(L·(layers·d + V))` floats for a sequence of `L` tokens (no truncation).

use adasamp_engine::candle_backend::transformer::{Linear, Transformer};
use adasamp_sampling::soft::distribution_weights;
use adasamp_sampling::{Context, Pipeline, PipelineSpec, SequenceSampler};
use candle_core::{DType, Device, Tensor, D};

use super::objective::{FinalNorm, TrainSequence};
use crate::error::{NetsError, Result};

/// The frozen transformer as differentiable candle operations (dense f32 weights).
#[derive(Debug, Clone)]
pub struct FrozenTransformer {
    t: Transformer,
    cos: Tensor,
    sin: Tensor,
}

/// One block's keys and values so far, `[1, kv_heads, positions, head_dim]` each.
type Cache = Vec<Option<(Tensor, Tensor)>>;

fn dense<'a>(l: &'a Linear, what: &str) -> Result<(&'a Tensor, Option<&'a Tensor>)> {
    match l {
        Linear::Dense(w, b) => Ok((w, b.as_ref())),
        _ => Err(NetsError::bad_request(
            "model",
            what,
            "soft-sampling training needs dense f32 weights (load the model as a dense copy)",
        )),
    }
}

/// `x·M` for a constant `M` (`[k, n]`), differentiable in `x` only: `∂/∂x = grad·Mᵀ`. Candle's
/// own matmul also computes the gradient of its other operand, a `[k, n]` product per position
/// that nothing here uses.
struct ConstRight {
    m: Tensor,
}

impl candle_core::CustomOp1 for ConstRight {
    fn name(&self) -> &'static str {
        "const-right-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("const-right-matmul: strided input".into()))?;
        let data = match storage {
            candle_core::CpuStorage::F32(v) => v[start..end].to_vec(),
            _ => {
                return Err(candle_core::Error::Msg(
                    "const-right-matmul: f32 only".into(),
                ))
            }
        };
        let x = Tensor::from_vec(data, layout.shape(), &Device::Cpu)?;
        let y = x.matmul(&self.m)?;
        let shape = y.shape().clone();
        let out = y.flatten_all()?.to_vec1::<f32>()?;
        Ok((candle_core::CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.matmul(&self.m.t()?)?))
    }
}

/// `x·M` (`x` `[n, k]`), differentiable in `x` only.
fn const_matmul(x: &Tensor, m: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(ConstRight { m: m.clone() })?)
}

fn linear(l: &Linear, x: &Tensor) -> Result<Tensor> {
    let (w, b) = dense(l, "a block matrix")?;
    let y = const_matmul(x, &w.t()?)?;
    Ok(match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    })
}

/// `x / sqrt(mean(x²) + eps) · w` over the last axis.
fn rms(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm_slow(x, w, eps)?)
}

impl FrozenTransformer {
    /// Wraps `t` (every matrix dense, f32) with its RoPE tables.
    pub fn new(t: &Transformer) -> Result<Self> {
        for b in &t.w.blocks {
            for l in [&b.wq, &b.wk, &b.wv, &b.wo, &b.gate, &b.up, &b.down] {
                dense(l, "a block matrix")?;
            }
        }
        if t.w.norm.weight.dtype() != DType::F32 || t.w.embed.dtype() != DType::F32 {
            return Err(NetsError::bad_request(
                "model",
                format!("{:?}", t.w.norm.weight.dtype()),
                "soft-sampling training needs an f32 model",
            ));
        }
        let (cos, sin) = t.rope_tables();
        Ok(Self {
            t: t.clone(),
            cos: cos.clone(),
            sin: sin.clone(),
        })
    }

    /// The input embedding matrix `W_E`, `[V, d]`.
    pub fn embeddings(&self) -> &Tensor {
        &self.t.w.embed
    }

    /// Feeds one input `x` (`[1, d]`) at position `pos` after the cached ones; the last block's
    /// output `[1, d]` (before the final norm).
    fn step(&self, x: &Tensor, pos: usize, cache: &mut Cache) -> Result<Tensor> {
        let c = &self.t.cfg;
        if pos >= c.max_seq_len {
            return Err(NetsError::bad_request(
                "position",
                pos,
                format!("the model holds {} positions", c.max_seq_len),
            ));
        }
        let mut x = x.clone();
        let cos = self.cos.narrow(0, pos, 1)?;
        let sin = self.sin.narrow(0, pos, 1)?;
        let rep = c.n_heads / c.n_kv_heads;
        for (li, b) in self.t.w.blocks.iter().enumerate() {
            let h = rms(&x, &b.attn_norm.weight, b.attn_norm.eps)?;
            let split = |t: Tensor, heads: usize| -> Result<Tensor> {
                Ok(t.reshape((1, 1, heads, c.head_dim))?.transpose(1, 2)?)
            };
            let mut q = split(linear(&b.wq, &h)?, c.n_heads)?;
            let mut k = split(linear(&b.wk, &h)?, c.n_kv_heads)?;
            let v = split(linear(&b.wv, &h)?, c.n_kv_heads)?;
            if let Some(n) = &b.q_norm {
                q = rms(&q, &n.weight, n.eps)?;
            }
            if let Some(n) = &b.k_norm {
                k = rms(&k, &n.weight, n.eps)?;
            }
            let (q, k) = if c.rope_interleaved {
                (
                    candle_nn::rotary_emb::rope_i_slow(&q.contiguous()?, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_i_slow(&k.contiguous()?, &cos, &sin)?,
                )
            } else {
                (
                    candle_nn::rotary_emb::rope_slow(&q.contiguous()?, &cos, &sin)?,
                    candle_nn::rotary_emb::rope_slow(&k.contiguous()?, &cos, &sin)?,
                )
            };
            let (k, v) = match cache[li].take() {
                Some((kc, vc)) => (Tensor::cat(&[&kc, &k], 2)?, Tensor::cat(&[&vc, &v], 2)?),
                None => (k, v),
            };
            cache[li] = Some((k.clone(), v.clone()));
            let (k, v) = (repeat_kv(&k, rep)?, repeat_kv(&v, rep)?);
            let att = (q.matmul(&k.t()?.contiguous()?)? / (c.head_dim as f64).sqrt())?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((1, c.n_heads * c.head_dim))?;
            x = (x + linear(&b.wo, &y)?)?;
            let h = rms(&x, &b.ffn_norm.weight, b.ffn_norm.eps)?;
            let act = (linear(&b.gate, &h)?.silu()? * linear(&b.up, &h)?)?;
            x = (&x + linear(&b.down, &act)?)?;
        }
        Ok(x)
    }
}

/// `[1, kv, t, d]` → `[1, kv·rep, t, d]`, head `h` reading kv head `h / rep` (as the engine).
fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    if rep == 1 {
        return Ok(x.contiguous()?);
    }
    let (b, kv, t, d) = x.dims4()?;
    Ok(Tensor::cat(&vec![x; rep], 2)?.reshape((b, kv * rep, t, d))?)
}

/// The product of the `temperature` stages' temperatures of `spec` (1 without one).
pub fn pipeline_temperature(spec: &PipelineSpec) -> Result<f64> {
    let mut t = 1.0;
    for s in spec.processors.iter().filter(|s| s.name == "temperature") {
        let v = s
            .params
            .get("temperature")
            .and_then(|v| v.as_f64())
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| {
                NetsError::config(
                    "soft_pipeline.temperature",
                    format!("{:?}", s.params.get("temperature")),
                    "must be a number > 0",
                )
            })?;
        t *= v;
    }
    Ok(t)
}

/// `p` with the value `p_c` (the pipeline's distribution, a constant) and the derivative
/// `(1/T)·(diag p_c − p_c p_cᵀ)` in `logits`: `p_c + s − detach(s)`, `s = p_c ⊙ (z − p_c·z)`,
/// `z = logits / T`.
fn differentiable_distribution(p_c: &Tensor, logits: &Tensor, temperature: f64) -> Result<Tensor> {
    let z = (logits / temperature)?;
    let mean = (p_c * &z)?.sum_keepdim(D::Minus1)?;
    let s = (p_c * z.broadcast_sub(&mean)?)?;
    Ok(((p_c + &s)? - s.detach())?)
}

/// Soft sampling with guidance `alpha` over `batch` with the head `head` (a variable): the
/// logits `[N, V]` of every predicted position (sequence after sequence, in position order),
/// differentiable in `head` along every path, and their `N` targets.
pub fn soft_logits(
    frozen: &FrozenTransformer,
    norm: &FinalNorm,
    head: &Tensor,
    soft: &Pipeline,
    temperature: f64,
    batch: &[TrainSequence],
    alpha: f64,
) -> Result<(Tensor, Vec<u32>)> {
    let w_e = frozen.embeddings();
    let v = w_e.dim(0)?;
    let dev = Device::Cpu;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    let mut dense_p = vec![0f32; v];
    for (i, s) in batch.iter().enumerate() {
        let mut sampler = SequenceSampler::new(soft.clone(), 0, i as u64, 0);
        let mut cache: Cache = vec![None; frozen.t.cfg.n_layers];
        let first = Tensor::from_slice(&s.tokens[..1], 1, &dev)?;
        let mut e = w_e.index_select(&first, 0)?;
        for t in 1..s.tokens.len() {
            let h = frozen.step(&e, t - 1, &mut cache)?;
            let hn = rms(&h, &norm.weight, norm.eps)?;
            let logits = hn.matmul(&head.t()?)?; // [1, V]
            rows.push(logits.clone());
            let truth = s.tokens[t];
            targets.push(truth);
            if t + 1 == s.tokens.len() {
                break;
            }
            let values = logits.flatten_all()?.to_vec1::<f32>()?;
            let ctx = Context::new(&s.tokens[..t], s.prompt_len);
            let dist = sampler
                .distribution(&values, &ctx, 0)
                .map_err(|e| NetsError::logits(format!("soft pipeline at position {t}"), e))?;
            distribution_weights(&dist, &mut weights);
            dense_p.iter_mut().for_each(|x| *x = 0.0);
            for &(id, p) in &weights {
                dense_p[id as usize] = p;
            }
            sampler.accept(truth);
            let p_c = Tensor::from_slice(&dense_p, (1, v), &dev)?;
            let p = differentiable_distribution(&p_c, &logits, temperature)?;
            let soft_e = const_matmul(&p, w_e)?;
            let idx = Tensor::from_slice(&[truth], 1, &dev)?;
            let gt = w_e.index_select(&idx, 0)?;
            e = ((gt * alpha)? + (soft_e * (1.0 - alpha))?)?;
        }
    }
    Ok((Tensor::cat(&rows, 0)?, targets))
}
