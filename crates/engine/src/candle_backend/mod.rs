//! The candle backend: GGUF and safetensors models on candle, with model internals (all-position
//! logits, hidden states, early exit, input embeddings, KV rollback).

pub mod gguf;
pub mod q4_1;
pub mod safetensors;
pub mod transformer;

use std::path::Path;

use candle_core::{DType, Tensor};

use crate::device::ComputeDevice;
use crate::error::{bad_request, EngineError, Result};
use crate::model::{
    check_mixture_args, Backend, Feed, ForwardOutput, HiddenState, LanguageModel, Logits,
    ModelInfo, SeqId, DEFAULT_MAX_SEQUENCES,
};
use adasamp_sampling::soft::accumulate_rows;
use transformer::{KvCache, Transformer};

/// How to open a model on candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandleOptions {
    /// Where the weights live and the forward passes run.
    pub device: ComputeDevice,
    /// Precision of dense (safetensors) weights and activations (default f32). GGUF models run
    /// in f32: candle's quantized matmuls take f32 activations.
    pub dtype: Option<DType>,
    /// Cap on the sequence length (default: the model's context).
    pub max_seq_len: Option<usize>,
    /// GGUF: re-quantize Q4_1/Q5_x weights to Q8_0 in memory (see [`gguf`]).
    pub requant_q8: bool,
    /// Sequences that can be live at once.
    pub max_sequences: usize,
    /// GGUF: dequantize every matrix to dense f32 (an f32 copy of the model, e.g. for training).
    pub dense_f32: bool,
}

impl Default for CandleOptions {
    fn default() -> Self {
        Self {
            device: ComputeDevice::Cpu,
            dtype: None,
            max_seq_len: None,
            requant_q8: false,
            max_sequences: DEFAULT_MAX_SEQUENCES,
            dense_f32: false,
        }
    }
}

/// A model on candle with its sequences' KV caches.
#[derive(Debug)]
pub struct CandleModel {
    model: Transformer,
    info: ModelInfo,
    seqs: Vec<Option<KvCache>>,
    max_sequences: usize,
}

impl CandleModel {
    /// Wraps an assembled transformer holding at most `max_sequences` sequences at once.
    pub fn new(model: Transformer, source: &Path, arch: &str, max_sequences: usize) -> Self {
        let c = &model.cfg;
        let info = ModelInfo {
            source: source.display().to_string(),
            arch: arch.to_string(),
            backend: Backend::Candle,
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            n_layers: c.n_layers,
            max_seq_len: c.max_seq_len,
            capabilities: Backend::Candle.capabilities(),
        };
        Self {
            model,
            info,
            seqs: Vec::new(),
            max_sequences: max_sequences.max(1),
        }
    }

    /// Loads a GGUF file; returns the model and the file's metadata (for the tokenizer).
    pub fn from_gguf(path: &Path, opts: CandleOptions) -> Result<(Self, crate::gguf::Content)> {
        if let Some(d) = opts.dtype.filter(|&d| d != DType::F32) {
            return Err(bad_request(
                "dtype",
                d.as_str(),
                "GGUF models run in f32 on candle (its quantized matmuls take f32 activations)",
            ));
        }
        let device = opts.device.candle()?;
        let (t, ct) = gguf::load(
            path,
            &device,
            opts.max_seq_len,
            opts.requant_q8,
            opts.dense_f32,
        )?;
        let arch = crate::gguf::architecture(&ct)?;
        Ok((Self::new(t, path, &arch, opts.max_sequences), ct))
    }

    /// Loads a Hugging Face model directory.
    pub fn from_hf_dir(dir: &Path, opts: CandleOptions) -> Result<Self> {
        let device = opts.device.candle()?;
        let dtype = opts.dtype.unwrap_or(DType::F32);
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(bad_request(
                "dtype",
                dtype.as_str(),
                "dense weights run in f32, f16 or bf16",
            ));
        }
        let (t, hf) = safetensors::load(dir, &device, dtype, opts.max_seq_len)?;
        Ok(Self::new(t, dir, &hf.model_type, opts.max_sequences))
    }

    /// The underlying transformer.
    pub fn transformer(&self) -> &Transformer {
        &self.model
    }

    /// Replaces the LM head with the dense matrix `head` (`[V, hidden]`, no bias), e.g. one
    /// trained apart from the (then untied) input embeddings. Error: another shape.
    pub fn set_head(&mut self, head: Tensor) -> Result<()> {
        let (v, d) = (self.info.vocab_size, self.info.hidden_size);
        if head.dims() != [v, d] {
            return Err(bad_request(
                "head",
                format!("{:?}", head.dims()),
                format!("must be [{v}, {d}] (vocabulary × hidden size)"),
            ));
        }
        let head = head
            .to_device(self.model.device())?
            .to_dtype(candle_core::DType::F32)?;
        self.model.w.head = transformer::Linear::Dense(head, None);
        Ok(())
    }

    fn cache(&mut self, seq: SeqId) -> Result<&mut KvCache> {
        self.seqs
            .get_mut(seq)
            .and_then(|c| c.as_mut())
            .ok_or(EngineError::UnknownSequence { seq })
    }

    /// Runs the feeds, grouped by depth, on caches taken out of `self`; fills `out`.
    fn run(
        &self,
        taken: &mut [(SeqId, KvCache)],
        feeds: &[Feed<'_>],
        out: &mut ForwardOutput,
    ) -> Result<()> {
        let n_layers = self.info.n_layers;
        let depth = |f: &Feed<'_>| f.exit_after.unwrap_or(n_layers);
        let d0 = depth(&feeds[0]);
        if feeds.iter().all(|f| depth(f) == d0) {
            // The usual case (decoding, prefill): one pass, logits copied out once.
            let mut batch: Vec<(&mut KvCache, &Feed<'_>)> =
                taken.iter_mut().map(|(_, c)| c).zip(feeds).collect();
            let o = self.model.forward(&mut batch, d0)?;
            let (r, v) = o.logits.dims2()?;
            out.logits = Logits {
                rows: r,
                vocab: v,
                data: o.logits.flatten_all()?.to_vec1::<f32>()?,
            };
            out.rows = o.rows;
            out.hidden = hidden_states(o.hidden)?;
            return Ok(());
        }
        // Feeds of different depths: one pass per depth, rows put back in feed order.
        let vocab = self.info.vocab_size;
        let mut depths: Vec<usize> = feeds.iter().map(depth).collect();
        depths.sort_unstable();
        depths.dedup();
        let mut per_feed: Vec<Option<(Vec<f32>, Vec<HiddenState>)>> = vec![None; feeds.len()];
        for d in depths {
            let idx: Vec<usize> = (0..feeds.len())
                .filter(|&i| depth(&feeds[i]) == d)
                .collect();
            let mut batch: Vec<(&mut KvCache, &Feed<'_>)> = taken
                .iter_mut()
                .zip(feeds)
                .filter(|(_, f)| depth(f) == d)
                .map(|((_, c), f)| (c, f))
                .collect();
            let o = self.model.forward(&mut batch, d)?;
            let data = o.logits.flatten_all()?.to_vec1::<f32>()?;
            for ((i, rows), h) in idx.into_iter().zip(o.rows).zip(hidden_states(o.hidden)?) {
                let part = data[rows.start * vocab..rows.end * vocab].to_vec();
                per_feed[i] = Some((part, h));
            }
        }
        let mut data = Vec::new();
        for (rows, h) in per_feed.into_iter().flatten() {
            let start = data.len() / vocab;
            data.extend_from_slice(&rows);
            out.rows.push(start..data.len() / vocab);
            out.hidden.push(h);
        }
        out.logits = Logits {
            rows: data.len() / vocab,
            vocab,
            data,
        };
        Ok(())
    }
}

/// Copies per-feed hidden-state tensors out as [`HiddenState`]s.
fn hidden_states(hidden: Vec<Vec<(usize, Tensor)>>) -> Result<Vec<Vec<HiddenState>>> {
    hidden
        .into_iter()
        .map(|hs| {
            hs.into_iter()
                .map(|(block, t)| {
                    Ok(HiddenState {
                        block,
                        rows: t.dims2()?.0,
                        data: t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                    })
                })
                .collect()
        })
        .collect()
}

impl LanguageModel for CandleModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn max_sequences(&self) -> usize {
        self.max_sequences
    }

    fn new_sequence(&mut self) -> Result<SeqId> {
        if self.seqs.iter().filter(|c| c.is_some()).count() >= self.max_sequences {
            return Err(EngineError::NoFreeSequence {
                max: self.max_sequences,
            });
        }
        let cache = self.model.new_cache();
        if let Some(i) = self.seqs.iter().position(|c| c.is_none()) {
            self.seqs[i] = Some(cache);
            return Ok(i);
        }
        self.seqs.push(Some(cache));
        Ok(self.seqs.len() - 1)
    }

    fn free_sequence(&mut self, seq: SeqId) {
        if let Some(c) = self.seqs.get_mut(seq) {
            *c = None;
        }
    }

    fn sequence_len(&self, seq: SeqId) -> Result<usize> {
        self.seqs
            .get(seq)
            .and_then(|c| c.as_ref())
            .map(|c| c.len())
            .ok_or(EngineError::UnknownSequence { seq })
    }

    fn forward(&mut self, feeds: &[Feed<'_>]) -> Result<ForwardOutput> {
        if feeds.is_empty() {
            return Err(bad_request(
                "feeds",
                "[]",
                "a forward step needs at least one feed",
            ));
        }
        // Take the caches out so that several can be borrowed mutably at once.
        let mut taken: Vec<(SeqId, KvCache)> = Vec::with_capacity(feeds.len());
        for f in feeds {
            let seq = f.seq;
            if taken.iter().any(|(s, _)| *s == seq) {
                self.restore(taken);
                return Err(bad_request("seq", seq, "fed twice in one step"));
            }
            match self.seqs.get_mut(seq).and_then(|c| c.take()) {
                Some(c) => taken.push((seq, c)),
                None => {
                    self.restore(taken);
                    return Err(EngineError::UnknownSequence { seq });
                }
            }
        }
        let before: Vec<usize> = taken.iter().map(|(_, c)| c.len()).collect();
        let mut out = ForwardOutput {
            logits: Logits {
                rows: 0,
                vocab: self.info.vocab_size,
                data: Vec::new(),
            },
            rows: Vec::new(),
            hidden: Vec::new(),
        };
        let result = self.run(&mut taken, feeds, &mut out);
        if result.is_err() {
            // A failed step leaves every cache as it was.
            for ((_, c), &len) in taken.iter_mut().zip(&before) {
                let _ = c.truncate(len);
            }
        }
        self.restore(taken);
        result.map(|()| out)
    }

    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<()> {
        self.cache(seq)?.truncate(len)
    }

    fn embedding_mixture(&self, probs: &[(u32, f32)], out: &mut [f32]) -> Result<()> {
        check_mixture_args(&self.info, probs, out)?;
        let (v, d) = (self.info.vocab_size, self.info.hidden_size);
        out.fill(0.0);
        let embed = &self.model.w.embed;
        let (storage, layout) = embed.storage_and_layout();
        match (&*storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(cpu), Some((start, _))) => {
                // Rows read in place: Σ_t p_t · W_E[t].
                let w = &cpu.as_slice::<f32>()?[start..];
                accumulate_rows(probs, |t| &w[t as usize * d..(t as usize + 1) * d], out);
            }
            _ => {
                drop(storage);
                // Another device: a dense p [1, V] times W_E [V, d] on the device.
                let mut dense = vec![0f32; v];
                for &(t, p) in probs {
                    dense[t as usize] += p;
                }
                let p = Tensor::from_vec(dense, (1, v), embed.device())?;
                let y = p.matmul(embed)?.flatten_all()?.to_vec1::<f32>()?;
                out.copy_from_slice(&y);
            }
        }
        Ok(())
    }
}

impl CandleModel {
    fn restore(&mut self, taken: Vec<(SeqId, KvCache)>) {
        for (seq, c) in taken {
            self.seqs[seq] = Some(c);
        }
    }
}
