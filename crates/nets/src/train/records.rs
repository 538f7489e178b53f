//! Candidate records (the JSONL written by `adasamp generate --output`): one record per line,
//! `{id, prompt, system_prompt, raw?, generation, generation_tokens?, sampler_info: {name, config}, …}`.
//! A record's target pipeline is `sampler_info.config`, a sampling [`PipelineSpec`].
//!
//! Every malformed line is an error naming `file:line` and the field; blank lines are skipped;
//! unknown extra fields are ignored.

use std::path::Path;

use adasamp_sampling::{Pipeline, PipelineSpec};
use serde_json::Value;

use crate::error::{NetsError, Result};

/// One candidate record, parsed and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateRecord {
    /// 1-based line number in the file (for messages).
    pub line: usize,
    /// The record id (`id`; a number is rendered as text; the line number if absent).
    pub id: String,
    /// The user prompt (before the chat template).
    pub prompt: String,
    /// The system prompt, if any.
    pub system_prompt: Option<String>,
    /// The prompt went to the model as is, without the chat template (`raw: true`, written by
    /// `adasamp generate --raw`; absent means false).
    pub raw: bool,
    /// The generated text.
    pub generation: String,
    /// The generated token ids, when the record carries them (exact replay).
    pub generation_tokens: Option<Vec<u32>>,
    /// The pipeline the generation was sampled with (`sampler_info.config`), already checked to
    /// build.
    pub pipeline: PipelineSpec,
}

impl CandidateRecord {
    /// Builds the record's pipeline (checked at parse time, so this only fails on a bug).
    pub fn build_pipeline(&self) -> Result<Pipeline> {
        Pipeline::from_spec(self.pipeline.clone())
            .map_err(|e| NetsError::InvalidInput(format!("record {}: {e}", self.id)))
    }
}

fn field_err(origin: &str, line: usize, field: &str, reason: impl std::fmt::Display) -> NetsError {
    NetsError::InvalidInput(format!("{origin}:{line}: field `{field}`: {reason}"))
}

/// Parses one JSONL line (`origin` and `line` name it in errors).
pub fn parse_record(text: &str, origin: &str, line: usize) -> Result<CandidateRecord> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| NetsError::InvalidInput(format!("{origin}:{line}: not a JSON object: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        NetsError::InvalidInput(format!("{origin}:{line}: expected a JSON object"))
    })?;
    let string = |field: &str| -> Result<String> {
        match obj.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(field_err(
                origin,
                line,
                field,
                format!("expected a string, got {other}"),
            )),
            None => Err(field_err(origin, line, field, "missing")),
        }
    };
    let id = match obj.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => format!("line{line}"),
        Some(other) => {
            return Err(field_err(
                origin,
                line,
                "id",
                format!("expected a string or number, got {other}"),
            ))
        }
    };
    let prompt = string("prompt")?;
    let generation = string("generation")?;
    let system_prompt = match obj.get("system_prompt") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(field_err(
                origin,
                line,
                "system_prompt",
                format!("expected a string or null, got {other}"),
            ))
        }
    };
    let raw = match obj.get("raw") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(field_err(
                origin,
                line,
                "raw",
                format!("expected true or false, got {other}"),
            ))
        }
    };
    let generation_tokens = match obj.get("generation_tokens") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .enumerate()
                .map(|(i, t)| {
                    t.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| {
                            field_err(
                                origin,
                                line,
                                &format!("generation_tokens[{i}]"),
                                format!("expected a token id (u32), got {t}"),
                            )
                        })
                })
                .collect::<Result<Vec<u32>>>()?,
        ),
        Some(other) => {
            return Err(field_err(
                origin,
                line,
                "generation_tokens",
                format!("expected an array of token ids, got {other}"),
            ))
        }
    };
    let info = obj
        .get("sampler_info")
        .ok_or_else(|| field_err(origin, line, "sampler_info", "missing"))?;
    let config = info
        .as_object()
        .ok_or_else(|| field_err(origin, line, "sampler_info", "expected an object"))?
        .get("config")
        .ok_or_else(|| field_err(origin, line, "sampler_info.config", "missing"))?;
    let pipeline: PipelineSpec = serde_json::from_value(config.clone())
        .map_err(|e| field_err(origin, line, "sampler_info.config", e))?;
    Pipeline::from_spec(pipeline.clone())
        .map_err(|e| field_err(origin, line, "sampler_info.config", e))?;
    Ok(CandidateRecord {
        line,
        id,
        prompt,
        system_prompt,
        raw,
        generation,
        generation_tokens,
        pipeline,
    })
}

/// Parses JSONL text (`origin` names it in errors).
pub fn parse_records(text: &str, origin: &str) -> Result<Vec<CandidateRecord>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_record(l, origin, i + 1))
        .collect()
}

/// Reads and parses a candidate-records JSONL file. An empty file is an error.
pub fn read_records(path: &Path) -> Result<Vec<CandidateRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| NetsError::io("cannot read", path, e))?;
    let records = parse_records(&text, &path.display().to_string())?;
    if records.is_empty() {
        return Err(NetsError::InvalidInput(format!(
            "{}: no records",
            path.display()
        )));
    }
    Ok(records)
}
