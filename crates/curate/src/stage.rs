//! What every curation stage shares: the identity of a candidate, reading input records,
//! resuming an output file after a kill (every record exactly once, no partial line), a progress
//! bar with an ETA, and the end-of-run report of what was written and what was dropped and why.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use adasamp_engine::files::write_atomic;
use adasamp_engine::record::{read_jsonl, resume_jsonl, write_record, CandidateRecord};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::error::{CurateError, Result};
use crate::labels;

/// What identifies a candidate: its prompt, its pipeline and its seed. A curated file holds
/// each key at most once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CandidateKey {
    /// The prompt's id ([`labels::PROMPT_ID`]).
    pub prompt_id: String,
    /// The pipeline's name (`sampler_info.name`).
    pub pipeline: String,
    /// The sampling seed.
    pub seed: u64,
}

impl CandidateKey {
    /// The key of a record; an error names the record and the missing field.
    pub fn of(r: &CandidateRecord) -> Result<Self> {
        let id = record_name(r);
        let prompt_id = match r.extra.get(labels::PROMPT_ID) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            other => {
                return Err(CurateError::BadField {
                    id,
                    field: labels::PROMPT_ID.into(),
                    message: format!("expected the prompt's id (a string), got {other:?}"),
                })
            }
        };
        let seed = r.seed.ok_or_else(|| CurateError::BadField {
            id,
            field: "seed".into(),
            message: "missing".into(),
        })?;
        Ok(Self {
            prompt_id,
            pipeline: r.sampler_info.name.clone(),
            seed,
        })
    }

    /// The record id `candidates` gives this key: `<prompt id>/<pipeline>/s<seed>`.
    pub fn record_id(&self) -> String {
        format!("{}/{}/s{}", self.prompt_id, self.pipeline, self.seed)
    }
}

/// A record's name for messages: its id, else `(no id)`.
pub fn record_name(r: &CandidateRecord) -> String {
    r.id.clone().unwrap_or_else(|| "(no id)".into())
}

/// Reads every record of a JSONL file, in file order (errors name file, line and field).
pub fn read_records(path: &Path) -> Result<Vec<CandidateRecord>> {
    Ok(read_jsonl(path)?.into_iter().map(|n| n.record).collect())
}

/// An output JSONL file opened for appending, after cutting off what a killed run left
/// half-written.
#[derive(Debug)]
pub struct Output {
    path: PathBuf,
    file: File,
    written: usize,
}

/// An output file reopened: the handle and what an earlier run already wrote.
#[derive(Debug)]
pub struct Reopened {
    /// Appends after the complete records.
    pub output: Output,
    /// The complete records already in the file, in order.
    pub done: Vec<CandidateRecord>,
    /// Whether an unterminated last line (a killed writer's) was cut off.
    pub dropped_torn_line: bool,
}

/// Opens `path` for appending records: a missing file is created; an existing one keeps its
/// complete records (returned, so the stage skips their work) and loses only an unterminated
/// last line, which the stage writes again.
pub fn reopen_output(path: &Path) -> Result<Reopened> {
    let resumed = resume_jsonl(path)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(CurateError::io(path))?;
    Ok(Reopened {
        output: Output {
            path: path.to_path_buf(),
            file,
            written: 0,
        },
        done: resumed.records.into_iter().map(|n| n.record).collect(),
        dropped_torn_line: resumed.dropped_torn_line,
    })
}

impl Output {
    /// Appends one record as one whole line, flushed (a kill leaves at most one torn line).
    pub fn append(&mut self, r: &CandidateRecord) -> Result<()> {
        write_record(&mut self.file, r).map_err(CurateError::io(&self.path))?;
        self.written += 1;
        Ok(())
    }

    /// Records appended through this handle.
    pub fn written(&self) -> usize {
        self.written
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An output file of a stage that writes whole groups of records, reopened: see
/// [`reopen_group_output`].
#[derive(Debug)]
pub struct ReopenedGroups<G> {
    /// Appends after the complete records.
    pub output: Output,
    /// The groups whose every expected record is in the file.
    pub complete: BTreeSet<G>,
    /// Records of complete groups already in the file.
    pub already_done: usize,
    /// Records of incomplete groups removed from the file (a kill in the middle of writing a
    /// group); the stage computes those groups again.
    pub removed_partial: usize,
    /// Whether an unterminated last line (a killed writer's) was cut off.
    pub dropped_torn_line: bool,
}

/// Opens `path` for a stage that labels whole groups of records and writes each group's records
/// together: `expected` maps each group to its records' keys, `group_of` gives a key's group.
/// After [`reopen_output`]'s cut of a torn line, a group with only some of its records in the
/// file (a kill between two of them) has those records removed — the file is rewritten
/// atomically — so the stage labels it again, whole; records of groups not in `expected` are
/// kept as they are.
pub fn reopen_group_output<G: Ord + Clone>(
    path: &Path,
    expected: &BTreeMap<G, BTreeSet<CandidateKey>>,
    group_of: impl Fn(&CandidateKey) -> G,
) -> Result<ReopenedGroups<G>> {
    let reopened = reopen_output(path)?;
    let mut present: BTreeMap<G, BTreeSet<CandidateKey>> = BTreeMap::new();
    let mut keys = Vec::with_capacity(reopened.done.len());
    for r in &reopened.done {
        let k = CandidateKey::of(r)?;
        present.entry(group_of(&k)).or_default().insert(k.clone());
        keys.push(k);
    }
    let complete: BTreeSet<G> = expected
        .iter()
        .filter(|(g, want)| present.get(*g).is_some_and(|have| want.is_subset(have)))
        .map(|(g, _)| g.clone())
        .collect();
    let partial = |k: &CandidateKey| {
        let g = group_of(k);
        expected.contains_key(&g) && !complete.contains(&g)
    };
    let removed_partial = keys.iter().filter(|k| partial(k)).count();
    let already_done = keys
        .iter()
        .filter(|k| complete.contains(&group_of(k)))
        .count();
    let output = if removed_partial == 0 {
        reopened.output
    } else {
        drop(reopened.output);
        // The lines kept as they are, byte for byte (a parse and re-serialisation of a float
        // may move it by one ulp); after the torn-line cut every non-blank line is a record,
        // in the order of `keys`.
        let old = std::fs::read_to_string(path).map_err(CurateError::io(path))?;
        let mut text = String::with_capacity(old.len());
        let lines = old.lines().filter(|l| !l.trim().is_empty());
        for (line, k) in lines.zip(&keys) {
            if !partial(k) {
                text.push_str(line);
                text.push('\n');
            }
        }
        write_atomic(path, text.as_bytes())?;
        reopen_output(path)?.output
    };
    Ok(ReopenedGroups {
        output,
        complete,
        already_done,
        removed_partial,
        dropped_torn_line: reopened.dropped_torn_line,
    })
}

/// A progress bar over `len` units of work named `unit`, with rate and ETA; drawn on standard
/// error only when it is a terminal.
pub fn progress(len: usize, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    let template =
        format!("{{bar:30}} {{pos}}/{{len}} {unit}  {{msg}}  [{{elapsed_precise}} < {{eta}}]");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// What a stage did: records read, already done by an earlier run, written now, and dropped
/// (by reason), plus free-form notes (e.g. groups too small to score).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StageReport {
    /// The stage's name (`candidates`, `label quality`, …).
    pub stage: String,
    /// Where it wrote.
    pub output: PathBuf,
    /// Records (or work items) read from the input.
    pub read: usize,
    /// Records an earlier, interrupted run had already written.
    pub already_done: usize,
    /// Records written by this run.
    pub written: usize,
    /// Records not written, counted by reason.
    pub dropped: BTreeMap<String, usize>,
    /// Anything else the user should know.
    pub notes: Vec<String>,
}

impl StageReport {
    /// An empty report of `stage` writing `output`.
    pub fn new(stage: &str, output: &Path) -> Self {
        Self {
            stage: stage.into(),
            output: output.to_path_buf(),
            ..Self::default()
        }
    }

    /// Counts `n` records dropped for `reason`.
    pub fn drop(&mut self, reason: impl Into<String>, n: usize) {
        if n > 0 {
            *self.dropped.entry(reason.into()).or_default() += n;
        }
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Total records dropped.
    pub fn dropped_total(&self) -> usize {
        self.dropped.values().sum()
    }
}

impl fmt::Display for StageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: read {}, wrote {} to {}",
            self.stage,
            self.read,
            self.written,
            self.output.display()
        )?;
        if self.already_done > 0 {
            write!(
                f,
                " ({} already there from an earlier run)",
                self.already_done
            )?;
        }
        if self.dropped.is_empty() {
            write!(f, "; dropped none")?;
        } else {
            write!(f, "; dropped {}:", self.dropped_total())?;
            for (reason, n) in &self.dropped {
                write!(f, "\n  {n} × {reason}")?;
            }
        }
        for n in &self.notes {
            write!(f, "\n  note: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use adasamp_engine::record::SamplerInfo;
    use adasamp_sampling::PipelineSpec;
    use serde_json::Map;

    /// A minimal record of `(prompt_id, pipeline, seed)` (for other modules' tests too).
    pub(crate) fn rec(prompt_id: &str, pipeline: &str, seed: u64) -> CandidateRecord {
        let mut extra = Map::new();
        extra.insert(labels::PROMPT_ID.into(), prompt_id.into());
        let key = CandidateKey {
            prompt_id: prompt_id.into(),
            pipeline: pipeline.into(),
            seed,
        };
        CandidateRecord {
            id: Some(key.record_id()),
            prompt: "p".into(),
            system_prompt: None,
            raw: false,
            generation: "g".into(),
            generation_tokens: None,
            sampler_info: SamplerInfo {
                name: pipeline.into(),
                config: PipelineSpec {
                    name: pipeline.into(),
                    weight: 1.0,
                    processors: Vec::new(),
                },
                extra: Map::new(),
            },
            seed: Some(seed),
            finish_reason: None,
            usage: None,
            logprobs: None,
            extra,
        }
    }

    #[test]
    fn key_of_a_record_and_its_errors() {
        let r = rec("q1", "t0.7", 3);
        let k = CandidateKey::of(&r).unwrap();
        assert_eq!(k.record_id(), "q1/t0.7/s3");
        let mut bad = r.clone();
        bad.extra.clear();
        let e = CandidateKey::of(&bad).unwrap_err().to_string();
        assert!(
            e.contains("q1/t0.7/s3") && e.contains(labels::PROMPT_ID),
            "{e}"
        );
        let mut bad = r;
        bad.seed = None;
        assert!(CandidateKey::of(&bad)
            .unwrap_err()
            .to_string()
            .contains("seed"));
    }

    #[test]
    fn reopen_cuts_a_torn_line_and_appends_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        {
            let mut o = reopen_output(&path).unwrap();
            assert!(o.done.is_empty() && !o.dropped_torn_line);
            o.output.append(&rec("a", "p", 0)).unwrap();
            o.output.append(&rec("a", "p", 1)).unwrap();
            assert_eq!(o.output.written(), 2);
        }
        // A killed writer's half line.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"id\": \"a/p/s2\", \"prom");
        std::fs::write(&path, text).unwrap();
        let mut o = reopen_output(&path).unwrap();
        assert!(o.dropped_torn_line);
        assert_eq!(o.done.len(), 2);
        o.output.append(&rec("a", "p", 2)).unwrap();
        let back = read_records(&path).unwrap();
        let seeds: Vec<_> = back.iter().map(|r| r.seed.unwrap()).collect();
        assert_eq!(seeds, [0, 1, 2]);
    }

    #[test]
    fn reopening_a_grouped_output_removes_partial_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let group = |k: &CandidateKey| (k.prompt_id.clone(), k.seed);
        let mut expected: BTreeMap<(String, u64), BTreeSet<CandidateKey>> = BTreeMap::new();
        for (p, pipe, s) in [("a", "x", 0), ("a", "y", 0), ("b", "x", 0), ("b", "y", 0)] {
            let k = CandidateKey::of(&rec(p, pipe, s)).unwrap();
            expected.entry(group(&k)).or_default().insert(k);
        }
        {
            let mut o = reopen_output(&path).unwrap().output;
            // group a whole, group b half (killed in between), and a record of another group
            o.append(&rec("a", "x", 0)).unwrap();
            o.append(&rec("a", "y", 0)).unwrap();
            o.append(&rec("z", "x", 9)).unwrap();
            o.append(&rec("b", "x", 0)).unwrap();
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"torn");
        std::fs::write(&path, text).unwrap();
        let mut r = reopen_group_output(&path, &expected, group).unwrap();
        assert!(r.dropped_torn_line);
        assert_eq!(r.removed_partial, 1);
        assert_eq!(r.already_done, 2);
        assert_eq!(
            r.complete.iter().cloned().collect::<Vec<_>>(),
            [("a".to_string(), 0)]
        );
        r.output.append(&rec("b", "x", 0)).unwrap();
        r.output.append(&rec("b", "y", 0)).unwrap();
        let ids: Vec<_> = read_records(&path)
            .unwrap()
            .into_iter()
            .map(|r| r.id.unwrap())
            .collect();
        assert_eq!(ids, ["a/x/s0", "a/y/s0", "z/x/s9", "b/x/s0", "b/y/s0"]);
        // reopened again: everything complete, nothing removed
        let r = reopen_group_output(&path, &expected, group).unwrap();
        assert_eq!(
            (r.removed_partial, r.already_done, r.complete.len()),
            (0, 4, 2)
        );
    }

    #[test]
    fn report_says_what_was_dropped() {
        let mut r = StageReport::new("verify", Path::new("clean.jsonl"));
        r.read = 10;
        r.written = 7;
        r.drop("prompt q3 lacks seed 1 of t0.7", 2);
        r.drop("duplicate q1/t0.7/s0", 1);
        r.drop("nothing", 0);
        let s = r.to_string();
        assert!(
            s.contains("read 10, wrote 7") && s.contains("dropped 3"),
            "{s}"
        );
        assert!(s.contains("2 × prompt q3") && !s.contains("nothing"), "{s}");
    }
}
