//! `adasamp eval` through the binary on a tiny set with the default model: a learned sampler
//! trained here for a few steps on one pipeline's generations of two training prompts, against
//! the `balanced` preset, on two held-out prompts (one with a checkable answer) × 2 seeds.
//! Checks the report's structure and values, the files and plots, that a rerun does nothing
//! twice, that a run killed (SIGKILL) and rerun ends with every record once and the
//! uninterrupted run's report, and that overlapping prompts and unknown contenders are refused
//! before anything is generated.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

const HELD_OUT: &str = r#"{"id": "sum", "prompt": "What is 3 + 4? Answer with the number only.", "checks": ["verifiable"], "dataset": "gsm8k", "ground_truth": "7"}
{"id": "poem", "prompt": "Write a two-line poem about rain.", "checks": ["diversity"]}
"#;

const TRAIN: &str = r#"{"id": "colour", "prompt": "Name a colour."}
{"id": "double", "prompt": "What is 2 + 2?"}
"#;

const GRID: &str = "pipelines:
  - name: t07_k40
    processors:
      - {name: temperature, params: {temperature: 0.7}}
      - {name: top_k, params: {top_k: 40}}
";

fn run(dir: &Path, args: &[&str]) -> String {
    let o = common::adasamp_in(args, dir);
    assert!(
        o.status.success(),
        "adasamp {}: {}\n{}",
        args.join(" "),
        common::stdout(&o),
        common::stderr(&o)
    );
    common::stdout(&o)
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn eval_a_learned_sampler_against_a_preset() {
    if !common::default_model_present("the eval test") {
        return;
    }
    let embedder = adasamp_curate::diversity::embed::default_embedder_dir();
    if !embedder.join("model.safetensors").exists() {
        eprintln!(
            "note: embedder absent; run `adasamp model fetch embedder` to enable the eval test"
        );
        return;
    }
    let d = common::tmpdir("eval");
    std::fs::write(d.join("held.jsonl"), HELD_OUT).unwrap();
    std::fs::write(d.join("train.jsonl"), TRAIN).unwrap();
    std::fs::write(d.join("grid.yaml"), GRID).unwrap();
    let sampler =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/samplers/simple_dynamic.yaml");

    // Overlap with the training prompts is refused before anything is generated.
    let o = common::adasamp_in(
        &[
            "eval",
            "--prompts",
            "held.jsonl",
            "--samplers",
            "balanced,precise",
            "--train-prompts",
            "train.jsonl",
            "--train-prompts",
            "held.jsonl",
            "--out",
            "refused",
        ],
        &d,
    );
    let err = common::stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("2 eval prompt(s) are also training prompts") && err.contains("`sum`"),
        "{err}"
    );
    assert!(!d.join("refused").join("candidates.jsonl").exists());
    // So is a contender that is neither a preset, a pipeline file nor a checkpoint.
    let o = common::adasamp_in(
        &[
            "eval",
            "--prompts",
            "held.jsonl",
            "--samplers",
            "balanced,nope.yaml",
            "--out",
            "refused",
        ],
        &d,
    );
    let err = common::stderr(&o);
    assert!(
        !o.status.success() && err.contains("contender `nope.yaml`"),
        "{err}"
    );

    // A learned sampler trained on one pipeline's generations of the training prompts.
    run(
        &d,
        &[
            "candidates",
            "--prompts",
            "train.jsonl",
            "--grid",
            "grid.yaml",
            "--seeds",
            "2",
            "--max-new-tokens",
            "6",
            "--output",
            "train_candidates.jsonl",
            "--max-seq-len",
            "512",
        ],
    );
    run(
        &d,
        &[
            "train",
            "--data",
            "train_candidates.jsonl",
            "--sampler",
            sampler.to_str().unwrap(),
            "--output",
            "run",
            "--token-batch",
            "8",
            "--eval-fraction",
            "0",
            "--save-every",
            "0",
            "--max-seq-len",
            "512",
        ],
    );
    assert!(d.join("run/final/config.json").exists());

    let args = [
        "eval",
        "--prompts",
        "held.jsonl",
        "--samplers",
        "learned=run,balanced",
        "--seeds",
        "2",
        "--max-new-tokens",
        "6",
        "--train-prompts",
        "train_candidates.jsonl",
        "--out",
        "ev",
        "--bootstrap",
        "100",
        "--max-seq-len",
        "512",
    ];
    let out = run(&d, &args);
    let ev = d.join("ev");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        (report["prompts"].as_u64(), report["seeds"].as_u64()),
        (Some(2), Some(2))
    );
    let cs = report["contenders"].as_array().unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(
        (cs[0]["name"].as_str(), cs[0]["kind"].as_str()),
        (Some("learned"), Some("learned"))
    );
    assert_eq!(
        (cs[1]["name"].as_str(), cs[1]["kind"].as_str()),
        (Some("balanced"), Some("preset"))
    );
    let mut sum = 0.0;
    for c in cs {
        let r = &c["rating"];
        let (v, lo, hi) = (num(&r["value"]), num(&r["lo"]), num(&r["hi"]));
        assert!(lo <= v + 1e-12 && v <= hi + 1e-12, "{c}");
        sum += v;
        // one prompt carries an answer
        assert_eq!(c["accuracy"]["n"], 1, "{c}");
        let acc = num(&c["accuracy"]["value"]);
        assert!((0.0..=1.0).contains(&acc), "{c}");
        assert!((0.0..=100.0).contains(&num(&c["self_bleu"])), "{c}");
        assert!(num(&c["embedding_entropy"]) >= 0.0, "{c}");
        let len = num(&c["mean_length"]);
        assert!(len > 0.0 && len <= 6.0, "{c}");
    }
    assert!(sum.abs() < 1e-9, "ratings are centred: {sum}");
    // the learned sampler against the pipeline of its training data
    assert!(num(&cs[0]["kl_to_imitated"]) >= 0.0, "{}", cs[0]);
    let mass = num(&cs[0]["truncated_mass"]);
    assert!((0.0..=1.0).contains(&mass), "{}", cs[0]);
    assert!(
        cs[0]["imitated"].as_str().unwrap().contains("t07_k40"),
        "{}",
        cs[0]
    );
    assert!(cs[1]["kl_to_imitated"].is_null());
    let comps = report["comparisons"].as_array().unwrap();
    assert_eq!(comps.len(), 1);
    assert_eq!(
        (comps[0]["a"].as_str(), comps[0]["b"].as_str()),
        (Some("learned"), Some("balanced"))
    );
    let outcome = comps[0]["outcome"].as_str().unwrap();
    assert!(["won", "tied", "lost"].contains(&outcome), "{outcome}");
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("`learned`") && verdict.contains("95 % CI"),
        "{verdict}"
    );
    assert!(
        out.contains(verdict) && out.contains("| learned | learned |"),
        "{out}"
    );
    // every file, one record per (prompt, contender, seed), one verdict per pair
    assert_eq!(lines(&ev.join("candidates.jsonl")), 2 * 2 * 2);
    assert_eq!(lines(&ev.join("verified.jsonl")), 8);
    assert_eq!(lines(&ev.join("judgements.jsonl")), 2 * 2);
    let plots: Vec<&str> = report["files"]["plots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(plots, ["rating.png", "quality_vs_diversity.png"]);
    for p in plots {
        let bytes = std::fs::read(ev.join(p)).unwrap();
        assert_eq!(&bytes[..4], b"\x89PNG", "{p}");
    }
    assert!(std::fs::read_to_string(ev.join("report.md"))
        .unwrap()
        .contains(verdict));

    // A rerun does nothing twice and tells the same story.
    let again = run(&d, &args);
    assert!(again.contains(verdict), "{again}");
    assert_eq!(lines(&ev.join("candidates.jsonl")), 8);
    assert_eq!(lines(&ev.join("judgements.jsonl")), 4);

    // Killed (SIGKILL) at a random-ish moment after its first generations, then rerun: every
    // record exactly once, and the same report as the uninterrupted run.
    let killed_args: Vec<&str> = args
        .iter()
        .map(|&a| if a == "ev" { "ev-killed" } else { a })
        .collect();
    let ek = d.join("ev-killed");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_adasamp"));
    cmd.args(&killed_args).current_dir(&d);
    let mut child = common::spawn_until_lines(&mut cmd, &ek.join("candidates.jsonl"), 1);
    std::thread::sleep(Duration::from_millis(u64::from(std::process::id() % 1500)));
    let _ = child.kill();
    let _ = child.wait();
    run(&d, &killed_args);
    for f in ["candidates.jsonl", "verified.jsonl", "judgements.jsonl"] {
        let (whole, resumed) = (records(&ev.join(f)), records(&ek.join(f)));
        assert_eq!(resumed.len(), whole.len(), "{f}: a record twice or missing");
        assert_eq!(resumed, whole, "{f}: the resumed run's records differ");
    }
    assert_eq!(
        std::fs::read_to_string(ek.join("report.json")).unwrap(),
        std::fs::read_to_string(ev.join("report.json")).unwrap(),
        "the resumed run's report differs from the uninterrupted run's"
    );
}

/// The records of a JSONL file, each as its JSON text keyed by its identity (`id`, or a
/// verdict's prompt, seed and pair), sorted: the content whatever the order of writing. A key
/// seen twice is kept twice (the caller compares counts).
fn records(path: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let key = match v.get("id") {
                Some(id) => id.to_string(),
                None => format!("{}/{}/{}/{}", v["prompt_id"], v["seed"], v["a"], v["b"]),
            };
            (key, l.to_string())
        })
        .collect();
    out.sort();
    out
}

/// Stops a server started by [`common::start_server`].
fn stop(mut server: std::process::Child) {
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn eval_on_an_endpoint_that_wants_an_api_key() {
    if !common::default_model_present("the eval endpoint test") {
        return;
    }
    let embedder = adasamp_curate::diversity::embed::default_embedder_dir();
    if !embedder.join("model.safetensors").exists() {
        eprintln!("note: embedder absent; run `adasamp model fetch embedder` to enable the eval endpoint test");
        return;
    }
    let d = common::tmpdir("eval-endpoint");
    std::fs::write(d.join("held.jsonl"), HELD_OUT).unwrap();
    let (server, addr) = common::start_server(&[
        "--max-seq-len",
        "1024",
        "--max-running",
        "4",
        "--api-key",
        "eval-key",
    ]);
    let url = format!("http://{addr}");
    let args = |out: &'static str| -> Vec<String> {
        [
            "eval",
            "--prompts",
            "held.jsonl",
            "--samplers",
            "balanced,precise",
            "--max-new-tokens",
            "6",
            "--bootstrap",
            "50",
            "--endpoint",
            url.as_str(),
            "--judge",
            url.as_str(),
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // Without the key the server refuses, and eval says so.
    let refused_args = args("refused");
    let refused: Vec<&str> = refused_args.iter().map(String::as_str).collect();
    let o = common::adasamp_in(&refused, &d);
    let mut keyed_args = args("ev");
    keyed_args.extend(["--api-key".to_string(), "eval-key".to_string()]);
    let keyed: Vec<&str> = keyed_args.iter().map(String::as_str).collect();
    let ok = common::adasamp_in(&keyed, &d);
    stop(server);
    let e = common::stderr(&o);
    assert!(!o.status.success() && e.contains("401"), "{e}");
    assert!(
        ok.status.success(),
        "{}\n{}",
        common::stdout(&ok),
        common::stderr(&ok)
    );
    let ev = d.join("ev");
    assert_eq!(lines(&ev.join("candidates.jsonl")), 2 * 2 * 2);
    // 2 prompts × 2 seeds, one pair
    assert_eq!(lines(&ev.join("judgements.jsonl")), 2 * 2);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("report.json")).unwrap()).unwrap();
    assert!(
        report["judge"].as_str().unwrap().contains(&url),
        "{}",
        report["judge"]
    );
    assert_eq!(report["contenders"].as_array().unwrap().len(), 2);
}
