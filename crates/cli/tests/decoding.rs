//! Decoding algorithms through the binary, on the default model (skipped when absent):
//! `generate --soft` (one-hot soft inputs reproduce plain greedy decoding; records say so) and
//! `generate --teacher` (α = 0 reproduces θ alone, α = 1 the teacher alone), `soft-train`
//! (checkpoints, resume, a run killed with SIGKILL and rerun equal to an uninterrupted one).

mod common;

use common::{adasamp, default_model_present, stderr, tmpdir};

fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `generate` over `prompts` into `out` with the common flags and `extra`.
fn generate(
    prompts: &std::path::Path,
    out: &std::path::Path,
    extra: &[&str],
) -> Vec<serde_json::Value> {
    let mut args = vec![
        "generate",
        "--prompts",
        prompts.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--max-new-tokens",
        "10",
        "--seed",
        "3",
    ];
    args.extend_from_slice(extra);
    let o = adasamp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    records(out)
}

fn texts(recs: &[serde_json::Value]) -> Vec<(String, serde_json::Value)> {
    recs.iter()
        .map(|r| (r["id"].to_string(), r["generation_tokens"].clone()))
        .collect()
}

#[test]
fn soft_greedy_equals_plain_greedy_and_records_the_mode() {
    if !default_model_present("the soft-sampling CLI test") {
        return;
    }
    let d = tmpdir("soft");
    let prompts = d.join("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"id\": \"a\", \"prompt\": \"Name a colour.\"}\n{\"id\": \"b\", \"prompt\": \"Say hi.\"}\n",
    )
    .unwrap();
    let plain = generate(&prompts, &d.join("plain.jsonl"), &["--greedy"]);
    let soft = generate(&prompts, &d.join("soft.jsonl"), &["--greedy", "--soft"]);
    assert_eq!(texts(&plain), texts(&soft));
    assert!(plain.iter().all(|r| r.get("soft").is_none()));
    for r in &soft {
        assert_eq!(r["soft"]["soft_pipeline"], serde_json::Value::Null, "{r}");
    }
    // A named soft pipeline from a file: recorded; greedy there too, so the same text.
    let file = d.join("soft.yaml");
    std::fs::write(
        &file,
        "pipelines:\n  - name: g\n    processors:\n      - {name: greedy}\n  - name: t\n    processors:\n      - {name: temperature, params: {temperature: 2.0}}\n",
    )
    .unwrap();
    let named = generate(
        &prompts,
        &d.join("named.jsonl"),
        &[
            "--greedy",
            "--soft",
            "--soft-pipeline",
            file.to_str().unwrap(),
            "--soft-name",
            "g",
        ],
    );
    assert_eq!(texts(&plain), texts(&named));
    assert_eq!(named[0]["soft"]["soft_pipeline"]["name"], "g");
    // Errors: several pipelines and no name; an unknown name; --soft with --teacher.
    for (extra, needle) in [
        (
            vec!["--soft", "--soft-pipeline", file.to_str().unwrap()],
            "pass a name",
        ),
        (
            vec![
                "--soft",
                "--soft-pipeline",
                file.to_str().unwrap(),
                "--soft-name",
                "zz",
            ],
            "zz",
        ),
        (
            vec!["--soft", "--teacher", file.to_str().unwrap()],
            "--teacher",
        ),
    ] {
        let mut args = vec!["generate", "--prompt", "hi", "--max-new-tokens", "2"];
        args.extend(extra);
        let o = adasamp(&args);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(needle), "{}", stderr(&o));
    }
}

#[test]
fn teacher_alpha_zero_and_one_reproduce_each_model_alone() {
    if !default_model_present("the optimal-sampling CLI test") {
        return;
    }
    let model = adasamp_engine::fetch::cached_path(&adasamp_engine::fetch::DEFAULT_MODEL);
    let model = model.to_str().unwrap().to_string();
    let model = model.as_str();
    let d = tmpdir("teacher");
    let prompts = d.join("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"id\": \"a\", \"prompt\": \"Name three colours of the rainbow.\"}\n",
    )
    .unwrap();
    let sampling = ["--temperature", "0.9", "--top-p", "0.95", "--n", "2"];
    let theta_sys = "You are a terse assistant.";
    let teacher_sys = "You are a poet who answers in verse.";
    let with = |extra: &[&'static str]| -> Vec<&'static str> { [&sampling[..], extra].concat() };
    let theta = generate(
        &prompts,
        &d.join("theta.jsonl"),
        &with(&["--system", theta_sys]),
    );
    let teacher = generate(
        &prompts,
        &d.join("teacher.jsonl"),
        &with(&["--system", teacher_sys]),
    );
    assert_ne!(
        texts(&theta),
        texts(&teacher),
        "the two prompts must differ for this test"
    );
    let mixed = |alpha: &'static str, name: &str| {
        let mut args: Vec<&str> = with(&[
            "--system",
            theta_sys,
            "--teacher-system",
            teacher_sys,
            "--alpha-method",
            "fixed",
            "--alpha",
            alpha,
        ]);
        args.extend(["--teacher", model]);
        generate(&prompts, &d.join(name), &args)
    };
    let a0 = mixed("0", "a0.jsonl");
    let a1 = mixed("1", "a1.jsonl");
    assert_eq!(texts(&a0), texts(&theta));
    assert_eq!(texts(&a1), texts(&teacher));
    assert_eq!(a1[0]["optimal"]["alpha_method"], "fixed");
    assert_eq!(a1[0]["optimal"]["summary"]["alpha_mean"], 1.0);
}

#[test]
fn soft_train_checkpoints_resumes_and_feeds_generate() {
    if !default_model_present("the soft-training CLI test") {
        return;
    }
    let d = tmpdir("soft-train");
    let data = d.join("data.jsonl");
    std::fs::write(
        &data,
        "{\"text\": \"The cat sat on the mat.\"}\n{\"text\": \"Paris is the capital of France.\"}\n",
    )
    .unwrap();
    let ck = d.join("ck");
    let train = |steps: &str| adasamp(&soft_train_args(&data, &ck, steps));
    let o = train("2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("step     1  α 1.0000"),
        "{}",
        stderr(&o)
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("soft_train.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 2);
    assert_eq!(state["log"].as_array().unwrap().len(), 2);
    // Run again: nothing left to do, the checkpoint is untouched.
    let before = std::fs::read(ck.join("head.safetensors")).unwrap();
    let o = train("2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 steps run"), "{}", stderr(&o));
    assert_eq!(std::fs::read(ck.join("head.safetensors")).unwrap(), before);
    // Other settings refuse to resume, naming the directory.
    let o = train("3");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot resume"), "{}", stderr(&o));
    // The trained head drives generation (candle), recorded in the records.
    let prompts = d.join("prompts.jsonl");
    std::fs::write(
        &prompts,
        "{\"id\": \"a\", \"prompt\": \"Name a colour.\"}\n",
    )
    .unwrap();
    let recs = generate(
        &prompts,
        &d.join("out.jsonl"),
        &["--greedy", "--lm-head", ck.to_str().unwrap()],
    );
    assert_eq!(recs[0]["lm_head"], ck.to_str().unwrap());
    assert!(!recs[0]["generation_tokens"].as_array().unwrap().is_empty());
    // Bad settings are errors naming the field.
    let o = adasamp(&[
        "soft-train",
        "--data",
        data.to_str().unwrap(),
        "--output",
        d.join("x").to_str().unwrap(),
        "--alpha-min",
        "1.5",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("alpha_min"), "{}", stderr(&o));
    // The checkpoint holds the model's f32 head (~325 MB): do not leave it behind.
    let _ = std::fs::remove_dir_all(&d);
}

/// `soft-train` over `data` into `ck` for `steps` steps, a checkpoint after every step, with the
/// α schedule passing through its three phases in a few steps.
fn soft_train_args<'a>(
    data: &'a std::path::Path,
    ck: &'a std::path::Path,
    steps: &'a str,
) -> Vec<&'a str> {
    vec![
        "soft-train",
        "--data",
        data.to_str().unwrap(),
        "--output",
        ck.to_str().unwrap(),
        "--steps",
        steps,
        "--batch-size",
        "2",
        "--max-len",
        "10",
        "--lr",
        "1e-3",
        "--delay-ratio",
        "0.5",
        "--warmup-ratio",
        "0.5",
        "--alpha-min",
        "0.5",
        "--checkpoint-every",
        "1",
    ]
}

/// The step a `soft-train` checkpoint directory holds (0 when none is readable yet).
fn checkpoint_step(ck: &std::path::Path) -> u64 {
    std::fs::read_to_string(ck.join("soft_train.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["step"].as_u64())
        .unwrap_or(0)
}

#[test]
fn soft_train_killed_and_rerun_equals_an_uninterrupted_run() {
    if !default_model_present("the soft-training kill test") {
        return;
    }
    let d = tmpdir("soft-train-kill");
    let data = d.join("data.jsonl");
    std::fs::write(
        &data,
        "{\"text\": \"The cat sat on the mat.\"}\n{\"text\": \"Paris is the capital of France.\"}\n\
         {\"text\": \"Two and two make four.\"}\n",
    )
    .unwrap();
    let whole = d.join("whole");
    let o = adasamp(&soft_train_args(&data, &whole, "4"));
    assert!(o.status.success(), "{}", stderr(&o));
    // Kill (SIGKILL) once a checkpoint past step 1 is on disk, then rerun the same command.
    let killed = d.join("killed");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_adasamp"));
    cmd.args(soft_train_args(&data, &killed, "4"));
    let mut child = common::spawn_until(&mut cmd, || checkpoint_step(&killed) >= 2);
    let _ = child.kill();
    let _ = child.wait();
    let at_kill = checkpoint_step(&killed);
    assert!(
        (2..4).contains(&at_kill),
        "killed at step {at_kill}: not between the second checkpoint and the end"
    );
    let o = adasamp(&soft_train_args(&data, &killed, "4"));
    assert!(o.status.success(), "{}", stderr(&o));
    // Same head bits and the same per-step log (each step once) as the uninterrupted run.
    assert_eq!(
        std::fs::read(killed.join("head.safetensors")).unwrap(),
        std::fs::read(whole.join("head.safetensors")).unwrap(),
        "resumed from step {at_kill}"
    );
    let state = |ck: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(ck.join("soft_train.json")).unwrap()).unwrap()
    };
    let (a, b) = (state(&killed), state(&whole));
    assert_eq!(a["step"], 4);
    assert_eq!(a["log"], b["log"], "resumed from step {at_kill}");
    assert_eq!(a["log"].as_array().unwrap().len(), 4);
    // Three checkpoints of the model's f32 head (~325 MB each): leave none behind.
    let _ = std::fs::remove_dir_all(&d);
}
