//! Training data and model for soft-sampling training: sequences from the candidate-record JSONL
//! `generate` writes (prompt rendered as the model sees it, then the generation) or from plain
//! `{"text": …}` lines, and the base model loaded as a trainable f32 copy on candle.

use std::path::Path;

use adasamp_engine::candle_backend::transformer::Linear;
use adasamp_engine::candle_backend::CandleOptions;
use adasamp_engine::record::{parse_line, NumberedRecord};
use adasamp_engine::LoadedModel;
use candle_core::{DType, Tensor};

use super::objective::{FinalNorm, TrainSequence};
use crate::error::{NetsError, Result};
use crate::train::replay::record_tokens;

/// Reads the training sequences of a JSONL file: a line with a `text` string and no `prompt` is
/// plain text (tokenized as a document), any other line a candidate record (its prompt rendered
/// with the model's chat template unless `raw`, then its generation). Sequences are cut to
/// `max_len` tokens; those shorter than 2 tokens are skipped. Errors name the line.
pub fn read_sequences(path: &Path, lm: &LoadedModel, max_len: usize) -> Result<Vec<TrainSequence>> {
    if max_len < 2 {
        return Err(NetsError::bad_request(
            "max_len",
            max_len,
            "must be at least 2 (one input and one target)",
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| NetsError::io("read", path, e))?;
    let origin = path.display().to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |field: &str, reason: String| NetsError::BadRecord {
            origin: origin.clone(),
            line: line_no,
            id: format!("line{line_no}"),
            field: field.into(),
            reason,
        };
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad("(line)", format!("not JSON: {e}")))?;
        let plain = v.get("prompt").is_none();
        let (mut tokens, prompt_len) = if plain {
            let t = v.get("text").and_then(|t| t.as_str()).ok_or_else(|| {
                bad(
                    "text",
                    "expected a `text` string or a candidate record".into(),
                )
            })?;
            let ids = lm
                .tokenizer
                .encode(t, lm.tokenizer.add_bos_token())
                .map_err(|e| bad("text", e.to_string()))?;
            (ids, 0)
        } else {
            let rec = NumberedRecord {
                line: line_no,
                record: parse_line(line, &origin, line_no)?,
            };
            let (prompt, generation) = record_tokens(lm, &rec)?;
            let n = prompt.len();
            ([prompt, generation].concat(), n)
        };
        tokens.truncate(max_len);
        if tokens.len() >= 2 {
            out.push(TrainSequence {
                prompt_len: prompt_len.min(tokens.len()),
                tokens,
            });
        }
    }
    if out.is_empty() {
        return Err(NetsError::NoData {
            what: format!("training sequence of at least 2 tokens in {origin}"),
        });
    }
    Ok(out)
}

/// The base model as a trainable f32 copy on candle, with its final norm and its LM head as
/// loaded (for a tied model, a dequantized copy of the input embeddings: the copy is trained,
/// the input embeddings stay as they are).
pub struct TrainModel {
    /// The model, tokenizer and chat template.
    pub lm: LoadedModel,
    /// The final norm.
    pub norm: FinalNorm,
    /// The LM head as loaded, `[V, hidden]`.
    pub head: Tensor,
    /// The frozen transformer as differentiable operations.
    pub frozen: super::FrozenTransformer,
}

/// Loads `path` (`.gguf` or a Hugging Face directory) on candle with every matrix dense f32,
/// room for `sequences` sequences of `max_len` tokens.
pub fn load_train_model(path: &Path, sequences: usize, max_len: usize) -> Result<TrainModel> {
    let opts = CandleOptions {
        max_seq_len: Some(max_len),
        requant_q8: false,
        max_sequences: sequences,
        dense_f32: true,
        ..Default::default()
    };
    let (model, tokenizer, chat) = adasamp_engine::load::load_candle(path, opts)
        .map_err(|e| NetsError::model(format!("loading {}", path.display()), e))?;
    let frozen = super::FrozenTransformer::new(model.transformer())?;
    let w = &model.transformer().w;
    let norm = FinalNorm {
        weight: w.norm.weight.to_dtype(DType::F32)?,
        eps: w.norm.eps,
    };
    let head = match &w.head {
        Linear::Dense(h, None) => h.to_dtype(DType::F32)?,
        Linear::Dense(_, Some(_)) => {
            return Err(NetsError::bad_request(
                "model",
                path.display(),
                "its LM head has a bias, which soft-sampling training does not handle",
            ))
        }
        _ => {
            return Err(NetsError::bad_request(
                "model",
                path.display(),
                "its LM head could not be read as a dense matrix",
            ))
        }
    };
    Ok(TrainModel {
        lm: LoadedModel {
            model: Box::new(model),
            tokenizer,
            chat,
            path: path.to_path_buf(),
        },
        norm,
        head,
        frozen,
    })
}
