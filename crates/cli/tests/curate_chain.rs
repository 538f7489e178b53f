//! The whole curation chain through the binary on a tiny set (3 prompts × 3 pipelines × 2
//! seeds, a few tokens each, the default model as generator and judge): candidates → verify →
//! label verify → label overlap (a token index built here) → label diversity → label quality
//! → score → train (two steps on the scored file). Each stage's output feeds the next; the
//! test checks counts, that every label is present with a sane value, that the records of
//! every earlier stage survive, and that the training file is one `adasamp train` reads.
//! (Kill-and-resume of each stage is tested in the stage's own test file.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use adasamp_engine::record::{read_jsonl, CandidateRecord};
use serde_json::Value;

const PROMPTS: &str = r#"{"id": "poem", "prompt": "Write a two-line poem about rain.", "source": "test", "license": "Apache-2.0", "checks": ["diversity"]}
{"id": "sum", "prompt": "What is 3 + 4? Answer with the number only.", "source": "test", "checks": ["verifiable"], "dataset": "gsm8k", "ground_truth": "7"}
{"id": "fact", "prompt": "Name the capital of France in one word."}
"#;

const GRID: &str = "pipelines:
  - name: temp0.5
    processors:
      - {name: temperature, params: {temperature: 0.5}}
  - name: temp1.0_top_k40
    processors:
      - {name: temperature, params: {temperature: 1.0}}
      - {name: top_k, params: {top_k: 40}}
  - name: temp0.8_min_p0.05
    processors:
      - {name: temperature, params: {temperature: 0.8}}
      - {name: min_p, params: {min_p: 0.05}}
";

const CORPUS: &str = "Rain falls on the quiet town.\nThe capital of France is Paris.\n\
Three plus four is seven.\nA poem about rain and the sea.\n";

fn run(dir: &Path, args: &[&str]) -> String {
    let o = common::adasamp_in(args, dir);
    assert!(
        o.status.success(),
        "adasamp {}: {}\n{}",
        args.join(" "),
        common::stdout(&o),
        common::stderr(&o)
    );
    format!("{}{}", common::stdout(&o), common::stderr(&o))
}

fn records(path: &Path) -> Vec<CandidateRecord> {
    read_jsonl(path)
        .unwrap()
        .into_iter()
        .map(|n| n.record)
        .collect()
}

fn number(r: &CandidateRecord, field: &str) -> f64 {
    match r.extra.get(field) {
        Some(Value::Number(n)) => n.as_f64().unwrap(),
        other => panic!("{:?}: field {field} = {other:?}", r.id),
    }
}

#[test]
fn the_whole_chain_on_a_tiny_set() {
    if !common::default_model_present("the curation chain test") {
        return;
    }
    let embedder = adasamp_curate::diversity::embed::default_embedder_dir();
    if !embedder.join("model.safetensors").exists() {
        eprintln!("note: embedder absent; run `adasamp model fetch embedder` to enable the curation chain test");
        return;
    }
    let model = adasamp_engine::fetch::cached_path(&adasamp_engine::fetch::DEFAULT_MODEL);
    let model = model.to_str().unwrap();
    let d = common::tmpdir("curate-chain");
    std::fs::write(d.join("prompts.jsonl"), PROMPTS).unwrap();
    std::fs::write(d.join("grid.yaml"), GRID).unwrap();
    std::fs::write(d.join("corpus.txt"), CORPUS).unwrap();

    // 1. candidates: every (prompt, pipeline, seed) once.
    run(
        &d,
        &[
            "candidates",
            "--prompts",
            "prompts.jsonl",
            "--grid",
            "grid.yaml",
            "--seeds",
            "2",
            "--max-new-tokens",
            "10",
            "--output",
            "candidates.jsonl",
            "--max-seq-len",
            "512",
        ],
    );
    let cands = records(&d.join("candidates.jsonl"));
    assert_eq!(cands.len(), 3 * 3 * 2);
    let keys: BTreeSet<_> = cands
        .iter()
        .map(|r| adasamp_curate::stage::CandidateKey::of(r).unwrap())
        .collect();
    assert_eq!(keys.len(), 18, "duplicate keys");

    // 2. verify: all complete, all kept.
    run(
        &d,
        &[
            "verify",
            "--seeds",
            "2",
            "--grid",
            "grid.yaml",
            "--input",
            "candidates.jsonl",
            "--output",
            "clean.jsonl",
        ],
    );
    assert_eq!(records(&d.join("clean.jsonl")).len(), 18);

    // 3. label verify: only the verifiable prompt's records get 0/1.
    run(
        &d,
        &[
            "label",
            "verify",
            "--input",
            "clean.jsonl",
            "--output",
            "verified.jsonl",
        ],
    );
    // 4. label overlap against an index of a tiny corpus, with the model's tokenizer.
    run(
        &d,
        &[
            "index",
            "build",
            "--corpus",
            "corpus.txt",
            "--tokenizer",
            model,
            "--out",
            "idx",
        ],
    );
    run(
        &d,
        &[
            "label",
            "overlap",
            "--index",
            "idx",
            "--input",
            "verified.jsonl",
            "--output",
            "overlap.jsonl",
        ],
    );
    // 5. label diversity across seeds.
    run(
        &d,
        &[
            "label",
            "diversity",
            "--input",
            "overlap.jsonl",
            "--output",
            "diverse.jsonl",
        ],
    );
    // 6. label quality: the default model judges the tournaments.
    run(
        &d,
        &[
            "label",
            "quality",
            "--input",
            "diverse.jsonl",
            "--output",
            "labelled.jsonl",
            "--judge",
            model,
            "--max-seq-len",
            "1024",
        ],
    );
    let labelled = records(&d.join("labelled.jsonl"));
    assert_eq!(labelled.len(), 18);
    let by_id: BTreeMap<_, _> = cands.iter().map(|r| (r.id.clone(), r)).collect();
    for r in &labelled {
        let c = by_id[&r.id];
        assert_eq!(r.generation, c.generation, "{:?}", r.id);
        assert_eq!(
            r.extra[adasamp_curate::labels::PROMPT_ID],
            c.extra[adasamp_curate::labels::PROMPT_ID]
        );
        // Every label of every stage is present.
        let q = number(r, adasamp_curate::labels::QUALITY);
        assert!(q.is_finite());
        let s = number(r, adasamp_curate::labels::QUALITY_SCORE);
        assert!((0.0..=4.0).contains(&s), "{s}");
        let b = number(r, adasamp_curate::labels::SELF_BLEU);
        assert!((0.0..=100.0).contains(&b), "{b}");
        let h = number(r, adasamp_curate::labels::EMBEDDING_ENTROPY);
        assert!(
            (0.0..=1.0 + 1e-9).contains(&h),
            "two seeds: at most 1 bit, got {h}"
        );
        let cov = number(r, adasamp_curate::labels::OVERLAP_COVERAGE);
        assert!((0.0..=1.0).contains(&cov), "{cov}");
        number(r, adasamp_curate::labels::OVERLAP_BREAKS);
        let verified = r.extra.get(adasamp_curate::labels::VERIFIED);
        if r.extra[adasamp_curate::labels::PROMPT_ID] == "sum" {
            let v = verified
                .and_then(Value::as_f64)
                .expect("verified on the gsm prompt");
            assert!(v == 0.0 || v == 1.0, "{v}");
        } else {
            assert!(verified.is_none(), "{:?} is not verifiable", r.id);
        }
    }
    // The quality ratings of each (prompt, seed) tournament are mean-centred.
    let mut groups: BTreeMap<(String, u64), Vec<f64>> = BTreeMap::new();
    for r in &labelled {
        let k = adasamp_curate::stage::CandidateKey::of(r).unwrap();
        groups
            .entry((k.prompt_id, k.seed))
            .or_default()
            .push(number(r, adasamp_curate::labels::QUALITY));
    }
    assert_eq!(groups.len(), 6);
    for (k, v) in &groups {
        assert_eq!(v.len(), 3);
        let mean = v.iter().sum::<f64>() / 3.0;
        assert!(mean.abs() < 1e-6, "{k:?}: ratings {v:?}");
    }

    // 7. score: top 1 per (prompt, seed); a verifiable group keeps only correct answers.
    run(
        &d,
        &[
            "score",
            "--input",
            "labelled.jsonl",
            "--output",
            "train.jsonl",
        ],
    );
    let train = records(&d.join("train.jsonl"));
    let sum_correct: BTreeSet<u64> = labelled
        .iter()
        .filter(|r| {
            r.extra[adasamp_curate::labels::PROMPT_ID] == "sum"
                && r.extra[adasamp_curate::labels::VERIFIED].as_f64() == Some(1.0)
        })
        .map(|r| r.seed.unwrap())
        .collect();
    assert_eq!(
        train.len(),
        4 + sum_correct.len(),
        "top 1 of each (prompt, seed) group"
    );
    for r in &train {
        number(r, adasamp_curate::labels::SCORE);
        if r.extra[adasamp_curate::labels::PROMPT_ID] == "sum" {
            assert_eq!(
                r.extra[adasamp_curate::labels::VERIFIED].as_f64(),
                Some(1.0)
            );
        }
    }

    // 8. the training file is one `adasamp train` reads: two steps of the local transform.
    let sampler = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/samplers/local.yaml");
    run(
        &d,
        &[
            "train",
            "--data",
            "train.jsonl",
            "--sampler",
            sampler.to_str().unwrap(),
            "--output",
            "trained",
            "--model",
            model,
            "--stop-after",
            "2",
            "--token-batch",
            "4",
            "--eval-fraction",
            "0",
            "--max-seq-len",
            "512",
        ],
    );
    assert!(d.join("trained/metrics.csv").exists());
    let _ = std::fs::remove_dir_all(&d);
}
