//! `adasamp demo --fast` end to end on the default model (6 prompts: 4 for training, 2 held
//! out; 4 grid pipelines × 2 seeds; 16 tokens): every stage's file exists with the record
//! count the plan implies, the report has its structure (three contenders, the learned sampler
//! first, a comparison with each other one, a verdict), and a rerun skips every stage. The
//! first run is killed (SIGKILL) early and resumed by the second, so the counts also check
//! that a resumed demo holds every record exactly once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use adasamp_curate::labels;
use adasamp_curate::stage::{read_records, CandidateKey};
use serde_json::Value;

/// Runs `adasamp demo ARGS`. llama.cpp's OpenMP threads spin-wait by default, which on a
/// machine shared with other jobs (CI runners, several builds) makes decoding many times slower;
/// passive waiting gives the same tokens, so the test asks for it unless the caller chose.
fn demo(args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_adasamp"));
    c.arg("demo").args(args);
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        c.env("OMP_WAIT_POLICY", "PASSIVE");
    }
    c.output().expect("run adasamp demo")
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn ids(path: &Path) -> BTreeSet<String> {
    lines(path)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn demo_fast_runs_every_stage_and_a_rerun_skips_them() {
    if !common::default_model_present("the demo test") {
        return;
    }
    let embedder = adasamp_curate::diversity::embed::default_embedder_dir();
    if !embedder.join("model.safetensors").exists() {
        eprintln!(
            "note: embedder absent; run `adasamp model fetch embedder` to enable the demo test"
        );
        return;
    }
    let d = common::tmpdir("demo-fast");
    let run = d.join("run");
    // A first run killed (SIGKILL) a random-ish moment after its first candidates: the next
    // run resumes it, and every file below must still hold each record exactly once.
    let mut first = Command::new(env!("CARGO_BIN_EXE_adasamp"));
    first
        .args(["demo", "--fast", "--out", run.to_str().unwrap()])
        .env("OMP_WAIT_POLICY", "PASSIVE");
    let mut child = common::spawn_until_lines(&mut first, &run.join("candidates.jsonl"), 3);
    std::thread::sleep(Duration::from_millis(u64::from(std::process::id() % 1000)));
    let _ = child.kill();
    let _ = child.wait();
    let killed_mid_candidates = std::fs::read_to_string(run.join("candidates.jsonl"))
        .map(|t| t.matches('\n').count() < 32)
        .unwrap_or(false);
    let o = demo(&["--fast", "--out", run.to_str().unwrap()]);
    let (out, err) = (common::stdout(&o), common::stderr(&o));
    assert!(o.status.success(), "demo --fast failed:\n{out}\n{err}");

    // Prompts: 6 fetched, every third held out, the two sides disjoint.
    let all = ids(&run.join("prompts.jsonl"));
    let train = ids(&run.join("prompts-train.jsonl"));
    let held = ids(&run.join("prompts-held-out.jsonl"));
    assert_eq!((all.len(), train.len(), held.len()), (6, 4, 2));
    assert!(train.is_disjoint(&held));
    assert_eq!(&train | &held, all);

    // Candidates: 4 prompts × 4 pipelines × 2 seeds, each key once; all complete and labelled.
    let grid = adasamp_sampling::PipelineSet::from_path(&run.join("grid.yaml")).unwrap();
    let grid: BTreeSet<String> = grid
        .pipelines()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(grid.len(), 4);
    let cands = read_records(&run.join("candidates.jsonl")).unwrap();
    assert_eq!(cands.len(), 32);
    let keys: BTreeSet<CandidateKey> = cands.iter().map(|r| CandidateKey::of(r).unwrap()).collect();
    assert_eq!(keys.len(), 32, "duplicate candidates");
    assert!(keys
        .iter()
        .all(|k| train.contains(&k.prompt_id) && grid.contains(&k.pipeline)));
    for f in ["clean.jsonl", "verified.jsonl", "diverse.jsonl"] {
        assert_eq!(lines(&run.join(f)).len(), 32, "{f}");
    }
    let labelled = read_records(&run.join("labelled.jsonl")).unwrap();
    assert_eq!(labelled.len(), 32);
    for r in &labelled {
        assert!(r.extra[labels::QUALITY].as_f64().unwrap().is_finite());
        assert!(r.extra.contains_key(labels::SELF_BLEU), "{:?}", r.id);
    }

    // Score: the top 1 of each (prompt, seed) group, a verifiable group only if some answer
    // was correct.
    let mut groups: BTreeMap<(String, u64), bool> = BTreeMap::new();
    for r in &labelled {
        let k = CandidateKey::of(r).unwrap();
        let verifiable = r.extra.contains_key(labels::VERIFIED);
        let ok = !verifiable || r.extra[labels::VERIFIED].as_f64() == Some(1.0);
        *groups.entry((k.prompt_id, k.seed)).or_default() |= ok;
    }
    let kept = groups.values().filter(|&&ok| ok).count();
    let scored = read_records(&run.join("train.jsonl")).unwrap();
    assert_eq!(scored.len(), kept);
    assert!(scored.iter().all(|r| r.extra.contains_key(labels::SCORE)));

    // The best single heuristic is a grid member, written as a one-pipeline file.
    let best = json(&run.join("best-heuristic.json"));
    let best_name = best["pipeline"].as_str().unwrap().to_string();
    assert!(grid.contains(&best_name), "{best_name}");
    assert_eq!(best["standings"].as_array().unwrap().len(), 4);
    let best_file =
        adasamp_sampling::PipelineSet::from_path(&run.join("best-heuristic.yaml")).unwrap();
    assert_eq!(best_file.pipelines().len(), 1);
    assert_eq!(best_file.pipelines()[0].name(), best_name);

    // Training wrote its run and a final checkpoint.
    assert!(run.join("sampler/metrics.csv").exists());
    assert!(run.join("sampler/final").is_dir());

    // The evaluation: 2 held-out prompts × 3 contenders × 2 seeds.
    assert_eq!(lines(&run.join("eval/candidates.jsonl")).len(), 12);
    let report = json(&run.join("eval/report.json"));
    assert_eq!(report["prompts"], 2);
    assert_eq!(report["seeds"], 2);
    let contenders = report["contenders"].as_array().unwrap();
    let names: Vec<&str> = contenders
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["learned", best_name.as_str(), "balanced"]);
    let kinds: Vec<&str> = contenders
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["learned", "pipeline", "preset"]);
    // The learned sampler against its training data's pipelines, on the records training
    // held out (each against its own pipeline).
    let learned = &contenders[0];
    let pipelines: BTreeSet<&str> = scored
        .iter()
        .map(|r| r.sampler_info.name.as_str())
        .collect();
    if pipelines.len() >= 2 {
        let kl = learned["kl_to_imitated"].as_f64().unwrap_or(-1.0);
        let mass = learned["truncated_mass"].as_f64().unwrap_or(-1.0);
        assert!(kl >= 0.0 && (0.0..=1.0).contains(&mass), "{learned}");
        assert!(
            learned["imitated"]
                .as_str()
                .is_some_and(|t| t.contains("held out")),
            "{learned}"
        );
    } else {
        // one pipeline: measured against it on the eval generations
        assert!(learned["kl_to_imitated"].as_f64().is_some(), "{learned}");
    }
    for c in contenders {
        let r = &c["rating"];
        let (v, lo, hi) = (
            r["value"].as_f64().unwrap(),
            r["lo"].as_f64().unwrap(),
            r["hi"].as_f64().unwrap(),
        );
        assert!(lo <= v + 1e-9 && v <= hi + 1e-9, "{c}");
    }
    let comparisons = report["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 2);
    for c in comparisons {
        assert_eq!(c["a"], "learned");
        assert!(
            ["won", "tied", "lost"].contains(&c["outcome"].as_str().unwrap()),
            "{c}"
        );
    }
    let verdict = report["verdict"].as_str().unwrap();
    assert!(!verdict.is_empty());
    assert!(out.contains(verdict), "the verdict is printed:\n{out}");
    assert!(
        out.contains(&format!("Best single heuristic: {best_name}")),
        "{out}"
    );
    assert!(
        out.contains("| **total** |"),
        "the stage timings are printed:\n{out}"
    );

    // demo.json lists the stages and the run directory's files.
    let summary = json(&run.join("demo.json"));
    assert_eq!(summary["stages"].as_array().unwrap().len(), 9);
    let resumed = summary["stages"][1]["summary"].as_str().unwrap();
    assert!(resumed.starts_with("32 candidates ("), "{resumed}");
    if killed_mid_candidates {
        assert!(
            !resumed.contains("(0 from an earlier run)"),
            "the killed run's candidates are kept: {resumed}"
        );
    }
    let files: Vec<&str> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "plan.json",
        "prompts.jsonl",
        "candidates.jsonl",
        "labelled.jsonl",
        "train.jsonl",
        "best-heuristic.yaml",
        "sampler/metrics.csv",
        "eval/report.json",
        "eval/report.md",
    ] {
        assert!(files.contains(&f), "{f} not in {files:?}");
        assert!(out.contains(&format!("  {f}\n")), "{f} not printed");
    }

    // The eval's plots are drawn and named, as `adasamp eval` draws them.
    assert!(
        run.join("eval/rating.png").exists(),
        "eval/rating.png missing"
    );
    assert!(
        out.contains("  eval/rating.png\n"),
        "eval/rating.png not printed"
    );

    // A rerun skips every stage and leaves the files as they were.
    let before = std::fs::read(run.join("candidates.jsonl")).unwrap();
    let o = demo(&["--fast", "--out", run.to_str().unwrap()]);
    let err = common::stderr(&o);
    assert!(o.status.success(), "rerun failed:\n{err}");
    assert_eq!(
        err.matches("complete in an earlier run").count(),
        9,
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("candidates.jsonl")).unwrap(), before);
    assert!(common::stdout(&o).contains(verdict));

    // Another size in the same directory is refused, naming the plan file.
    let o = demo(&["--out", run.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        common::stderr(&o).contains("plan.json"),
        "{}",
        common::stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&d);
}
