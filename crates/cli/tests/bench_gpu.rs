//! `model random` and `bench-gpu` through the binary, on the CPU with the tiny preset: the
//! random model loads and generates, the benchmark prints one row per backend and batch size,
//! each with a same-run reference, and a GPU on a CPU build is a clear error.

mod common;
use common::*;

#[test]
fn model_random_writes_a_model_that_generates() {
    let d = tmpdir("model-random");
    let gguf = d.join("tiny.gguf");
    let out = adasamp(&[
        "model",
        "random",
        "--preset",
        "tiny",
        "--vocab",
        "320",
        "--weights",
        "q8_0",
        "--out",
        gguf.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), gguf.to_str().unwrap());
    let out = adasamp(&["model", "info", "--model", gguf.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["model"]["vocab_size"], 320);
    assert_eq!(info["model"]["n_layers"], 2);

    let hf = d.join("tiny-hf");
    let out = adasamp(&[
        "model",
        "random",
        "--preset",
        "tiny",
        "--vocab",
        "320",
        "--format",
        "safetensors",
        "--out",
        hf.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = adasamp(&[
        "generate",
        "--model",
        hf.to_str().unwrap(),
        "--prompt",
        "Hi",
        "--raw",
        "--max-new-tokens",
        "5",
        "--seed",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Bad values are named.
    let out = adasamp(&[
        "model",
        "random",
        "--preset",
        "tiny",
        "--format",
        "safetensors",
        "--weights",
        "q8_0",
        "--out",
        hf.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("weights = q8_0"), "{}", stderr(&out));
    let out = adasamp(&[
        "model",
        "random",
        "--preset",
        "7b",
        "--out",
        gguf.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("preset = `7b`"), "{}", stderr(&out));
}

#[test]
fn bench_gpu_on_the_cpu_prints_one_row_per_backend_and_batch() {
    let d = tmpdir("bench-gpu");
    let table = d.join("table.md");
    let out = adasamp(&[
        "bench-gpu",
        "--models",
        "tiny",
        "--vocab",
        "300",
        "--random-dir",
        d.to_str().unwrap(),
        "--batch",
        "1,2",
        "--new-tokens",
        "3",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--output",
        table.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&table).unwrap();
    assert_eq!(stdout(&out), text);
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip(2)
        .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
        .collect();
    let backends: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[3].as_str(), r[4].as_str()))
        .collect();
    assert_eq!(
        backends,
        vec![
            ("llama.cpp on cpu", "1"),
            ("llama.cpp on cpu", "2"),
            ("candle on cpu", "1"),
            ("candle on cpu", "2"),
        ]
    );
    let refs: Vec<&str> = rows
        .iter()
        .map(|r| r[6].split(" (").next().unwrap())
        .collect();
    assert_eq!(
        refs,
        vec![
            "llama.cpp, batch 1",
            "llama.cpp, batch 1",
            "llama.cpp, batch 1",
            "llama.cpp, batch 2",
        ]
    );
    for r in &rows {
        assert_eq!(r[1], "decode tok/s");
        let v: f64 = r[5].parse().unwrap();
        assert!(v > 0.0 && v.is_finite(), "{r:?}");
        assert!(r[8].ends_with('%') && r[9].ends_with('%'), "{r:?}");
    }
    // The reference row's ratio to itself is 1.
    assert_eq!(rows[0][7], "1.00×");
}

#[test]
fn cuda_on_a_cpu_build_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    for args in [
        &["bench-gpu", "--device", "cuda", "--models", "tiny"][..],
        &["generate", "--device", "cuda:1", "--prompt", "x"][..],
    ] {
        let out = adasamp(args);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("this build has no CUDA support"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = adasamp(&["generate", "--device", "gpu", "--prompt", "x"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("device = `gpu`"), "{}", stderr(&out));
}

#[test]
fn pytorch_reference_without_learned_sampler_rows_is_a_note_and_a_missing_script_an_error() {
    let d = tmpdir("bench-gpu-pytorch");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pytorch_reference_fixture.sh");
    let dir = d.to_str().unwrap();
    let bench = |reference: &str| {
        adasamp_in(
            &[
                "bench-gpu",
                "--models",
                "tiny",
                "--vocab",
                "300",
                "--random-dir",
                dir,
                "--backends",
                "candle",
                "--batch",
                "1",
                "--new-tokens",
                "2",
                "--device",
                "cpu",
                "--threads",
                "1",
                "--pytorch-reference",
                reference,
                "--python",
                "sh",
            ],
            &d,
        )
    };
    // On the CPU there are no learned-sampler rows: the decode table, then a note.
    for reference in [fixture.to_str().unwrap(), "auto"] {
        let out = bench(reference);
        assert!(out.status.success(), "{reference}: {}", stderr(&out));
        let text = stdout(&out);
        assert_eq!(
            text.lines().nth(2).map(|l| l.contains("decode tok/s")),
            Some(true)
        );
        assert!(!text.contains("PyTorch bf16"), "{text}");
        assert!(
            text.contains("PyTorch reference not run: no learned-sampler rows to compare with ("),
            "{reference}: {text}"
        );
    }
    // An explicit script that is not there fails before any measurement.
    let missing = d.join("no-gpu_sampler.py");
    let out = bench(missing.to_str().unwrap());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "--pytorch-reference {}: no such file",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}
