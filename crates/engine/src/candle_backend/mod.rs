//! The candle backend: GGUF and safetensors models on candle, with model internals (all-position
//! logits, hidden states, early exit, input embeddings, KV rollback).

pub mod gguf;
pub mod q4_1;
pub mod safetensors;
pub mod transformer;

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::error::{EngineError, Result};
use crate::model::{Backend, Capabilities, Feed, LanguageModel, Logits, ModelInfo, SeqId};
use transformer::{ForwardOptions, Input, KvCache, Output, Transformer};

/// A model on candle with its sequences' KV caches.
#[derive(Debug)]
pub struct CandleModel {
    model: Transformer,
    info: ModelInfo,
    seqs: Vec<Option<KvCache>>,
}

const CAPS: Capabilities = Capabilities {
    all_logits: true,
    rollback: true,
    hidden_states: true,
    early_exit: true,
    input_embeddings: true,
    embedding_matrix: true,
};

impl CandleModel {
    /// Wraps an assembled transformer.
    pub fn new(model: Transformer, source: &Path, arch: &str) -> Self {
        let c = &model.cfg;
        let info = ModelInfo {
            source: source.display().to_string(),
            arch: arch.to_string(),
            backend: Backend::Candle,
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            n_layers: c.n_layers,
            max_seq_len: c.max_seq_len,
            capabilities: CAPS,
        };
        Self {
            model,
            info,
            seqs: Vec::new(),
        }
    }

    /// Loads a GGUF file; returns the model and the file's metadata (for the tokenizer).
    pub fn from_gguf(
        path: &Path,
        opts: crate::load::LoadOptions,
    ) -> Result<(Self, candle_core::quantized::gguf_file::Content)> {
        let (t, ct) = gguf::load(path, &Device::Cpu, opts.max_seq_len, opts.requant_q8)?;
        let arch = gguf::architecture(&ct)?;
        Ok((Self::new(t, path, &arch), ct))
    }

    /// Loads a Hugging Face model directory.
    pub fn from_hf_dir(dir: &Path, max_seq_len: Option<usize>) -> Result<Self> {
        let (t, hf) = safetensors::load(dir, &Device::Cpu, max_seq_len)?;
        Ok(Self::new(t, dir, &hf.model_type))
    }

    /// The underlying transformer.
    pub fn transformer(&self) -> &Transformer {
        &self.model
    }

    fn cache(&mut self, seq: SeqId) -> Result<&mut KvCache> {
        self.seqs
            .get_mut(seq)
            .and_then(|c| c.as_mut())
            .ok_or_else(|| EngineError::Request(format!("unknown sequence {seq}")))
    }

    /// Runs one forward over several sequences with options (hidden states, early exit, …).
    pub fn forward_with(
        &mut self,
        feeds: Vec<(SeqId, Input<'_>)>,
        opts: &ForwardOptions,
    ) -> Result<Vec<Output>> {
        // Take the caches out so that several can be borrowed mutably at once.
        let mut taken: Vec<(SeqId, KvCache)> = Vec::with_capacity(feeds.len());
        for (seq, _) in &feeds {
            if taken.iter().any(|(s, _)| s == seq) {
                self.restore(taken);
                return Err(EngineError::Request(format!(
                    "sequence {seq} appears twice in one batch"
                )));
            }
            match self.seqs.get_mut(*seq).and_then(|c| c.take()) {
                Some(c) => taken.push((*seq, c)),
                None => {
                    self.restore(taken);
                    return Err(EngineError::Request(format!("unknown sequence {seq}")));
                }
            }
        }
        let mut batch: Vec<(&mut KvCache, Input<'_>)> = taken
            .iter_mut()
            .map(|(_, c)| c)
            .zip(feeds.into_iter().map(|(_, i)| i))
            .collect();
        let before: Vec<usize> = batch.iter().map(|(c, _)| c.len()).collect();
        let out = self.model.forward(&mut batch, opts);
        if out.is_err() {
            // A failed step leaves every cache as it was.
            for ((c, _), &len) in batch.iter_mut().zip(&before) {
                let _ = c.truncate(len);
            }
        }
        drop(batch);
        self.restore(taken);
        out
    }

    fn restore(&mut self, taken: Vec<(SeqId, KvCache)>) {
        for (seq, c) in taken {
            self.seqs[seq] = Some(c);
        }
    }
}

fn to_logits(rows: Vec<Tensor>) -> Result<Logits> {
    let t = Tensor::cat(&rows, 0)?;
    let (r, v) = t.dims2()?;
    Ok(Logits {
        rows: r,
        vocab: v,
        data: t.flatten_all()?.to_vec1::<f32>()?,
    })
}

impl LanguageModel for CandleModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn new_sequence(&mut self) -> Result<SeqId> {
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
            .ok_or_else(|| EngineError::Request(format!("unknown sequence {seq}")))
    }

    fn forward(&mut self, feeds: &[Feed<'_>]) -> Result<Logits> {
        let inputs = feeds
            .iter()
            .map(|f| (f.seq, Input::Tokens(f.tokens)))
            .collect();
        let out = self.forward_with(inputs, &ForwardOptions::default())?;
        to_logits(out.into_iter().map(|o| o.logits).collect())
    }

    fn forward_all(&mut self, feed: Feed<'_>) -> Result<Logits> {
        let opts = ForwardOptions {
            all_logits: true,
            ..Default::default()
        };
        let out = self.forward_with(vec![(feed.seq, Input::Tokens(feed.tokens))], &opts)?;
        to_logits(out.into_iter().map(|o| o.logits).collect())
    }

    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<()> {
        self.cache(seq)?.truncate(len)
    }

    fn forward_embeddings(&mut self, seq: SeqId, embeddings: &[f32]) -> Result<Logits> {
        let d = self.info.hidden_size;
        if embeddings.is_empty() || !embeddings.len().is_multiple_of(d) {
            return Err(EngineError::Request(format!(
                "input embeddings hold {} values, not a multiple of the hidden size {d}",
                embeddings.len()
            )));
        }
        let t = Tensor::from_slice(embeddings, (embeddings.len() / d, d), self.model.device())?;
        let out = self.forward_with(
            vec![(seq, Input::Embeddings(t))],
            &ForwardOptions::default(),
        )?;
        to_logits(out.into_iter().map(|o| o.logits).collect())
    }

    fn embedding_matrix(&self) -> Result<Vec<f32>> {
        Ok(self.model.w.embed.flatten_all()?.to_vec1::<f32>()?)
    }
}
