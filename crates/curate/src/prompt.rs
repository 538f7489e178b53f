//! Prompt files: one JSON object per line with the prompt and what applies to it.
//!
//! ```json
//! {"id": "mtbench-81", "prompt": "Compose an engaging travel blog post…", "source": "MT-Bench",
//!  "license": "Apache-2.0", "checks": ["diversity"]}
//! {"id": "gsm-7", "prompt": "…", "checks": ["verifiable"], "dataset": "gsm8k", "ground_truth": "18"}
//! ```

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{CurateError, Result};
use crate::labels;

/// A check that applies to a prompt's generations (SPEC 4: each prompt group has its checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// Diversity across seeds counts (creative writing).
    Diversity,
    /// The answer can be checked (`dataset` + `ground_truth`).
    Verifiable,
}

/// One line of a prompt file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptRecord {
    /// Unique id within the file (a number is read as its text).
    #[serde(deserialize_with = "id_text")]
    pub id: String,
    /// The user prompt.
    pub prompt: String,
    /// A system prompt for this prompt only (else the stage's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Where it came from (dataset and version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The source's licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// The checks that apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Verifiable task family (`gsm8k`, `math`, `ifeval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Expected answer (or IFEval instruction arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_truth: Option<Value>,
    /// Any other field, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or number, got {other}"
        ))),
    }
}

impl PromptRecord {
    /// The fields a candidate record carries over from its prompt (written into its `extra`):
    /// [`labels::PROMPT_ID`], and `source`, `license`, `checks`, `dataset`, `ground_truth` when
    /// present, plus the prompt's unknown fields.
    pub fn carried_fields(&self) -> Map<String, Value> {
        let mut m = self.extra.clone();
        m.insert(labels::PROMPT_ID.into(), Value::String(self.id.clone()));
        if let Some(s) = &self.source {
            m.insert(labels::SOURCE.into(), Value::String(s.clone()));
        }
        if let Some(s) = &self.license {
            m.insert(labels::LICENSE.into(), Value::String(s.clone()));
        }
        if !self.checks.is_empty() {
            m.insert(
                labels::CHECKS.into(),
                serde_json::to_value(&self.checks).unwrap_or(Value::Null),
            );
        }
        if let Some(s) = &self.dataset {
            m.insert(labels::DATASET.into(), Value::String(s.clone()));
        }
        if let Some(v) = &self.ground_truth {
            m.insert(labels::GROUND_TRUTH.into(), v.clone());
        }
        m
    }
}

/// Parses a prompt file's text; errors name `origin`, the line and the field. Blank lines are
/// skipped; a duplicate id is an error.
pub fn parse_prompts(text: &str, origin: &Path) -> Result<Vec<PromptRecord>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| CurateError::BadLine {
            path: origin.to_path_buf(),
            line: i + 1,
            message,
        };
        let p: PromptRecord = serde_json::from_str(line).map_err(|e| {
            bad(format!(
                "{e} (expected {{\"id\", \"prompt\", \"system_prompt\"?, \"source\"?, \"license\"?, \"checks\"?, \"dataset\"?, \"ground_truth\"?}})"
            ))
        })?;
        if !seen.insert(p.id.clone()) {
            return Err(bad(format!("field `id`: duplicate id {:?}", p.id)));
        }
        out.push(p);
    }
    Ok(out)
}

/// Reads a prompt file (see [`parse_prompts`]).
pub fn read_prompts(path: &Path) -> Result<Vec<PromptRecord>> {
    let text = std::fs::read_to_string(path).map_err(CurateError::io(path))?;
    parse_prompts(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_carries_fields() {
        let t = r#"{"id": 7, "prompt": "hi", "checks": ["verifiable"], "dataset": "gsm8k", "ground_truth": "18", "topic": "x"}

{"id": "b", "prompt": "there"}"#;
        let p = parse_prompts(t, Path::new("p.jsonl")).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].id, "7");
        let m = p[0].carried_fields();
        assert_eq!(m[labels::PROMPT_ID], "7");
        assert_eq!(m[labels::DATASET], "gsm8k");
        assert_eq!(m[labels::CHECKS], serde_json::json!(["verifiable"]));
        assert_eq!(m["topic"], "x");
        assert!(!p[1].carried_fields().contains_key(labels::SOURCE));
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = parse_prompts(
            "{\"id\": 1, \"prompt\": \"a\"}\n{\"id\": 2}\n",
            Path::new("p"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("p:2") && e.contains("prompt"), "{e}");
        let e = parse_prompts(
            "{\"id\": 1, \"prompt\": \"a\", \"checks\": [\"fun\"]}",
            Path::new("p"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("fun"), "{e}");
        let e = parse_prompts(
            "{\"id\": 1, \"prompt\": \"a\"}\n{\"id\": \"1\", \"prompt\": \"b\"}",
            Path::new("p"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("p:2") && e.contains("duplicate"), "{e}");
    }
}
