//! IFEval-style instruction prompts written for adasamp (licensed as adasamp, Apache-2.0):
//! everyday requests with one or two of IFEval's instructions each, covering all 25 instruction
//! ids the checks know, stored with their `instruction_id_list` and `kwargs` in
//! `ifeval_prompts.jsonl` next to this file. No download: they ship with the binary.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{CurateError, Result};
use crate::prompt::{Check, PromptRecord};
use crate::verifiable::Task;

/// The prompts, one JSON object per line.
pub const PROMPTS: &str = include_str!("ifeval_prompts.jsonl");
/// Their licence (adasamp's).
pub const LICENSE: &str = "Apache-2.0";
/// Their source.
pub const SOURCE: &str = "adasamp IFEval-style prompts";

#[derive(Deserialize)]
struct Written {
    id: String,
    prompt: String,
    instruction_id_list: Value,
    kwargs: Value,
}

/// Prompt records from `text` (the format of [`PROMPTS`]); every ground truth is checked to be
/// readable by the `ifeval` check. Errors name `origin` and the line.
pub fn parse(text: &str, origin: &Path) -> Result<Vec<PromptRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| CurateError::BadLine {
            path: origin.to_path_buf(),
            line: i + 1,
            message,
        };
        let w: Written = serde_json::from_str(line).map_err(|e| {
            bad(format!(
                "{e} (expected {{\"id\", \"prompt\", \"instruction_id_list\", \"kwargs\"}})"
            ))
        })?;
        let gt = json!({"instruction_id_list": w.instruction_id_list, "kwargs": w.kwargs});
        Task::parse("ifeval", &gt).map_err(|e| bad(format!("ground truth: {e}")))?;
        out.push(PromptRecord {
            id: w.id,
            prompt: w.prompt,
            system_prompt: None,
            source: Some(SOURCE.into()),
            license: Some(LICENSE.into()),
            checks: vec![Check::Verifiable],
            dataset: Some("ifeval".into()),
            ground_truth: Some(gt),
            extra: Map::new(),
        });
    }
    Ok(out)
}

/// Every shipped prompt.
pub fn load() -> Result<Vec<PromptRecord>> {
    parse(PROMPTS, Path::new("ifeval_prompts.jsonl"))
}
