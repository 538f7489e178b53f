//! One decoder-only transformer on candle covering the Llama (SmolLM2), Qwen2 and Qwen3 families:
//! pre-norm blocks of grouped-query attention with RoPE and a SwiGLU MLP. Weights are quantized
//! (GGUF) or dense (safetensors). Every sequence of a batch has its own KV cache and position; the
//! projections and MLP run on all tokens of the batch at once, attention per sequence, so a
//! sequence's logits do not depend on what else is in the batch.

use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor};

use crate::error::{bad_request, EngineError, Result};
use crate::model::{Feed, Input};

/// Model family (decides biases, q/k norms and RoPE layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama / SmolLM2 / Mistral-style blocks.
    Llama,
    /// Qwen2: biases on the q/k/v projections.
    Qwen2,
    /// Qwen3: RMS norm on each head of q and k before RoPE.
    Qwen3,
}

impl Arch {
    /// The family for an architecture name (`general.architecture` or HF `model_type`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "llama" | "mistral" | "smollm" | "smollm2" => Some(Self::Llama),
            "qwen2" => Some(Self::Qwen2),
            "qwen3" => Some(Self::Qwen3),
            _ => None,
        }
    }
}

/// Shape hyper-parameters of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Model family.
    pub arch: Arch,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size d.
    pub hidden_size: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMS-norm epsilon.
    pub rms_eps: f64,
    /// RoPE base θ.
    pub rope_theta: f32,
    /// RoPE pairs (2i, 2i+1) (GGUF Llama weights) instead of (i, i + d/2).
    pub rope_interleaved: bool,
    /// Longest sequence the position tables cover.
    pub max_seq_len: usize,
}

/// A linear layer with quantized or dense weights (`[out, in]`) and an optional bias.
#[derive(Debug, Clone)]
pub enum Linear {
    /// GGUF quantized weights.
    Quant(QMatMul, Option<Tensor>),
    /// Dense weights.
    Dense(Tensor, Option<Tensor>),
    /// Q4_1 weights on adasamp's own kernel (llama.cpp's arithmetic; see `q4_1`).
    Q41(std::sync::Arc<super::q4_1::Q41Matrix>, Option<Tensor>),
}

impl Linear {
    /// `x · Wᵀ + b` for the rows of several sequences stacked in `x` (`lens` rows each).
    ///
    /// Quantized matmuls compute every row on its own, so one call serves the whole batch.
    /// Dense matmuls pick kernels by the number of rows, which changes rounding: they run per
    /// sequence, so a sequence's result never depends on what else is in the batch.
    pub fn forward_batch(&self, x: &Tensor, lens: &[usize]) -> Result<Tensor> {
        match self {
            Linear::Quant(..) | Linear::Q41(..) => self.forward(x),
            Linear::Dense(..) if lens.len() <= 1 => self.forward(x),
            Linear::Dense(..) => {
                let mut parts = Vec::with_capacity(lens.len());
                let mut off = 0;
                for &n in lens {
                    parts.push(self.forward(&x.narrow(0, off, n)?)?);
                    off += n;
                }
                Ok(Tensor::cat(&parts, 0)?)
            }
        }
    }

    /// `x · Wᵀ + b` for `x` of shape `[n, in]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (y, b) = match self {
            Linear::Quant(w, b) => (w.forward(x)?, b),
            Linear::Dense(w, b) => (x.matmul(&w.t()?)?, b),
            Linear::Q41(w, b) => {
                let n = x.dim(0)?;
                let xs: Vec<f32> = x
                    .to_dtype(candle_core::DType::F32)?
                    .flatten_all()?
                    .to_vec1()?;
                let y = w.matmul(&xs, n);
                (Tensor::from_vec(y, (n, w.rows()), x.device())?, b)
            }
        };
        Ok(match b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// RMS norm: `x / rms(x) · w`.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    /// Scale, `[d]`.
    pub weight: Tensor,
    /// Epsilon.
    pub eps: f32,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            &self.weight,
            self.eps,
        )?)
    }
}

/// Weights of one block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Norm before attention.
    pub attn_norm: RmsNorm,
    /// Query projection.
    pub wq: Linear,
    /// Key projection.
    pub wk: Linear,
    /// Value projection.
    pub wv: Linear,
    /// Output projection.
    pub wo: Linear,
    /// Per-head query norm (Qwen3).
    pub q_norm: Option<RmsNorm>,
    /// Per-head key norm (Qwen3).
    pub k_norm: Option<RmsNorm>,
    /// Norm before the MLP.
    pub ffn_norm: RmsNorm,
    /// MLP gate projection.
    pub gate: Linear,
    /// MLP up projection.
    pub up: Linear,
    /// MLP down projection.
    pub down: Linear,
}

/// All weights of a model.
#[derive(Debug, Clone)]
pub struct Weights {
    /// Input embedding matrix `[V, d]` (f32).
    pub embed: Tensor,
    /// Blocks, in order.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub norm: RmsNorm,
    /// Output head `[V, d]`.
    pub head: Linear,
}

/// The KV cache of one sequence: per block the keys and values `[1, kv_heads, positions,
/// head_dim]`. An early-exit step writes only its first blocks, so each block keeps its own
/// length; the sequence's length is that of the first block (every fed position).
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    block_len: Vec<usize>,
    len: usize,
}

impl KvCache {
    /// Number of positions fed to the sequence.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions cached by block `block` (fewer than [`KvCache::len`] after an early exit).
    pub fn block_len(&self, block: usize) -> usize {
        self.block_len.get(block).copied().unwrap_or(0)
    }

    /// The first of blocks `0..depth` that lacks positions of the sequence (skipped by an
    /// earlier early-exit step), with its length.
    pub fn first_incomplete(&self, depth: usize) -> Option<(usize, usize)> {
        self.block_len
            .iter()
            .take(depth)
            .position(|&l| l != self.len)
            .map(|b| (b, self.block_len[b]))
    }

    /// Drops every position at or after `len` (in every block).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len > self.len {
            return Err(bad_request(
                "len",
                len,
                format!("the sequence has only {} positions", self.len),
            ));
        }
        for (l, bl) in self.layers.iter_mut().zip(self.block_len.iter_mut()) {
            if *bl <= len {
                continue;
            }
            if let Some((k, v)) = l.take() {
                if len > 0 {
                    *l = Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?));
                }
            }
            *bl = len;
        }
        self.len = len;
        Ok(())
    }
}

/// Outputs of one forward step over a batch of feeds.
#[derive(Debug, Clone)]
pub struct Output {
    /// Logits of every feed, feed after feed, `[rows, V]`: one row per feed, or one per fed
    /// position for a feed with `all_logits`.
    pub logits: Tensor,
    /// Per feed, the range of its rows in `logits`.
    pub rows: Vec<std::ops::Range<usize>>,
    /// Per feed, `(block, hidden states [n, d])` for each block it asked for, in its order.
    pub hidden: Vec<Vec<(usize, Tensor)>>,
}

/// A transformer ready to run: configuration, weights and RoPE tables.
#[derive(Debug, Clone)]
pub struct Transformer {
    /// Hyper-parameters.
    pub cfg: Config,
    /// Weights.
    pub w: Weights,
    cos: Tensor,
    sin: Tensor,
    device: Device,
    dtype: DType,
}

impl Transformer {
    /// Assembles a model; checks the shapes that would otherwise fail deep in a forward pass.
    pub fn new(cfg: Config, mut w: Weights, device: &Device) -> Result<Self> {
        // f32 and contiguous, so that its rows can be read in place (embedding mixtures).
        w.embed = w.embed.to_dtype(DType::F32)?.contiguous()?;
        let bad = |reason: String| EngineError::Metadata {
            key: "model shape".into(),
            reason,
        };
        if cfg.n_heads == 0 || cfg.n_kv_heads == 0 || !cfg.n_heads.is_multiple_of(cfg.n_kv_heads) {
            return Err(bad(format!(
                "{} heads is not a multiple of {} kv heads",
                cfg.n_heads, cfg.n_kv_heads
            )));
        }
        if !cfg.head_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "head dim {} must be even for RoPE",
                cfg.head_dim
            )));
        }
        if w.blocks.len() != cfg.n_layers {
            return Err(bad(format!(
                "{} blocks loaded, config says {}",
                w.blocks.len(),
                cfg.n_layers
            )));
        }
        let (v, d) = w.embed.dims2()?;
        if v != cfg.vocab_size || d != cfg.hidden_size {
            return Err(bad(format!(
                "embedding matrix is [{v}, {d}], expected [{}, {}]",
                cfg.vocab_size, cfg.hidden_size
            )));
        }
        let half = cfg.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f32 / cfg.head_dim as f32))
            .collect();
        let inv = Tensor::from_vec(inv, (1, half), device)?;
        let pos = Tensor::arange(0u32, cfg.max_seq_len as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((cfg.max_seq_len, 1))?;
        let freqs = pos.matmul(&inv)?;
        // Activations run in the dtype of the norms (f32 for GGUF; the loading dtype for dense).
        let dtype = w.norm.weight.dtype();
        Ok(Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
            cfg,
            w,
            device: device.clone(),
            dtype,
        })
    }

    /// A fresh, empty KV cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: vec![None; self.cfg.n_layers],
            block_len: vec![0; self.cfg.n_layers],
            len: 0,
        }
    }

    /// The RoPE tables `(cos, sin)`, `[max_seq_len, head_dim / 2]` each: row `p`, column `i` is
    /// `cos`/`sin` of `p · θ^(−2i/head_dim)`.
    pub fn rope_tables(&self) -> (&Tensor, &Tensor) {
        (&self.cos, &self.sin)
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Embeds token ids: rows of the embedding matrix, `[n, d]`.
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        if let Some(&bad) = ids.iter().find(|&&t| t as usize >= self.cfg.vocab_size) {
            return Err(bad_request(
                "token",
                bad,
                format!("outside the vocabulary of {}", self.cfg.vocab_size),
            ));
        }
        let idx = Tensor::from_slice(ids, ids.len(), &self.device)?;
        Ok(self.w.embed.index_select(&idx, 0)?)
    }

    /// Feeds each sequence its input (appending to its cache), running the first `depth`
    /// blocks, then the final norm and the LM head. Checks every feed before anything runs.
    pub fn forward(&self, batch: &mut [(&mut KvCache, &Feed<'_>)], depth: usize) -> Result<Output> {
        let c = &self.cfg;
        if depth > c.n_layers {
            return Err(bad_request(
                "exit_after",
                depth,
                format!("the model has {} blocks", c.n_layers),
            ));
        }
        let mut lens = Vec::with_capacity(batch.len());
        let mut xs = Vec::with_capacity(batch.len());
        for (cache, feed) in batch.iter() {
            let n = match feed.input {
                Input::Tokens(t) => t.len(),
                Input::Embeddings(e) => {
                    if !e.len().is_multiple_of(c.hidden_size) {
                        return Err(bad_request(
                            "embeddings",
                            format!("{} values", e.len()),
                            format!("not a multiple of the hidden size {}", c.hidden_size),
                        ));
                    }
                    e.len() / c.hidden_size
                }
            };
            if n == 0 {
                return Err(bad_request(
                    "input",
                    format!("sequence {}", feed.seq),
                    "feeds no positions",
                ));
            }
            if cache.len + n > c.max_seq_len {
                return Err(EngineError::ContextOverflow {
                    seq: feed.seq,
                    len: cache.len + n,
                    max: c.max_seq_len,
                });
            }
            if let Some((block, cached)) = cache.first_incomplete(depth) {
                return Err(EngineError::IncompleteCache {
                    seq: feed.seq,
                    block,
                    cached,
                    len: cache.len,
                });
            }
            if let Some(&b) = feed.hidden_states.iter().find(|&&b| b >= depth) {
                return Err(bad_request(
                    "hidden_states",
                    b,
                    format!("the step runs blocks 0..{depth}"),
                ));
            }
            lens.push(n);
            xs.push(match feed.input {
                Input::Tokens(t) => self.embed(t)?,
                Input::Embeddings(e) => Tensor::from_slice(e, (n, c.hidden_size), &self.device)?,
            });
        }
        // [N, d]; one sequence's rows as they are (no copy).
        let mut x = match xs.len() {
            1 => xs.swap_remove(0),
            _ => Tensor::cat(&xs, 0)?,
        };
        if x.dtype() != self.dtype {
            x = x.to_dtype(self.dtype)?;
        }
        let mut hidden: Vec<Vec<(usize, Tensor)>> = vec![Vec::new(); batch.len()];
        for (li, block) in self.w.blocks.iter().take(depth).enumerate() {
            let h = block.attn_norm.forward(&x)?;
            let q = block.wq.forward_batch(&h, &lens)?;
            let k = block.wk.forward_batch(&h, &lens)?;
            let v = block.wv.forward_batch(&h, &lens)?;
            let mut ys = Vec::with_capacity(batch.len());
            let mut off = 0;
            for (si, (cache, _)) in batch.iter_mut().enumerate() {
                let n = lens[si];
                let y = self.attention(
                    block,
                    li,
                    cache,
                    &q.narrow(0, off, n)?,
                    &k.narrow(0, off, n)?,
                    &v.narrow(0, off, n)?,
                )?;
                ys.push(y);
                off += n;
            }
            let attn = block.wo.forward_batch(&Tensor::cat(&ys, 0)?, &lens)?;
            x = (x + attn)?;
            let h = block.ffn_norm.forward(&x)?;
            let act = (candle_nn::ops::silu(&block.gate.forward_batch(&h, &lens)?)?
                * block.up.forward_batch(&h, &lens)?)?;
            let mlp = block.down.forward_batch(&act, &lens)?;
            x = (x + mlp)?;
            let mut off = 0;
            for (si, (_, feed)) in batch.iter().enumerate() {
                if feed.hidden_states.contains(&li) {
                    hidden[si].push((li, x.narrow(0, off, lens[si])?));
                }
                off += lens[si];
            }
        }
        for (si, (cache, _)) in batch.iter_mut().enumerate() {
            cache.len += lens[si];
        }
        let x = self.w.norm.forward(&x)?;
        // Rows whose logits are wanted.
        let mut sel_rows = Vec::with_capacity(batch.len());
        let mut out_lens = Vec::with_capacity(batch.len());
        let mut rows = Vec::with_capacity(batch.len());
        let mut off = 0u32;
        for ((_, feed), &n) in batch.iter().zip(&lens) {
            let first = sel_rows.len();
            if feed.all_logits {
                sel_rows.extend(off..off + n as u32);
            } else {
                sel_rows.push(off + n as u32 - 1);
            }
            out_lens.push(sel_rows.len() - first);
            rows.push(first..sel_rows.len());
            off += n as u32;
        }
        let n_rows = sel_rows.len();
        let sel = x.index_select(&Tensor::from_vec(sel_rows, n_rows, &self.device)?, 0)?;
        let logits = self
            .w
            .head
            .forward_batch(&sel, &out_lens)?
            .to_dtype(DType::F32)?;
        // Hidden states in the order each feed asked for them.
        for (h, (_, feed)) in hidden.iter_mut().zip(batch.iter()) {
            if feed.hidden_states.len() > 1 || h.len() != feed.hidden_states.len() {
                let got = std::mem::take(h);
                for &b in feed.hidden_states {
                    if let Some(t) = got.iter().find(|(l, _)| *l == b) {
                        h.push(t.clone());
                    }
                }
            }
        }
        Ok(Output {
            logits,
            rows,
            hidden,
        })
    }

    /// Attention of one sequence's `n` new positions over its cache, `[n, heads·head_dim]`.
    fn attention(
        &self,
        block: &Block,
        li: usize,
        cache: &mut KvCache,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let n = q.dims2()?.0;
        let pos = cache.len;
        let split = |t: &Tensor, heads: usize| -> Result<Tensor> {
            Ok(t.reshape((1, n, heads, c.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let mut q = split(q, c.n_heads)?;
        let mut k = split(k, c.n_kv_heads)?;
        let v = split(v, c.n_kv_heads)?;
        if let Some(qn) = &block.q_norm {
            q = qn.forward(&q)?;
        }
        if let Some(kn) = &block.k_norm {
            k = kn.forward(&k)?;
        }
        let cos = self.cos.narrow(0, pos, n)?;
        let sin = self.sin.narrow(0, pos, n)?;
        let (q, k) = if c.rope_interleaved {
            (
                candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?,
                candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?,
            )
        } else {
            (
                candle_nn::rotary_emb::rope(&q, &cos, &sin)?,
                candle_nn::rotary_emb::rope(&k, &cos, &sin)?,
            )
        };
        let (k, v) = match cache.layers[li].take() {
            Some((kc, vc)) => (Tensor::cat(&[&kc, &k], 2)?, Tensor::cat(&[&vc, &v], 2)?),
            None => (k, v),
        };
        cache.layers[li] = Some((k.clone(), v.clone()));
        cache.block_len[li] = pos + n;
        let rep = c.n_heads / c.n_kv_heads;
        let k = repeat_kv(k, rep)?.contiguous()?;
        let v = repeat_kv(v, rep)?.contiguous()?;
        let att = (q.matmul(&k.t()?)? / (c.head_dim as f64).sqrt())?;
        let att = if n > 1 {
            let mask = causal_mask(n, pos, &self.device)?;
            let neg = Tensor::new(f32::NEG_INFINITY, &self.device)?
                .to_dtype(att.dtype())?
                .broadcast_as(att.shape())?;
            mask.broadcast_as(att.shape())?.where_cond(&neg, &att)?
        } else {
            att
        };
        let att = candle_nn::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v)?; // [1, heads, n, head_dim]
        Ok(y.transpose(1, 2)?.reshape((n, c.n_heads * c.head_dim))?)
    }
}

/// Repeats each key/value head `rep` times along the head axis (grouped-query attention):
/// `[1, kv, t, d]` → `[1, kv·rep, t, d]`, head `h` reading kv head `h / rep`.
fn repeat_kv(x: Tensor, rep: usize) -> Result<Tensor> {
    if rep == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    Ok(Tensor::cat(&vec![&x; rep], 2)?.reshape((b, kv * rep, t, d))?)
}

/// Causal mask for `n` new positions after `pos` cached ones, `[n, pos + n]`: 1 where query `i`
/// (absolute position `pos + i`) must not see key `j`, i.e. `j > pos + i`.
fn causal_mask(n: usize, pos: usize, device: &Device) -> Result<Tensor> {
    let kv = pos + n;
    let m: Vec<u8> = (0..n)
        .flat_map(|i| (0..kv).map(move |j| u8::from(j > pos + i)))
        .collect();
    Ok(Tensor::from_slice(&m, (n, kv), device)?)
}
