//! Candidate records: one generation of a prompt with how it was sampled, one JSON object per line
//! (JSONL). `generate` writes them; training reads them; the curation pipeline adds fields (labels)
//! and writes them back — fields this type does not know are kept in [`CandidateRecord::extra`]
//! and written out again, so a read-modify-write loses nothing.
//!
//! Reading names the file, the 1-based line and the field at fault. A last line without its
//! newline is what a killed writer leaves behind: [`read_jsonl`] accepts it only when it is a whole
//! record, and [`resume_jsonl`] cuts it off before appending (the generator writes it again), so
//! every record ends up in the file exactly once.

use std::io::Write;
use std::path::{Path, PathBuf};

use adasamp_sampling::{PipelineSpec, Sample};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::sequence::{FinishReason, Usage};

/// How a record's generation was sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerInfo {
    /// The pipeline's name.
    pub name: String,
    /// The pipeline itself.
    pub config: PipelineSpec,
    /// Fields this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One candidate record (one line of a JSONL file). Optional fields are left out when absent,
/// except `system_prompt`, written as `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    /// The record's id (`generate` writes `<prompt id>-s<k>`); a number is read as its text.
    #[serde(
        default,
        deserialize_with = "id_as_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// The user prompt, before any chat template.
    pub prompt: String,
    /// The system prompt, if any.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// The prompt went to the model as is, without the chat template.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
    /// The generated text.
    pub generation: String,
    /// The generated token ids (replaying them needs no re-tokenization of `generation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_tokens: Option<Vec<u32>>,
    /// The sampling pipeline.
    pub sampler_info: SamplerInfo,
    /// The sampling seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Why the generation ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Per generated token: the chosen token, its probability and the top tokens of the final
    /// distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Sample>>,
    /// Fields this version does not know (e.g. labels added by curation), kept as they were.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A record with the 1-based line it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberedRecord {
    /// 1-based line number in the file.
    pub line: usize,
    /// The record.
    pub record: CandidateRecord,
}

impl NumberedRecord {
    /// The record's id, or `line<N>` when it has none.
    pub fn id(&self) -> String {
        self.record
            .id
            .clone()
            .unwrap_or_else(|| format!("line{}", self.line))
    }
}

/// What went wrong reading or writing candidate records. `origin` names the file (or the text's
/// source); `line` is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read, truncated or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a JSON object.
    #[error("{origin}:{line}: not a JSON object: {reason}")]
    NotAnObject {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The parser's message, or what the line holds instead.
        reason: String,
    },
    /// A field is missing or of the wrong type.
    #[error("{origin}:{line}: field `{field}`: {reason}")]
    Field {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The field (dotted for nested fields, e.g. `sampler_info.config`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The last line has no newline and is not a whole record: a writer was interrupted.
    #[error(
        "{origin}:{line}: the last line is incomplete (no newline and not a whole record; \
         the writer was interrupted)"
    )]
    TornLastLine {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
    },
}

/// Reads an id given as a string or a number (as its text); `null` is no id.
fn id_as_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

/// Checks that `obj[field]`, when present, reads as a `T`.
fn check<T: DeserializeOwned>(obj: &Map<String, Value>, field: &str) -> Result<(), String> {
    match obj.get(field) {
        None => Ok(()),
        Some(v) => serde_json::from_value::<T>(v.clone())
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// The first field of `obj` that is missing or does not read as its type, with the reason
/// (used to name the field when a whole record fails to read).
fn field_at_fault(obj: &Map<String, Value>) -> Option<(String, String)> {
    for required in ["prompt", "generation", "sampler_info"] {
        if !obj.contains_key(required) {
            return Some((required.into(), "missing".into()));
        }
    }
    if let Some(Value::Object(info)) = obj.get("sampler_info") {
        if !info.contains_key("config") {
            return Some(("sampler_info.config".into(), "missing".into()));
        }
        let nested = [
            ("sampler_info.name", check::<String>(info, "name")),
            ("sampler_info.config", check::<PipelineSpec>(info, "config")),
        ];
        for (field, r) in nested {
            if let Err(reason) = r {
                return Some((field.into(), reason));
            }
        }
    }
    if let Some(Value::Array(tokens)) = obj.get("generation_tokens") {
        for (i, t) in tokens.iter().enumerate() {
            if t.as_u64().and_then(|x| u32::try_from(x).ok()).is_none() {
                return Some((
                    format!("generation_tokens[{i}]"),
                    format!("expected a token id (u32), got {t}"),
                ));
            }
        }
    }
    let fields = [
        ("id", check::<IdField>(obj, "id")),
        ("prompt", check::<String>(obj, "prompt")),
        (
            "system_prompt",
            check::<Option<String>>(obj, "system_prompt"),
        ),
        ("raw", check::<bool>(obj, "raw")),
        ("generation", check::<String>(obj, "generation")),
        (
            "generation_tokens",
            check::<Option<Vec<u32>>>(obj, "generation_tokens"),
        ),
        ("sampler_info", check::<SamplerInfo>(obj, "sampler_info")),
        ("seed", check::<Option<u64>>(obj, "seed")),
        (
            "finish_reason",
            check::<Option<FinishReason>>(obj, "finish_reason"),
        ),
        ("usage", check::<Option<Usage>>(obj, "usage")),
        ("logprobs", check::<Option<Vec<Sample>>>(obj, "logprobs")),
    ];
    fields
        .into_iter()
        .find_map(|(field, r)| r.err().map(|reason| (field.to_string(), reason)))
}

/// The `id` field alone (for [`field_at_fault`]).
#[derive(Deserialize)]
struct IdField(
    #[serde(deserialize_with = "id_as_text")]
    #[allow(dead_code)]
    Option<String>,
);

/// Parses one line (`origin` and `line` name it in errors).
pub fn parse_line(text: &str, origin: &str, line: usize) -> Result<CandidateRecord, RecordError> {
    let not_object = |reason: String| RecordError::NotAnObject {
        origin: origin.to_string(),
        line,
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| not_object(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(not_object(format!("got {value}")));
    };
    let fault = |field: String, reason: String| RecordError::Field {
        origin: origin.to_string(),
        line,
        field,
        reason,
    };
    serde_json::from_value(Value::Object(obj.clone())).map_err(|e| match field_at_fault(&obj) {
        Some((field, reason)) => fault(field, reason),
        None => fault("(record)".into(), e.to_string()),
    })
}

/// Parses JSONL text (`origin` names it in errors): one record per non-blank line. A last line
/// without a newline that is not a whole record is [`RecordError::TornLastLine`].
pub fn parse_jsonl(text: &str, origin: &str) -> Result<Vec<NumberedRecord>, RecordError> {
    let terminated = text.ends_with('\n');
    let n_lines = text.lines().count();
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line = i + 1;
        match parse_line(l, origin, line) {
            Ok(record) => out.push(NumberedRecord { line, record }),
            Err(RecordError::NotAnObject { .. }) if !terminated && line == n_lines => {
                return Err(RecordError::TornLastLine {
                    origin: origin.to_string(),
                    line,
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reads a JSONL file of records ([`parse_jsonl`]).
pub fn read_jsonl(path: &Path) -> Result<Vec<NumberedRecord>, RecordError> {
    let text = std::fs::read_to_string(path).map_err(|source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_jsonl(&text, &path.display().to_string())
}

/// The complete records of a file about to be appended to.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    /// Every record of a complete (newline-terminated) line.
    pub records: Vec<NumberedRecord>,
    /// Whether an unterminated last line was cut off the file.
    pub dropped_torn_line: bool,
}

/// Prepares `path` for appending records after an interrupted run: cuts off an unterminated last
/// line (a whole record without its newline included: the writer writes it again), then reads
/// every remaining line, which must each be a record. A missing file has no records.
pub fn resume_jsonl(path: &Path) -> Result<Resumed, RecordError> {
    let io = |source| RecordError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Bytes, not text: a writer killed mid-line may have cut a character in two.
    let bytes = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Resumed {
                records: Vec::new(),
                dropped_torn_line: false,
            })
        }
        Err(e) => return Err(io(e)),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let dropped_torn_line = complete < bytes.len();
    if dropped_torn_line {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io)?;
        f.set_len(complete as u64).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    let text = std::str::from_utf8(&bytes[..complete]).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ))
    })?;
    Ok(Resumed {
        records: parse_jsonl(text, &path.display().to_string())?,
        dropped_torn_line,
    })
}

/// Writes `record` as one line (JSON and its newline in a single write), then flushes: an
/// interrupted writer leaves at most one unterminated line.
pub fn write_record(out: &mut dyn Write, record: &CandidateRecord) -> std::io::Result<()> {
    let mut line = serde_json::to_string(record).map_err(std::io::Error::other)?;
    line.push('\n');
    out.write_all(line.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"id":"a-s0","prompt":"p","system_prompt":null,"generation":"g","generation_tokens":[1,2],"sampler_info":{"name":"x","config":{"name":"x","weight":1.0,"processors":[{"name":"min_p","params":{"min_p":0.1}}]}},"seed":3,"finish_reason":"eos","usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6},"logprobs":[{"token":1,"prob":0.1,"logprob":-2.3025851,"top":[{"id":1,"prob":0.1,"logprob":-2.3025851}]},{"token":2,"prob":1.0,"logprob":0.0,"top":[]}]}"#;

    #[test]
    fn round_trip_is_byte_exact() {
        let r = parse_line(GOOD, "f", 1).unwrap();
        assert_eq!(r.id.as_deref(), Some("a-s0"));
        assert_eq!(r.finish_reason, Some(FinishReason::Eos));
        assert_eq!(serde_json::to_string(&r).unwrap(), GOOD);
    }

    #[test]
    fn unknown_fields_survive_read_modify_write() {
        let with = GOOD.replacen(
            r#""prompt":"p""#,
            r#""label":{"score":0.5,"by":"judge"},"prompt":"p""#,
            1,
        );
        let with = with.replacen(
            r#""name":"x","config""#,
            r#""name":"x","origin":7,"config""#,
            1,
        );
        let mut r = parse_line(&with, "f", 1).unwrap();
        assert_eq!(r.extra["label"]["by"], "judge");
        assert_eq!(r.sampler_info.extra["origin"], 7);
        r.extra.insert("curated".into(), Value::Bool(true));
        let mut buf = Vec::new();
        write_record(&mut buf, &r).unwrap();
        let back = parse_line(std::str::from_utf8(&buf).unwrap().trim_end(), "f", 1).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.extra["label"]["score"], 0.5);
        assert_eq!(back.extra["curated"], true);
        assert_eq!(back.sampler_info.extra["origin"], 7);
    }

    #[test]
    fn minimal_records_and_numeric_ids() {
        let r = parse_line(
            r#"{"id":12,"prompt":"p","generation":"g","sampler_info":{"name":"x","config":{"name":"x"}}}"#,
            "f",
            1,
        )
        .unwrap();
        assert_eq!(r.id.as_deref(), Some("12"));
        assert_eq!(r.system_prompt, None);
        assert_eq!(r.generation_tokens, None);
        assert!(!r.raw);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""system_prompt":null"#), "{text}");
        assert!(!text.contains("raw") && !text.contains("seed"), "{text}");
    }

    #[test]
    fn malformed_lines_name_file_line_and_field() {
        let cases = [
            ("{not json".to_string(), "f.jsonl:2: not a JSON object"),
            ("[1]".to_string(), "f.jsonl:2: not a JSON object"),
            (
                GOOD.replace(r#""prompt":"p","#, ""),
                "f.jsonl:2: field `prompt`: missing",
            ),
            (
                GOOD.replace(r#""generation":"g""#, r#""raw":"yes","generation":"g""#),
                "f.jsonl:2: field `raw`:",
            ),
            (
                GOOD.replace(r#""generation":"g""#, r#""generation":5"#),
                "f.jsonl:2: field `generation`: invalid type",
            ),
            (
                GOOD.replace("[1,2]", "[1,-2]"),
                "f.jsonl:2: field `generation_tokens[1]`",
            ),
            (
                GOOD.replace(r#""sampler_info""#, r#""info""#),
                "f.jsonl:2: field `sampler_info`: missing",
            ),
            (
                GOOD.replace(r#""config""#, r#""cfg""#),
                "f.jsonl:2: field `sampler_info.config`: missing",
            ),
            (
                GOOD.replace(r#""processors""#, r#""stages""#),
                "f.jsonl:2: field `sampler_info.config`: unknown field `stages`",
            ),
            (
                GOOD.replace(r#""eos""#, r#""bored""#),
                "f.jsonl:2: field `finish_reason`",
            ),
            (
                GOOD.replace(r#""a-s0""#, "[1]"),
                "f.jsonl:2: field `id`: expected a string or a number",
            ),
        ];
        for (line, want) in cases {
            let err = parse_jsonl(&format!("{GOOD}\n{line}\n"), "f.jsonl")
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "`{err}` lacks `{want}`");
        }
    }

    #[test]
    fn every_field_of_a_wrong_type_is_named() {
        let Value::Object(full) = serde_json::from_str::<Value>(GOOD).unwrap() else {
            unreachable!()
        };
        for key in full.keys() {
            let mut obj = full.clone();
            obj.insert(key.clone(), serde_json::json!({"wrong": [true]}));
            let line = Value::Object(obj).to_string();
            match parse_line(&line, "f", 1) {
                Err(RecordError::Field { field, .. }) => {
                    assert!(field.starts_with(key.as_str()), "{key}: named {field}")
                }
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn blank_lines_are_skipped_and_lines_numbered() {
        let recs = parse_jsonl(&format!("{GOOD}\n\n{GOOD}\n"), "f").unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].line, recs[1].line), (1, 3));
    }

    #[test]
    fn torn_last_line() {
        let torn = &GOOD[..GOOD.len() / 2];
        // reading: a torn tail is its own error, naming the line
        let err = parse_jsonl(&format!("{GOOD}\n{torn}"), "f.jsonl").unwrap_err();
        assert!(
            matches!(err, RecordError::TornLastLine { line: 2, .. }),
            "{err}"
        );
        // the same text terminated is a malformed line, not a torn one
        let err = parse_jsonl(&format!("{GOOD}\n{torn}\n"), "f.jsonl").unwrap_err();
        assert!(
            matches!(err, RecordError::NotAnObject { line: 2, .. }),
            "{err}"
        );
        // a whole record without its newline reads
        assert_eq!(
            parse_jsonl(&format!("{GOOD}\n{GOOD}"), "f").unwrap().len(),
            2
        );
    }

    #[test]
    fn resume_cuts_the_torn_line_and_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let none = resume_jsonl(&p).unwrap();
        assert!(none.records.is_empty() && !none.dropped_torn_line);
        std::fs::write(&p, format!("{GOOD}\n{}", &GOOD[..40])).unwrap();
        let r = resume_jsonl(&p).unwrap();
        assert!(r.dropped_torn_line);
        assert_eq!(r.records.len(), 1);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), format!("{GOOD}\n"));
        // appending after the cut gives two whole records, each once
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let mut second = r.records[0].record.clone();
        second.id = Some("a-s1".into());
        write_record(&mut f, &second).unwrap();
        let all = read_jsonl(&p).unwrap();
        let ids: Vec<_> = all.iter().map(|r| r.record.id.clone().unwrap()).collect();
        assert_eq!(ids, ["a-s0", "a-s1"]);
        // a whole record without its newline is cut too (and written again by the caller)
        std::fs::write(&p, format!("{GOOD}\n{GOOD}")).unwrap();
        let r = resume_jsonl(&p).unwrap();
        assert!(r.dropped_torn_line);
        assert_eq!(r.records.len(), 1);
        // a line cut inside a character (a kill mid-write) is cut off too
        let accented = GOOD.replace(r#""generation":"g""#, r#""generation":"é""#);
        let cut = accented.find('é').unwrap() + 1;
        let mut bytes = format!("{GOOD}\n").into_bytes();
        bytes.extend_from_slice(&accented.as_bytes()[..cut]);
        std::fs::write(&p, bytes).unwrap();
        let r = resume_jsonl(&p).unwrap();
        assert!(r.dropped_torn_line);
        assert_eq!(r.records.len(), 1);
        // a malformed complete line refuses the append
        std::fs::write(&p, format!("{GOOD}\nnot json\n")).unwrap();
        let err = resume_jsonl(&p).unwrap_err().to_string();
        assert!(err.contains("out.jsonl:2"), "{err}");
    }
}
