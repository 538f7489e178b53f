//! End-to-end tests of `adasamp sampler init`, `adasamp train` (generate → train → resume) and
//! `adasamp analyze`.

use std::path::Path;

mod common;
use common::*;

fn config(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/samplers")
        .join(name)
        .to_str()
        .unwrap()
        .to_string()
}

const PIPELINES: &str = "pipelines:
  - name: pen_top_p
    weight: 1.0
    processors:
      - name: repetition_penalty
        params: {penalty: 1.3, last_n: -1}
      - name: temperature
        params: {temperature: 0.8}
      - name: top_p
        params: {top_p: 0.9}
  - name: other
    weight: 1.0
    processors:
      - name: min_p
        params: {min_p: 0.1}
";

#[test]
fn sampler_init_and_bad_inputs() {
    let d = tmpdir("init");
    let s = d.join("sampler");
    let o = adasamp(&[
        "sampler",
        "init",
        &config("sampling_network_tiny.yaml"),
        "--output",
        s.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.join("config.json").exists());

    let o = adasamp(&[
        "sampler",
        "init",
        d.join("nope.yaml").to_str().unwrap(),
        "--output",
        d.join("x").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nope.yaml"), "{}", stderr(&o));

    // analyze checks the pipeline and the sampler before loading any model.
    let pipes = d.join("p.yaml");
    std::fs::write(&pipes, PIPELINES).unwrap();
    let base = |sampler: &str, name: Option<&str>| {
        let mut args = vec![
            "analyze".to_string(),
            "--sampler".into(),
            sampler.into(),
            "--pipeline".into(),
            pipes.to_str().unwrap().into(),
            "--prompt".into(),
            "hi".into(),
        ];
        if let Some(n) = name {
            args.extend(["--name".into(), n.into()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        adasamp(&args)
    };
    let o = base(s.to_str().unwrap(), None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("pen_top_p"), "{}", stderr(&o));
    let o = base(d.join("missing").to_str().unwrap(), Some("other"));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));

    // train: an unknown device, and cuda in a build without the feature, are clear errors.
    for (device, want) in [("tpu", "`tpu`"), ("cuda", "`cuda` feature")] {
        let o = adasamp(&[
            "train",
            "--data",
            d.join("none.jsonl").to_str().unwrap(),
            "--sampler",
            &config("local.yaml"),
            "--output",
            d.join("run").to_str().unwrap(),
            "--device",
            device,
        ]);
        assert!(!o.status.success());
        if device == "tpu" || !cfg!(feature = "cuda") {
            assert!(stderr(&o).contains(want), "{}", stderr(&o));
        }
    }
}

#[test]
fn analyze_default_model_writes_table_csv_and_plots() {
    if !default_model_present("the analyze/train tests") {
        return;
    }
    let d = tmpdir("run");
    let s = d.join("sampler");
    let o = adasamp(&[
        "sampler",
        "init",
        &config("sampling_network_tiny.yaml"),
        "--output",
        s.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pipes = d.join("p.yaml");
    std::fs::write(&pipes, PIPELINES).unwrap();
    let out = d.join("out");
    let o = adasamp(&[
        "analyze",
        "--sampler",
        s.to_str().unwrap(),
        "--pipeline",
        pipes.to_str().unwrap(),
        "--name",
        "pen_top_p",
        "--prompt",
        "Write a sentence about the sea.",
        "--system",
        "",
        "--tokens",
        "4",
        "--top-k",
        "5",
        "--seed",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| identity (raw) |"), "{table}");

    let csv = std::fs::read_to_string(out.join("positions.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "index,token_id,token,kl_identity,kl_sampler,mass_identity,mass_sampler,kept"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    for (i, l) in lines[1..].iter().enumerate() {
        assert!(l.starts_with(&format!("{i},")), "{l}");
        let m = PositionMetrics::parse(l);
        let (kl_id, mass_id, kept) = (m.kl_identity, m.mass_identity, m.kept);
        assert!(kl_id.is_finite() && kl_id >= 0.0, "{l}");
        assert!((0.0..=1.0).contains(&mass_id), "{l}");
        assert!((1..49152).contains(&kept), "{l}");
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("| sampler |"), "{md}");
    for f in ["kl.png", "pos_000.png", "pos_003.png"] {
        let bytes = std::fs::read(out.join(f)).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f}");
    }
    assert!(!out.join("pos_004.png").exists());
}

/// generate → train → resume on the default model: records from a real pipeline are replayed,
/// a LocalProbabilityTransform trains and beats the identity on held-out positions, a second sampler
/// reuses the replay cache, and `--resume` of a finished run changes nothing.
#[test]
fn generate_then_train_then_resume() {
    if !default_model_present("the analyze/train tests") {
        return;
    }
    let d = tmpdir("train");
    let prompts = d.join("prompts.jsonl");
    std::fs::write(
        &prompts,
        r#"{"id": "a", "prompt": "Write one sentence about the sea.", "system_prompt": ""}
{"id": "b", "prompt": "Name a fruit and describe it.", "system_prompt": ""}
{"id": "c", "prompt": "Tell me about trains.", "system_prompt": ""}
"#,
    )
    .unwrap();
    let pipeline =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/pipelines/t08_minp01.yaml");
    let recs = d.join("recs.jsonl");
    let o = adasamp(&[
        "generate",
        "--prompts",
        prompts.to_str().unwrap(),
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--n",
        "2",
        "--max-new-tokens",
        "16",
        "--seed",
        "5",
        "--output",
        recs.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&recs).unwrap().lines().count(), 6);

    let run = d.join("run");
    let cache = d.join("cache");
    let train = |sampler: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            recs.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--token-batch",
            "16",
            "--epochs",
            "2",
            "--warmup",
            "1",
            "--lr",
            "0.01",
            "--eval-fraction",
            "0.34",
            "--save-every",
            "4",
            "--threads",
            "2",
        ];
        let cfg = config(sampler);
        args.extend(["--sampler", cfg.as_str()]);
        args.extend(extra);
        adasamp(&args)
    };
    let o = train("local.yaml", &run, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("replayed"), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(table.contains("identity (raw logits)"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("report.json")).unwrap()).unwrap();
    let eval = &report["eval"];
    let (kl, id_kl) = (
        eval["kl"].as_f64().unwrap(),
        eval["identity_kl"].as_f64().unwrap(),
    );
    assert!(eval["rows"].as_u64().unwrap() > 0, "{report}");
    assert!(
        kl < id_kl,
        "trained KL {kl} is not below the identity's {id_kl}"
    );
    assert!(run.join("final/model.safetensors").exists());
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let steps = report["steps"].as_u64().unwrap();
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("train,")).count() as u64,
        steps
    );

    // Resuming a finished run: same step count, no new rows.
    let o = train("local.yaml", &run, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv"))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("train,"))
            .count() as u64,
        steps
    );

    // Another sampler on the same records reuses the replay.
    let run2 = d.join("run2");
    let o = train("simple_static.yaml", &run2, &["--stop-after", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("cached"), "{}", stderr(&o));
    assert!(stderr(&o).contains("fast engine"), "{}", stderr(&o));
    // …and continues on the other engine from its checkpoint.
    let o = train(
        "simple_static.yaml",
        &run2,
        &["--resume", "--engine", "candle", "--stop-after", "2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("candle engine"), "{}", stderr(&o));
    let o = train("local.yaml", &d.join("run4"), &["--engine", "gpu"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("engine"), "{}", stderr(&o));

    // Records that are not JSON name the file and line.
    std::fs::write(&recs, "{oops\n").unwrap();
    let o = train("local.yaml", &d.join("run3"), &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("recs.jsonl:1"), "{}", stderr(&o));
    std::fs::remove_dir_all(&d).ok();
}

/// The shipped reference SamplingNetwork (trained on a GPU, docs/training.md) imitates its
/// pipeline on a prompt it was not trained on, loaded on the CPU, and runs as a pipeline stage.
#[test]
fn shipped_sampling_network_imitates_its_pipeline() {
    if !default_model_present("the analyze/train tests") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sampler = root.join("samplers/sampling_network_t08_minp01");
    let d = tmpdir("shipped");
    let o = adasamp(&[
        "analyze",
        "--sampler",
        sampler.to_str().unwrap(),
        "--pipeline",
        root.join("configs/pipelines/t08_minp01.yaml")
            .to_str()
            .unwrap(),
        "--name",
        "t0.8_min_p0.1",
        "--prompt",
        "Describe a walk through a forest in autumn.",
        "--tokens",
        "24",
        "--seed",
        "5",
        "--out",
        d.join("out").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(d.join("out/positions.csv")).unwrap();
    let rows: Vec<PositionMetrics> = csv.lines().skip(1).map(PositionMetrics::parse).collect();
    assert_eq!(rows.len(), 24, "{csv}");
    let mean = |f: fn(&PositionMetrics) -> f64| rows.iter().map(f).sum::<f64>() / rows.len() as f64;
    let (kl_id, kl) = (mean(|r| r.kl_identity), mean(|r| r.kl_sampler));
    let (mass_id, mass) = (mean(|r| r.mass_identity), mean(|r| r.mass_sampler));
    assert!(
        kl < 0.1 && kl < kl_id / 3.0,
        "KL {kl} (identity {kl_id})\n{csv}"
    );
    assert!(
        mass < 0.03 && mass < mass_id / 3.0,
        "mass {mass} (identity {mass_id})\n{csv}"
    );

    let o = adasamp(&[
        "generate",
        "--prompt",
        "Name a colour.",
        "--pipeline",
        root.join("configs/pipelines/learned_sampling_network.yaml")
            .to_str()
            .unwrap(),
        "--max-new-tokens",
        "6",
        "--seed",
        "1",
        "--output",
        d.join("g.jsonl").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rec = std::fs::read_to_string(d.join("g.jsonl")).unwrap();
    assert!(rec.contains("\"learned_sn\""), "{rec}");
}

/// The metrics of one `positions.csv` line
/// (`index,token_id,token,kl_identity,kl_sampler,mass_identity,mass_sampler,kept`), read from
/// the right because the token text may hold commas.
struct PositionMetrics {
    kl_identity: f64,
    kl_sampler: f64,
    mass_identity: f64,
    mass_sampler: f64,
    kept: usize,
}

impl PositionMetrics {
    fn parse(line: &str) -> Self {
        let mut fields = line.rsplit(',');
        let mut next = || {
            fields
                .next()
                .unwrap_or_else(|| panic!("short line: {line}"))
        };
        let kept = next().parse().unwrap();
        let mut num = || -> f64 { next().parse().unwrap() };
        let (mass_sampler, mass_identity) = (num(), num());
        let (kl_sampler, kl_identity) = (num(), num());
        Self {
            kl_identity,
            kl_sampler,
            mass_identity,
            mass_sampler,
            kept,
        }
    }
}
