//! `label diversity` end to end on small record files: labels per (prompt, pipeline) group,
//! single-generation groups written unlabelled and reported, duplicates dropped, and a resume
//! after a kill that left a torn line and a half-written group.

use std::path::Path;

use adasamp_curate::diversity::{bleu, label_diversity, log_floored, DiversityOptions};
use adasamp_curate::labels;
use adasamp_curate::stage::read_records;
use adasamp_engine::record::{CandidateRecord, SamplerInfo};
use adasamp_sampling::PipelineSpec;
use serde_json::{json, Map, Value};

fn rec(
    prompt_id: &str,
    pipeline: &str,
    seed: u64,
    generation: &str,
    checks: &[&str],
) -> CandidateRecord {
    let mut extra = Map::new();
    extra.insert(labels::PROMPT_ID.into(), prompt_id.into());
    extra.insert(labels::CHECKS.into(), json!(checks));
    extra.insert("kept_unknown_field".into(), json!({"x": 1}));
    CandidateRecord {
        id: Some(format!("{prompt_id}/{pipeline}/s{seed}")),
        prompt: format!("prompt {prompt_id}"),
        system_prompt: None,
        raw: false,
        generation: generation.into(),
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

fn write(path: &Path, records: &[CandidateRecord]) {
    let text: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

fn input() -> Vec<CandidateRecord> {
    let d = ["diversity"];
    vec![
        rec(
            "q1",
            "t0.7",
            0,
            "The sea was calm and the boat drifted slowly home.",
            &d,
        ),
        rec("q1", "greedy", 0, "Once upon a time there was a boat.", &d),
        rec(
            "q1",
            "t0.7",
            1,
            "A storm rose over the harbour; the sailors ran.",
            &d,
        ),
        rec("q1", "greedy", 1, "Once upon a time there was a boat.", &d),
        rec(
            "q2",
            "t0.7",
            0,
            "A single generation cannot be compared.",
            &d,
        ),
        rec(
            "q1",
            "t0.7",
            2,
            "The sea was calm, and the small boat drifted home.",
            &d,
        ),
        rec("q1", "greedy", 2, "Once upon a time there was a boat!", &d),
        rec("q3", "t0.7", 0, "42", &["verifiable"]),
        rec("q3", "t0.7", 1, "The answer is 42.", &["verifiable"]),
    ]
}

fn embedder_present() -> bool {
    let present = adasamp_curate::diversity::embed::DEFAULT_EMBEDDER_FILES
        .iter()
        .all(|m| adasamp_engine::fetch::cached_path(m).exists());
    if !present {
        eprintln!("note: the default embedder is absent; run `adasamp model fetch embedder` to enable this test");
    }
    present
}

fn num(r: &CandidateRecord, k: &str) -> Option<f64> {
    r.extra.get(k).and_then(Value::as_f64)
}

/// Equal up to JSON's round trip (serde_json's default float parsing may miss the last bit, and
/// a logarithm computed from a parsed value inherits that).
fn same(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() <= 1e-14 * b.abs().max(1.0))
}

/// The same records in the same order: every field equal, the labels up to JSON's round trip.
fn assert_same_records(a: &[CandidateRecord], b: &[CandidateRecord]) {
    let labels = [
        labels::SELF_BLEU,
        labels::LOG_SELF_BLEU,
        labels::EMBEDDING_ENTROPY,
        labels::LOG_EMBEDDING_ENTROPY,
    ];
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let (mut x2, mut y2) = (x.clone(), y.clone());
        for k in labels {
            match num(y, k) {
                Some(v) => assert!(same(num(x, k), v), "{:?} {k}", x.id),
                None => assert!(num(x, k).is_none(), "{:?} {k}", x.id),
            }
            x2.extra.remove(k);
            y2.extra.remove(k);
        }
        assert_eq!(x2, y2);
    }
}

#[test]
fn labels_groups_reports_small_ones_and_resumes_after_a_kill() {
    if !embedder_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    let mut records = input();
    records.push(records[0].clone()); // a duplicate
    write(&inp, &records);
    let opts = DiversityOptions::default();
    let report = label_diversity(&inp, &out, &opts, &mut |_| {}).unwrap();
    assert_eq!(
        (report.read, report.written, report.dropped_total()),
        (10, 9, 1)
    );
    let text = report.to_string();
    assert!(
        text.contains("q2/t0.7") && text.contains("duplicate q1/t0.7/s0"),
        "{text}"
    );

    let got = read_records(&out).unwrap();
    let ids: Vec<_> = got.iter().map(|r| r.id.clone().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "q1/t0.7/s0",
            "q1/t0.7/s1",
            "q1/t0.7/s2",
            "q1/greedy/s0",
            "q1/greedy/s1",
            "q1/greedy/s2",
            "q2/t0.7/s0",
            "q3/t0.7/s0",
            "q3/t0.7/s1"
        ]
    );
    // One value per group, on each member; self-BLEU is the library's.
    let t07: Vec<&str> = [0, 2, 5]
        .iter()
        .map(|&i| records[i].generation.as_str())
        .collect();
    let want = bleu::self_bleu(&t07).unwrap();
    for r in &got[0..3] {
        assert!(same(num(r, labels::SELF_BLEU), want));
        assert!(same(num(r, labels::LOG_SELF_BLEU), log_floored(want)));
        let h = num(r, labels::EMBEDDING_ENTROPY).unwrap();
        assert_eq!(
            num(r, labels::EMBEDDING_ENTROPY),
            num(&got[0], labels::EMBEDDING_ENTROPY)
        );
        assert!(h > 0.0 && h <= 3f64.log2(), "{h}");
        assert!(same(num(r, labels::LOG_EMBEDDING_ENTROPY), log_floored(h)));
        assert_eq!(r.extra["kept_unknown_field"], json!({"x": 1}));
    }
    // The greedy group is near-identical: higher self-BLEU, lower entropy.
    assert!(num(&got[3], labels::SELF_BLEU).unwrap() > want);
    assert!(
        num(&got[3], labels::EMBEDDING_ENTROPY).unwrap()
            < num(&got[0], labels::EMBEDDING_ENTROPY).unwrap()
    );
    // The single-generation group has no labels; the verifiable prompt's group has them.
    assert!(
        num(&got[6], labels::SELF_BLEU).is_none()
            && num(&got[6], labels::EMBEDDING_ENTROPY).is_none()
    );
    assert!(num(&got[7], labels::SELF_BLEU).is_some());
    let full = std::fs::read_to_string(&out).unwrap();

    // A kill in the middle of the greedy group: four whole lines and half of the fifth.
    let lines: Vec<&str> = full.lines().collect();
    let torn = format!(
        "{}\n{}",
        lines[..4].join("\n"),
        &lines[4][..lines[4].len() / 2]
    );
    std::fs::write(&out, torn).unwrap();
    let report = label_diversity(&inp, &out, &opts, &mut |_| {}).unwrap();
    assert_eq!((report.already_done, report.written), (4, 5));
    let resumed = read_records(&out).unwrap();
    assert_same_records(&resumed, &got);
    // The greedy group, written partly by each run, agrees with itself.
    for r in &resumed[4..6] {
        for k in [labels::SELF_BLEU, labels::EMBEDDING_ENTROPY] {
            assert!(same(num(r, k), num(&resumed[3], k).unwrap()), "{k}");
        }
    }

    // A finished file: nothing to do, the embedder is not even needed.
    let missing = DiversityOptions {
        embedder: Some(dir.path().join("no-such-model")),
        ..opts
    };
    let report = label_diversity(&inp, &out, &missing, &mut |_| {}).unwrap();
    assert_eq!((report.already_done, report.written), (9, 0));
}

#[test]
fn only_checked_labels_only_diversity_prompts() {
    if !embedder_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    write(&inp, &input());
    let opts = DiversityOptions {
        only_checked: true,
        ..DiversityOptions::default()
    };
    let report = label_diversity(&inp, &out, &opts, &mut |_| {}).unwrap();
    assert!(
        report
            .to_string()
            .contains("1 group(s) whose prompt's checks"),
        "{report}"
    );
    let got = read_records(&out).unwrap();
    assert!(num(&got[0], labels::SELF_BLEU).is_some());
    assert!(got[7..].iter().all(|r| num(r, labels::SELF_BLEU).is_none()));
}

#[test]
fn nothing_to_embed_needs_no_embedder_and_bad_records_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.jsonl"), dir.path().join("out.jsonl"));
    // Only single-generation groups and groups that do not ask for diversity.
    let records: Vec<_> = input()
        .into_iter()
        .filter(|r| {
            r.id.as_deref()
                .is_some_and(|i| i.starts_with("q2") || i.starts_with("q3"))
        })
        .collect();
    write(&inp, &records);
    let opts = DiversityOptions {
        embedder: Some(dir.path().join("no-such-model")),
        only_checked: true,
        ..DiversityOptions::default()
    };
    let report = label_diversity(&inp, &out, &opts, &mut |_| {}).unwrap();
    assert_eq!(report.written, 3);
    assert!(read_records(&out)
        .unwrap()
        .iter()
        .all(|r| num(r, labels::SELF_BLEU).is_none()));

    // Texts per embedding batch must be at least 1.
    let zero = DiversityOptions {
        batch_size: 0,
        ..opts.clone()
    };
    let err = label_diversity(&inp, &dir.path().join("o0.jsonl"), &zero, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch_size = 0"), "{err}");

    // A record without its prompt id: a typed error naming the record and the field.
    let mut bad = records[0].clone();
    bad.extra.remove(labels::PROMPT_ID);
    write(&inp, &[bad]);
    let err = label_diversity(&inp, &dir.path().join("o2.jsonl"), &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(labels::PROMPT_ID) && err.contains("q2/t0.7/s0"),
        "{err}"
    );

    // Groups that need embeddings with an embedder directory that is not there.
    write(&inp, &input());
    let opts = DiversityOptions {
        embedder: Some(dir.path().join("no-such-model")),
        ..DiversityOptions::default()
    };
    let err = label_diversity(&inp, &dir.path().join("o3.jsonl"), &opts, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-model"), "{err}");
}
