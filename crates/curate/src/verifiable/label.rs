//! The `label verify` stage: writes [`labels::VERIFIED`] (0 or 1) on every record whose
//! [`labels::CHECKS`] include `verifiable`, from its [`labels::DATASET`] and
//! [`labels::GROUND_TRUTH`]; every other record is copied unchanged.
//!
//! A record that asks for the check but lacks a dataset or ground truth, names an unknown
//! dataset, or has a malformed ground truth stops the stage with an error naming the record and
//! the field, before anything is written: such a record is a broken prompt file, and dropping
//! it would silently break the (prompt, seed) groups later stages score.
//!
//! Resumable: the output holds the input's records in input order, one flushed line each, so a
//! rerun after a kill checks that the output is a prefix of the input (same ids and generations)
//! and labels only the rest.

use std::collections::BTreeMap;
use std::path::Path;

use adasamp_engine::record::CandidateRecord;
use serde_json::Value;

use super::Task;
use crate::error::{CurateError, Result};
use crate::labels;
use crate::prompt::Check;
use crate::stage::{self, record_name, StageReport};

/// The stage's name in reports.
pub const STAGE: &str = "label verify";

/// The verifiable task of a record: `None` when its checks do not include `verifiable`.
pub fn task_of(r: &CandidateRecord) -> Result<Option<(String, Task)>> {
    let id = record_name(r);
    let bad = |field: &str, message: String| CurateError::BadField {
        id: id.clone(),
        field: field.into(),
        message,
    };
    let checks: Vec<Check> = match r.extra.get(labels::CHECKS) {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            bad(
                labels::CHECKS,
                format!("expected a list of \"diversity\" / \"verifiable\", got {v}: {e}"),
            )
        })?,
    };
    if !checks.contains(&Check::Verifiable) {
        return Ok(None);
    }
    let dataset = match r.extra.get(labels::DATASET) {
        Some(Value::String(s)) => s.clone(),
        other => {
            return Err(bad(
                labels::DATASET,
                format!(
                    "the record asks for the verifiable check but has no dataset name \
                     (gsm8k, math or ifeval): got {other:?}"
                ),
            ))
        }
    };
    let gt = match r.extra.get(labels::GROUND_TRUTH) {
        Some(v) if !v.is_null() => v,
        _ => {
            return Err(bad(
                labels::GROUND_TRUTH,
                "the record asks for the verifiable check but has no ground truth".into(),
            ))
        }
    };
    let task = Task::parse(&dataset, gt).map_err(|e| match e {
        super::VerifyError::UnknownDataset(_) => bad(labels::DATASET, e.to_string()),
        super::VerifyError::BadGroundTruth(_) => bad(labels::GROUND_TRUTH, e.to_string()),
    })?;
    Ok(Some((dataset, task)))
}

/// Labels `input` into `output` (see the module doc) and says what it did.
pub fn label_verified(input: &Path, output: &Path) -> Result<StageReport> {
    if input == output {
        return Err(CurateError::BadParameter {
            name: "output".into(),
            value: output.display().to_string(),
            message: "must differ from the input file".into(),
        });
    }
    let records = stage::read_records(input)?;
    // Every task first: a broken record stops the stage before anything is written.
    let tasks = records
        .iter()
        .map(task_of)
        .collect::<Result<Vec<Option<(String, Task)>>>>()?;

    let mut reopened = stage::reopen_output(output)?;
    let done = reopened.done.len();
    if done > records.len() {
        return Err(CurateError::BadParameter {
            name: "output".into(),
            value: output.display().to_string(),
            message: format!(
                "holds {done} records but the input has only {}: not an earlier run over this input",
                records.len()
            ),
        });
    }
    for (i, (old, new)) in reopened.done.iter().zip(&records).enumerate() {
        if old.id != new.id || old.generation != new.generation {
            return Err(CurateError::BadParameter {
                name: "output".into(),
                value: output.display().to_string(),
                message: format!(
                    "record {} is {} but the input's record {} is {}: not an earlier run over this input",
                    i + 1,
                    record_name(old),
                    i + 1,
                    record_name(new)
                ),
            });
        }
    }

    let mut report = StageReport::new(STAGE, output);
    report.read = records.len();
    report.already_done = done;
    if reopened.dropped_torn_line {
        report.note("cut a half-written last line left by an interrupted run; wrote it again");
    }
    let bar = stage::progress(records.len() - done, "records");
    let mut per_dataset: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut passed_through = 0usize;
    for (mut r, task) in records.into_iter().zip(tasks).skip(done) {
        match task {
            Some((dataset, task)) => {
                let score = task.score(&r.generation);
                r.extra.insert(labels::VERIFIED.into(), Value::from(score));
                let e = per_dataset.entry(dataset).or_default();
                e.0 += usize::from(score);
                e.1 += 1;
            }
            None => passed_through += 1,
        }
        reopened.output.append(&r)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    report.written = reopened.output.written();
    for (dataset, (correct, total)) in &per_dataset {
        report.note(format!("{dataset}: {correct} of {total} correct"));
    }
    if passed_through > 0 {
        report.note(format!(
            "{passed_through} records without the verifiable check copied unchanged"
        ));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use adasamp_engine::record::{write_record, SamplerInfo};
    use adasamp_sampling::PipelineSpec;
    use serde_json::{json, Map};

    fn rec(id: &str, generation: &str, extra: Value) -> CandidateRecord {
        let extra: Map<String, Value> = extra.as_object().cloned().unwrap_or_default();
        CandidateRecord {
            id: Some(id.into()),
            prompt: "p".into(),
            system_prompt: None,
            raw: false,
            generation: generation.into(),
            generation_tokens: None,
            sampler_info: SamplerInfo {
                name: "t1".into(),
                config: PipelineSpec {
                    name: "t1".into(),
                    weight: 1.0,
                    processors: Vec::new(),
                },
                extra: Map::new(),
            },
            seed: Some(0),
            finish_reason: None,
            usage: None,
            logprobs: None,
            extra,
        }
    }

    fn write(path: &Path, records: &[CandidateRecord]) {
        let mut f = std::fs::File::create(path).unwrap();
        for r in records {
            write_record(&mut f, r).unwrap();
        }
    }

    fn input() -> Vec<CandidateRecord> {
        let gsm = json!({"prompt_id": "g", "checks": ["verifiable"], "dataset": "gsm8k", "ground_truth": "18"});
        let ife = json!({"prompt_id": "i", "checks": ["verifiable", "diversity"], "dataset": "ifeval",
            "ground_truth": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}});
        vec![
            rec("g/t1/s0", "It is 18.", gsm.clone()),
            rec("g/t1/s1", "It is 17.", gsm),
            rec("i/t1/s0", "no commas", ife.clone()),
            rec("i/t1/s1", "yes, commas", ife),
            rec(
                "c/t1/s0",
                "a poem",
                json!({"prompt_id": "c", "checks": ["diversity"], "keep": 1}),
            ),
        ]
    }

    #[test]
    fn labels_verifiable_records_and_copies_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (inp, out) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        let recs = input();
        write(&inp, &recs);
        let report = label_verified(&inp, &out).unwrap();
        assert_eq!(
            (report.read, report.written, report.already_done),
            (5, 5, 0)
        );
        let got = stage::read_records(&out).unwrap();
        let verified: Vec<Option<&Value>> =
            got.iter().map(|r| r.extra.get(labels::VERIFIED)).collect();
        assert_eq!(
            verified,
            [
                Some(&json!(1)),
                Some(&json!(0)),
                Some(&json!(1)),
                Some(&json!(0)),
                None
            ]
        );
        assert_eq!(got[4], recs[4]);
        let text = report.to_string();
        assert!(
            text.contains("gsm8k: 1 of 2 correct") && text.contains("1 records without"),
            "{text}"
        );
    }

    #[test]
    fn resumes_after_a_kill_with_each_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let (inp, out) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        write(&inp, &input());
        label_verified(&inp, &out).unwrap();
        let full = std::fs::read_to_string(&out).unwrap();
        // A killed run: two whole lines and half of the third.
        let lines: Vec<&str> = full.lines().collect();
        let partial = format!("{}\n{}\n{}", lines[0], lines[1], &lines[2][..10]);
        std::fs::write(&out, partial).unwrap();
        let report = label_verified(&inp, &out).unwrap();
        assert_eq!((report.already_done, report.written), (2, 3));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), full);
        // Nothing left to do.
        let report = label_verified(&inp, &out).unwrap();
        assert_eq!((report.already_done, report.written), (5, 0));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), full);
    }

    #[test]
    fn refuses_an_output_from_another_input() {
        let dir = tempfile::tempdir().unwrap();
        let (inp, out) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        write(&inp, &input());
        write(&out, &[rec("other", "x", json!({}))]);
        let e = label_verified(&inp, &out).unwrap_err().to_string();
        assert!(e.contains("not an earlier run"), "{e}");
        assert!(label_verified(&inp, &inp).is_err());
    }

    #[test]
    fn broken_records_name_record_and_field_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (inp, out) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
        for (extra, field, words) in [
            (
                json!({"checks": ["verifiable"], "ground_truth": "1"}),
                labels::DATASET,
                "no dataset",
            ),
            (
                json!({"checks": ["verifiable"], "dataset": "gsm8k"}),
                labels::GROUND_TRUTH,
                "no ground truth",
            ),
            (
                json!({"checks": ["verifiable"], "dataset": "aime", "ground_truth": "1"}),
                labels::DATASET,
                "unknown dataset",
            ),
            (
                json!({"checks": ["verifiable"], "dataset": "gsm8k", "ground_truth": "none"}),
                labels::GROUND_TRUTH,
                "no number",
            ),
            (
                json!({"checks": "verifiable"}),
                labels::CHECKS,
                "expected a list",
            ),
        ] {
            let mut recs = input();
            recs.push(rec("bad/t1/s0", "x", extra));
            write(&inp, &recs);
            let e = label_verified(&inp, &out).unwrap_err().to_string();
            assert!(
                e.contains("bad/t1/s0") && e.contains(&format!("`{field}`")) && e.contains(words),
                "{e}"
            );
            assert!(!out.exists(), "nothing written before the error");
        }
    }
}
