//! Eval prompts must not be training prompts: any eval prompt with the id of a training prompt,
//! or the same text once normalised ([`normalise`]), is refused before anything is generated.
//!
//! A training file is any JSONL whose lines carry a prompt id and a prompt text: a prompt file
//! (`id`, `prompt`) or a candidate / labelled / scored record file (`prompt_id`, `prompt`; the
//! record's own `id` is then not the prompt's).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use adasamp_curate::prompt::PromptRecord;
use serde_json::Value;

use crate::error::{EvalError, OverlapHit, OverlapKind, Result};

/// A prompt's text for comparison: lower-cased, every run of whitespace one space, trimmed.
pub fn normalise(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One training prompt: its id and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainPrompt {
    /// The prompt id (`prompt_id`, else `id`).
    pub id: String,
    /// The prompt text.
    pub text: String,
}

/// A JSON value as an id: a string, or a number's text.
fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the training prompts of one file (see the module doc): one per line, duplicates kept
/// (a candidate file repeats each prompt per pipeline and seed). Errors name the file, the line
/// and the field.
pub fn read_train_prompts(path: &Path) -> Result<Vec<TrainPrompt>> {
    let text = std::fs::read_to_string(path).map_err(EvalError::io(path))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| EvalError::BadLine {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not a JSON object ({e})")))?;
        let Value::Object(obj) = v else {
            return Err(bad("not a JSON object".into()));
        };
        let id = match (obj.get("prompt_id"), obj.get("id")) {
            (Some(v), _) => id_text(v).ok_or_else(|| {
                bad(format!(
                    "field `prompt_id`: expected a string or number, got {v}"
                ))
            })?,
            (None, Some(v)) => id_text(v)
                .ok_or_else(|| bad(format!("field `id`: expected a string or number, got {v}")))?,
            (None, None) => return Err(bad("field `id` (or `prompt_id`): missing".into())),
        };
        let text = match obj.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(bad(format!(
                    "field `prompt`: expected a string, got {other}"
                )))
            }
            None => return Err(bad("field `prompt`: missing".into())),
        };
        out.push(TrainPrompt { id, text });
    }
    Ok(out)
}

/// Every eval prompt that is a training prompt of `train` (file and its prompts), by id or by
/// normalised text; one hit per eval prompt (the id match first), in eval order.
pub fn find_overlap(
    eval: &[PromptRecord],
    train: &[(PathBuf, Vec<TrainPrompt>)],
) -> Vec<OverlapHit> {
    let mut by_id: HashMap<&str, &Path> = HashMap::new();
    let mut by_text: HashMap<String, (&str, &Path)> = HashMap::new();
    for (file, prompts) in train {
        for p in prompts {
            by_id.entry(p.id.as_str()).or_insert(file);
            by_text
                .entry(normalise(&p.text))
                .or_insert((p.id.as_str(), file));
        }
    }
    let mut hits = Vec::new();
    for e in eval {
        if let Some(file) = by_id.get(e.id.as_str()) {
            hits.push(OverlapHit {
                eval_id: e.id.clone(),
                train_id: e.id.clone(),
                train_file: file.to_path_buf(),
                by: OverlapKind::Id,
            });
        } else if let Some((id, file)) = by_text.get(&normalise(&e.prompt)) {
            hits.push(OverlapHit {
                eval_id: e.id.clone(),
                train_id: id.to_string(),
                train_file: file.to_path_buf(),
                by: OverlapKind::Text,
            });
        }
    }
    hits
}

/// Reads every training file and refuses any overlap with `eval` ([`EvalError::Overlap`]
/// naming every overlapping eval prompt).
pub fn check_disjoint(eval: &[PromptRecord], train_files: &[PathBuf]) -> Result<()> {
    let train = train_files
        .iter()
        .map(|f| Ok((f.clone(), read_train_prompts(f)?)))
        .collect::<Result<Vec<_>>>()?;
    let hits = find_overlap(eval, &train);
    if hits.is_empty() {
        Ok(())
    } else {
        Err(EvalError::Overlap(hits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adasamp_curate::prompt::parse_prompts;

    fn eval() -> Vec<PromptRecord> {
        parse_prompts(
            "{\"id\": \"a\", \"prompt\": \"Write a poem.\"}\n\
             {\"id\": \"b\", \"prompt\": \"Name  the capital\\nof France.\"}\n\
             {\"id\": 7, \"prompt\": \"Count to three.\"}\n",
            Path::new("eval.jsonl"),
        )
        .unwrap()
    }

    #[test]
    fn normalisation_ignores_case_and_spacing() {
        assert_eq!(
            normalise("  Name  the\tCapital\nof France. "),
            "name the capital of france."
        );
        assert_ne!(normalise("a b"), normalise("ab"));
    }

    #[test]
    fn overlap_by_id_and_by_text_is_refused_naming_the_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let prompts = dir.path().join("train.jsonl");
        std::fs::write(
            &prompts,
            "{\"id\": \"x\", \"prompt\": \"name the capital of FRANCE.\"}\n\n{\"id\": \"y\", \"prompt\": \"Other.\"}\n",
        )
        .unwrap();
        let cands = dir.path().join("cands.jsonl");
        // a candidate record: its own id is not the prompt's; prompt_id is
        std::fs::write(
            &cands,
            "{\"id\": \"a/t07/s0\", \"prompt_id\": 7, \"prompt\": \"Something else.\", \"generation\": \"g\"}\n",
        )
        .unwrap();
        let e = check_disjoint(&eval(), &[prompts.clone(), cands.clone()]).unwrap_err();
        let EvalError::Overlap(hits) = &e else {
            panic!("{e}")
        };
        assert_eq!(hits.len(), 2, "{e}");
        assert_eq!(
            (hits[0].eval_id.as_str(), hits[0].by),
            ("b", OverlapKind::Text)
        );
        assert_eq!(hits[0].train_id, "x");
        assert_eq!(
            (hits[1].eval_id.as_str(), hits[1].by),
            ("7", OverlapKind::Id)
        );
        let text = e.to_string();
        assert!(
            text.contains("2 eval prompt(s)") && text.contains("`b`") && text.contains("`7`"),
            "{text}"
        );
        assert!(text.contains("nothing was generated"), "{text}");
        // disjoint files pass
        assert!(check_disjoint(&eval()[..1], &[prompts, cands]).is_ok());
    }

    #[test]
    fn malformed_training_lines_name_file_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.jsonl");
        for (text, want) in [
            ("{\"id\": \"a\"}\n", "field `prompt`: missing"),
            (
                "{\"prompt\": \"p\"}\n",
                "field `id` (or `prompt_id`): missing",
            ),
            ("{\"id\": [1], \"prompt\": \"p\"}\n", "field `id`"),
            ("[1]\n", "not a JSON object"),
            ("{\"id\": \"a\", \"prompt\": \"p\"}\n{oops\n", "t.jsonl:2"),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = read_train_prompts(&f).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
