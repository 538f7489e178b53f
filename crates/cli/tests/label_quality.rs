//! `adasamp label quality` on a tiny hand-written candidate file: the default model as a local
//! judge, and the same model behind `adasamp serve` as an OpenAI-compatible judge; then
//! `adasamp score` turning labels into the training file.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One prompt answered by three pipelines (seed 0) and one by a single pipeline.
fn write_candidates(path: &Path) {
    let q = "What is the capital of France?";
    let mut lines = Vec::new();
    for (pipe, gen) in [
        ("t0.7", "The capital of France is Paris."),
        ("t1.4", "Paris, which is also the largest city of France."),
        ("t2.5", "berlin banana 17 ???"),
    ] {
        lines.push(candidate("capital", q, pipe, 0, gen));
    }
    lines.push(candidate("alone", "Say hi.", "t0.7", 0, "Hi!"));
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn candidate(prompt_id: &str, prompt: &str, pipe: &str, seed: u64, generation: &str) -> Value {
    json!({
        "id": format!("{prompt_id}/{pipe}/s{seed}"),
        "prompt": prompt,
        "system_prompt": null,
        "generation": generation,
        "sampler_info": {"name": pipe, "config": {"name": pipe, "weight": 1.0,
            "processors": [{"name": "temperature", "params": {"temperature": 0.7}}]}},
        "seed": seed,
        "prompt_id": prompt_id,
    })
}

/// Runs `adasamp label quality --input input --output output` with `extra` arguments.
fn label(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "label",
        "quality",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::adasamp(&args)
}

fn read(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Checks the labels of the tiny file: the three-way tournament's ratings are mean-centred, its
/// scores add up to 3 rounds × 1 pair + 3 byes × 0.5, and the lone generation has none.
fn check_labels(out: &[Value]) {
    assert_eq!(out.len(), 4);
    let group: Vec<&Value> = out.iter().filter(|r| r["prompt_id"] == "capital").collect();
    assert_eq!(group.len(), 3);
    let ratings: Vec<f64> = group
        .iter()
        .map(|r| r["quality"].as_f64().unwrap())
        .collect();
    assert!(ratings.iter().sum::<f64>().abs() < 1e-9, "{ratings:?}");
    let scores: f64 = group
        .iter()
        .map(|r| r["quality_score"].as_f64().unwrap())
        .sum();
    assert!((scores - 4.5).abs() < 1e-9, "{scores}");
    let alone = out.iter().find(|r| r["prompt_id"] == "alone").unwrap();
    assert!(alone.get("quality").is_none());
}

#[test]
fn label_quality_with_the_default_model_as_judge_then_score() {
    if !common::default_model_present("the label quality test") {
        return;
    }
    let dir = common::tmpdir("label-quality-local");
    let (input, output) = (dir.join("cand.jsonl"), dir.join("labelled.jsonl"));
    write_candidates(&input);
    let local = ["--max-seq-len", "1024", "--batch-size", "4"];
    let o = label(&input, &output, &local);
    let report = common::stdout(&o);
    assert!(o.status.success(), "{}\n{report}", common::stderr(&o));
    assert!(report.contains("read 4, wrote 4"), "{report}");
    assert!(
        report.contains("judged 3 pairs (6 judge prompts)"),
        "{report}"
    );
    assert!(
        report.contains("1 groups of a single generation"),
        "{report}"
    );
    check_labels(&read(&output));
    // a rerun finds every group done
    let o = label(&input, &output, &local);
    let report = common::stdout(&o);
    assert!(
        report.contains("wrote 0") && report.contains("4 already there"),
        "{report}"
    );

    // score: the lone generation has no quality label and is dropped, the best of the three kept
    let train = dir.join("train.jsonl");
    let o = common::adasamp(&[
        "score",
        "--input",
        output.to_str().unwrap(),
        "--output",
        train.to_str().unwrap(),
    ]);
    let report = common::stdout(&o);
    assert!(o.status.success(), "{}\n{report}", common::stderr(&o));
    assert!(report.contains("read 4, wrote 1"), "{report}");
    assert!(report.contains("1 × no `quality` label"), "{report}");
    let kept = read(&train);
    let best = read(&output)
        .into_iter()
        .filter(|r| r["prompt_id"] == "capital")
        .max_by(|a, b| {
            a["quality"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["quality"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(kept[0]["id"], best["id"]);
    assert!(kept[0]["score"].is_number());
}

#[test]
fn score_refuses_weights_off_the_grid_and_writes_the_grid() {
    let dir = common::tmpdir("score-grid");
    let input = dir.join("labelled.jsonl");
    let mut text = String::new();
    for (pipe, q) in [("a", 1.0), ("b", -1.0)] {
        let mut c = candidate("p", "q?", pipe, 0, "g");
        c["quality"] = json!(q);
        text.push_str(&format!("{c}\n"));
    }
    std::fs::write(&input, text).unwrap();
    let out = dir.join("train.jsonl");
    let o = common::adasamp(&[
        "score",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--weights",
        "0.2,0.9,0.9",
    ]);
    assert!(!o.status.success());
    let e = common::stderr(&o);
    assert!(e.contains("weight a = 0.2") && e.contains("grid"), "{e}");
    assert!(!out.exists());
    let grid = dir.join("grid");
    let o = common::adasamp(&[
        "score",
        "--input",
        input.to_str().unwrap(),
        "--output",
        grid.to_str().unwrap(),
        "--grid",
    ]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(std::fs::read_dir(&grid).unwrap().count(), 125);
    let one = read(&grid.join("score_a0.1_b0.9_c0.9.jsonl"));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["sampler_info"]["name"], "a");
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn label_quality_with_adasamp_serve_as_the_judge_endpoint() {
    if !common::default_model_present("the label quality endpoint test") {
        return;
    }
    let dir = common::tmpdir("label-quality-endpoint");
    let (input, output) = (dir.join("cand.jsonl"), dir.join("labelled.jsonl"));
    write_candidates(&input);
    let (server, addr) = common::start_server(&[
        "--max-seq-len",
        "1024",
        "--max-running",
        "4",
        "--api-key",
        "judge-key",
    ]);
    let url = format!("http://{addr}");
    // without the key the server refuses, and the stage says so before judging anything
    let refused = label(&input, &output, &["--judge", &url, "--retries", "0"]);
    let o = label(
        &input,
        &output,
        &[
            "--judge",
            &url,
            "--max-concurrency",
            "4",
            "--api-key",
            "judge-key",
        ],
    );
    let report = common::stdout(&o);
    let err = common::stderr(&o);
    stop(server);
    assert!(o.status.success(), "{err}\n{report}");
    let e = common::stderr(&refused);
    assert!(!refused.status.success() && e.contains("401"), "{e}");
    // the model name came from the server's /v1/models
    assert!(
        report.contains(&format!("judge: {url}/v1/chat/completions (model ")),
        "{report}"
    );
    assert!(
        report.contains("judged 3 pairs (6 judge prompts)"),
        "{report}"
    );
    check_labels(&read(&output));
    // the server gone: the judge fails up front, naming it
    let none = dir.join("none.jsonl");
    let o = label(&input, &none, &["--judge", &url, "--retries", "0"]);
    assert!(!o.status.success());
    let e = common::stderr(&o);
    assert!(
        e.contains(&url) && e.contains("connecting to the judge"),
        "{e}"
    );
}
