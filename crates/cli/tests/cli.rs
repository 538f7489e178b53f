//! End-to-end tests of the `adasamp` binary: the file contracts of `apply`, `sample`, `grid`, and
//! clear errors on bad input.

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

mod common;
use common::*;

fn write_tensor(path: &Path, name: &str, dtype: Dtype, shape: Vec<usize>, bytes: &[u8]) {
    let view = TensorView::new(dtype, shape, bytes).unwrap();
    std::fs::write(path, safetensors::serialize([(name, view)], None).unwrap()).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn example_apply_and_sample() {
    let d = tmpdir("example");
    let out = adasamp(&[
        "example",
        "--output",
        d.to_str().unwrap(),
        "--vocab",
        "5000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pipes = d.join("pipelines.yaml");
    let input = d.join("logits.safetensors");
    let applied = d.join("out.safetensors");
    let out = adasamp(&[
        "apply",
        "--pipeline",
        pipes.to_str().unwrap(),
        "--name",
        "min_p0.05",
        "--input",
        input.to_str().unwrap(),
        "--output",
        applied.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (shape_in, z) = read_logits(&input);
    let (shape_out, y) = read_logits(&applied);
    assert_eq!(shape_in, shape_out);
    // min_p 0.05 in logit space: removed ⇔ z < max + ln 0.05, removed are exactly -inf.
    for (zr, yr) in z.chunks(5000).zip(y.chunks(5000)) {
        let m = zr.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        for (&a, &b) in zr.iter().zip(yr) {
            if a < m + 0.05f32.ln() {
                assert_eq!(b, f32::NEG_INFINITY);
            } else {
                assert_eq!(a, b);
            }
        }
    }
    let run = || {
        adasamp(&[
            "sample",
            "--pipeline",
            pipes.to_str().unwrap(),
            "--name",
            "llama_cpp_default",
            "--input",
            input.to_str().unwrap(),
            "--seed",
            "7",
            "--top-n",
            "3",
        ])
    };
    let (a, b) = (run(), run());
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout, "same seed, same output");
    let text = String::from_utf8(a.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), shape_in[0]);
    for l in &lines {
        assert!(l["token"].as_u64().unwrap() < 5000);
        assert!(l["top"].as_array().unwrap().len() <= 3);
        assert!(l["prob"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn grid_counts_through_the_cli() {
    let d = tmpdir("grid");
    for (args, n) in [
        (vec!["--family", "llama"], 396),
        (vec!["--family", "none"], 384),
        (vec!["--family", "qwen", "--filtered"], 143),
    ] {
        let p = d.join("g.yaml");
        let mut all = vec!["grid", "--output", p.to_str().unwrap()];
        all.extend(args);
        let out = adasamp(&all);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("- name: ")).count(),
            n,
            "{}",
            &text[..200]
        );
    }
    let out = adasamp(&["grid", "--family", "mistral"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("mistral"));
}

#[test]
fn bad_inputs_are_clear_errors() {
    let d = tmpdir("bad");
    let pipes = d.join("p.yaml");
    std::fs::write(
        &pipes,
        "pipelines:\n  - name: a\n    processors: [{name: top_p, params: {top_p: 0.9}}]\n",
    )
    .unwrap();
    let p = pipes.to_str().unwrap();
    let file = d.join("in.safetensors");
    let f = file.to_str().unwrap();

    write_tensor(
        &file,
        "logits",
        Dtype::F32,
        vec![2, 3],
        &f32_bytes(&[0.0, 1.0, 2.0, 0.0, f32::NAN, 1.0]),
    );
    let out = adasamp(&["sample", "--pipeline", p, "--input", f]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("row 1: logit of token 1 is NaN"),
        "{}",
        stderr(&out)
    );

    // A NaN inside a long row (the vectorised body of the row scan, not its scalar tail) with a
    // temperature-only pipeline: both `apply` and `sample` refuse it, naming row and token.
    let temp = d.join("t.yaml");
    std::fs::write(
        &temp,
        "pipelines:\n  - name: t\n    processors: [{name: temperature, params: {temperature: 0.7}}]\n",
    )
    .unwrap();
    let mut long: Vec<f32> = (0..200).map(|i| (i % 17) as f32 * 0.1).collect();
    long[170] = f32::NAN;
    write_tensor(&file, "logits", Dtype::F32, vec![2, 100], &f32_bytes(&long));
    let t = temp.to_str().unwrap();
    let out = adasamp(&["sample", "--pipeline", t, "--input", f]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("row 1: logit of token 70 is NaN"),
        "{}",
        stderr(&out)
    );
    let applied = d.join("applied.safetensors");
    let out = adasamp(&[
        "apply",
        "--pipeline",
        t,
        "--input",
        f,
        "--output",
        applied.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("row 1: logit of token 70 is NaN"),
        "{}",
        stderr(&out)
    );
    assert!(!applied.exists(), "no output written for a refused input");

    write_tensor(
        &file,
        "scores",
        Dtype::F32,
        vec![1, 3],
        &f32_bytes(&[0.0, 1.0, 2.0]),
    );
    let out = adasamp(&[
        "apply",
        "--pipeline",
        p,
        "--input",
        f,
        "--output",
        d.join("o.safetensors").to_str().unwrap(),
    ]);
    assert!(
        stderr(&out).contains("no tensor named `logits`") && stderr(&out).contains("scores"),
        "{}",
        stderr(&out)
    );

    write_tensor(&file, "logits", Dtype::F16, vec![1, 2], &[0, 0, 0, 0]);
    let out = adasamp(&["sample", "--pipeline", p, "--input", f]);
    assert!(stderr(&out).contains("expected F32"), "{}", stderr(&out));

    write_tensor(
        &file,
        "logits",
        Dtype::F32,
        vec![3],
        &f32_bytes(&[0.0, 1.0, 2.0]),
    );
    let out = adasamp(&["sample", "--pipeline", p, "--input", f]);
    assert!(stderr(&out).contains("expected [N, V]"), "{}", stderr(&out));

    std::fs::write(&file, b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let out = adasamp(&["sample", "--pipeline", p, "--input", f]);
    assert!(
        stderr(&out).contains("not a valid safetensors file"),
        "{}",
        stderr(&out)
    );

    std::fs::write(
        &pipes,
        "pipelines:\n  - name: a\n    processors: [{name: top_p, params: {top_p: 2}}]\n",
    )
    .unwrap();
    let out = adasamp(&["sample", "--pipeline", p, "--input", f]);
    assert!(
        stderr(&out).contains("pipeline `a`, stage `top_p`, parameter `top_p` = 2"),
        "{}",
        stderr(&out)
    );

    let out = adasamp(&["sample", "--preset", "wild", "--input", f]);
    assert!(
        stderr(&out).contains("unknown preset `wild`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn generate_prompts_file_is_resumable() {
    if !default_model_present("the generation tests") {
        return;
    }
    let d = tmpdir("gen");
    let prompts = d.join("prompts.jsonl");
    std::fs::write(&prompts, "{\"id\": \"a\", \"prompt\": \"Name a colour.\"}\n\n{\"prompt\": \"Say hi.\", \"system_prompt\": \"\"}\n").unwrap();
    let out = d.join("out.jsonl");
    let args = [
        "generate",
        "--prompts",
        prompts.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--n",
        "2",
        "--max-new-tokens",
        "6",
        "--temperature",
        "0.8",
        "--top-p",
        "0.9",
        "--seed",
        "5",
    ];
    let o = adasamp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    let recs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a-s0", "a-s1", "p1-s0", "p1-s1"]);
    for r in &recs {
        for k in [
            "prompt",
            "system_prompt",
            "generation",
            "sampler_info",
            "seed",
            "finish_reason",
            "usage",
        ] {
            assert!(r.get(k).is_some(), "record lacks {k}: {r}");
        }
        assert!(r["usage"]["completion_tokens"].as_u64().unwrap() <= 6);
        assert_eq!(
            r["sampler_info"]["config"]["processors"][0]["name"],
            "top_p"
        );
    }
    assert_eq!(recs[1]["seed"], 6);
    // Re-running writes nothing new.
    let o = adasamp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    // A torn last line (crash) is dropped and that record regenerated identically.
    let cut = text.len() - 10;
    std::fs::write(&out, &text[..cut]).unwrap();
    let o = adasamp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        text,
        "same seeds must regenerate the same record"
    );
    // Malformed prompts file: error names the line.
    std::fs::write(&prompts, "{\"prompt\": \"ok\"}\n{\"text\": 3}\n").unwrap();
    let o = adasamp(&[
        "generate",
        "--prompts",
        prompts.to_str().unwrap(),
        "--max-new-tokens",
        "2",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 2"), "{}", stderr(&o));
}

#[test]
fn generate_speculative_records_match_plain_greedy_and_resume() {
    if !default_model_present("the speculative generation tests") {
        return;
    }
    let d = tmpdir("spec");
    let prompts = d.join("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"id\": \"a\", \"prompt\": \"Count from 1 to 10, separated by commas.\"}\n{\"prompt\": \"Say hi.\"}\n",
    )
    .unwrap();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--prompts",
            prompts.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--max-new-tokens",
            "16",
            "--preset",
            "deterministic",
        ];
        args.extend_from_slice(extra);
        let o = adasamp(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    let read = |out: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let plain = d.join("plain.jsonl");
    run(&plain, &[]);
    let spec = d.join("spec.jsonl");
    let o = run(&spec, &["--draft-ngram", "3", "--draft-tokens", "3"]);
    assert!(
        stderr(&o).contains("tokens per target forward"),
        "{}",
        stderr(&o)
    );
    let (want, got) = (read(&plain), read(&spec));
    assert_eq!(want.len(), 2);
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w["generation_tokens"], g["generation_tokens"], "{g}");
        let s = &g["speculative"];
        assert_eq!(s["draft_ngram"], 3);
        assert_eq!(s["draft_tokens"], 3);
        assert_eq!(s["generated"], g["usage"]["completion_tokens"]);
        assert!(s["tokens_per_forward"].as_f64().unwrap() >= 1.0, "{s}");
        assert!(s["acceptance_rate"].as_f64().is_some(), "{s}");
    }
    // Resumable as plain records: a re-run writes nothing new, a torn line is regenerated.
    let text = std::fs::read_to_string(&spec).unwrap();
    run(&spec, &["--draft-ngram", "3", "--draft-tokens", "3"]);
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), text);
    std::fs::write(&spec, &text[..text.len() - 10]).unwrap();
    run(&spec, &["--draft-ngram", "3", "--draft-tokens", "3"]);
    assert_eq!(std::fs::read_to_string(&spec).unwrap(), text);
    // Early exit on llama.cpp, and a zero G, are clear errors.
    let o = adasamp(&[
        "generate",
        "--prompt",
        "hi",
        "--backend",
        "llama.cpp",
        "--draft-layers",
        "4",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("early exit"), "{}", stderr(&o));
    let o = adasamp(&[
        "generate",
        "--prompt",
        "hi",
        "--draft-ngram",
        "2",
        "--draft-tokens",
        "0",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("draft_tokens = 0"), "{}", stderr(&o));
}

/// A candidate record line for the label stages.
fn candidate_line(prompt_id: &str, pipeline: &str, seed: u64, generation: &str) -> String {
    serde_json::json!({
        "id": format!("{prompt_id}/{pipeline}/s{seed}"),
        "prompt": "Tell a story.",
        "system_prompt": null,
        "generation": generation,
        "sampler_info": {"name": pipeline, "config": {"name": pipeline, "processors": []}},
        "seed": seed,
        "prompt_id": prompt_id,
        "checks": ["diversity"],
    })
    .to_string()
        + "\n"
}

#[test]
fn label_diversity_through_the_cli() {
    let d = tmpdir("label-diversity");
    let input = d.join("clean.jsonl");
    let output = d.join("labelled.jsonl");
    let lines = [
        candidate_line("q1", "t1", 0, "The sea was calm and the boat drifted home."),
        candidate_line("q1", "t1", 1, "A storm rose over the harbour."),
        candidate_line("q2", "t1", 0, "Alone in its group."),
    ];
    std::fs::write(&input, lines.concat()).unwrap();
    let (i, o) = (input.to_str().unwrap(), output.to_str().unwrap());

    // An embedder directory that is not there: a clear error naming it.
    let missing = d.join("no-model");
    let out = adasamp(&[
        "label",
        "diversity",
        "--input",
        i,
        "--output",
        o,
        "--embedder",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-model"), "{}", stderr(&out));

    let embedder = adasamp_engine::fetch::home()
        .join("all-MiniLM-L6-v2")
        .join("model.safetensors");
    if !embedder.exists() {
        eprintln!("note: the default embedder is absent; run `adasamp model fetch embedder` to enable the rest");
        return;
    }
    let _ = std::fs::remove_file(&output);
    let out = adasamp(&["label", "diversity", "--input", i, "--output", o]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("label diversity: read 3, wrote 3") && err.contains("q2/t1"),
        "{err}"
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows[0]["self_bleu"].is_f64() && rows[1]["embedding_entropy"].is_f64());
    assert!(rows[2].get("self_bleu").is_none());
}
