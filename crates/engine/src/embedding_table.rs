//! A GGUF file's token-embedding matrix `W_E` (`token_embd.weight`) kept as stored (quantized),
//! rows dequantized on demand: the embedding mixture `pᵀ·W_E` for a backend whose weights are
//! out of reach (llama.cpp), without a dense `[V, hidden]` copy.

use std::path::Path;

use adasamp_sampling::soft::accumulate_rows;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

use crate::error::{EngineError, Result};
use crate::gguf::read_content;

/// Rows dequantized per call of the quantized lookup (bounds the scratch memory of a dense
/// mixture to `CHUNK × hidden` floats).
const CHUNK: usize = 1024;

/// The quantized `[V, hidden]` token-embedding matrix of a GGUF file.
#[derive(Debug)]
pub struct EmbeddingTable {
    weights: QTensor,
    vocab: usize,
    hidden: usize,
}

impl EmbeddingTable {
    /// Reads `token_embd.weight` of the GGUF file at `path` (in its stored type).
    pub fn open(path: &Path) -> Result<Self> {
        let invalid = |reason: String| EngineError::InvalidModel {
            path: path.into(),
            reason,
        };
        let (content, mut reader) = read_content(path)?;
        let weights = content
            .tensor(&mut reader, "token_embd.weight", &Device::Cpu)
            .map_err(|e| invalid(format!("tensor `token_embd.weight`: {e}")))?;
        let (vocab, hidden) = weights
            .shape()
            .dims2()
            .map_err(|e| invalid(format!("tensor `token_embd.weight`: {e}")))?;
        Ok(Self {
            weights,
            vocab,
            hidden,
        })
    }

    /// Number of rows (tokens).
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Row length (hidden size).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// `out = Σ_t w_t · W_E[t]` over `(token, weight)` pairs, dequantizing only the rows named.
    /// The caller checks the pairs (tokens in range, finite weights) and `out.len() = hidden`.
    pub fn mixture(&self, weights: &[(u32, f32)], out: &mut [f32]) -> Result<()> {
        out.fill(0.0);
        let d = self.hidden;
        for chunk in weights.chunks(CHUNK) {
            let ids: Vec<u32> = chunk.iter().map(|&(t, _)| t).collect();
            let ids = Tensor::from_vec(ids, chunk.len(), &Device::Cpu)?;
            let rows = self
                .weights
                .embedding(&ids)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let local: Vec<(u32, f32)> = (0..chunk.len() as u32)
                .zip(chunk.iter().map(|c| c.1))
                .collect();
            accumulate_rows(&local, |i| &rows[i as usize * d..(i as usize + 1) * d], out);
        }
        Ok(())
    }
}
