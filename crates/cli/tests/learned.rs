//! The `learned` stage through the binary (`apply`), `sampler info` and `bench-sampler --quick`.

use std::path::{Path, PathBuf};

use adasamp_nets::{FastSampler, LearnedSampler, SamplerConfig};
use candle_core::{DType, Device};
use safetensors::tensor::{Dtype, TensorView};

mod common;
use common::{adasamp_in as adasamp, tmpdir};

fn read_logits(path: &Path) -> Vec<f32> {
    common::read_logits(path).1
}

#[test]
fn apply_runs_a_learned_stage_and_sampler_info_describes_it() {
    let dir = tmpdir("apply");
    let config = SamplerConfig::from_yaml_str(
        "architecture: sampling_network\nd_model: 16\nd_ff: 32\nn_blocks: 1\nn_heads: 2\nscale: true\n",
        "t",
    )
    .unwrap();
    let sampler = LearnedSampler::seeded(&config, 1, DType::F32, &Device::Cpu).unwrap();
    sampler.save(&dir.join("ckpt")).unwrap();
    std::fs::write(
        dir.join("p.yaml"),
        "pipelines:\n  - name: learned\n    processors:\n      - {name: learned, params: {checkpoint: ckpt}}\n",
    )
    .unwrap();
    let (rows, v) = (2, 300);
    let mut logits: Vec<f32> = (0..rows * v)
        .map(|i| ((i * 37 % 101) as f32) * 0.1 - 5.0)
        .collect();
    logits[7] = f32::NEG_INFINITY;
    let bytes: Vec<u8> = logits.iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, vec![rows, v], &bytes).unwrap();
    std::fs::write(
        dir.join("in.safetensors"),
        safetensors::serialize([("logits", view)], None).unwrap(),
    )
    .unwrap();
    // Run from elsewhere: the relative checkpoint resolves against the pipeline's directory.
    let o = adasamp(
        &[
            "apply",
            "--pipeline",
            dir.join("p.yaml").to_str().unwrap(),
            "--input",
            dir.join("in.safetensors").to_str().unwrap(),
            "--output",
            dir.join("out.safetensors").to_str().unwrap(),
        ],
        &std::env::temp_dir(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read_logits(&dir.join("out.safetensors"));
    let mut want = logits.clone();
    FastSampler::new(&sampler)
        .unwrap()
        .apply_batch(&mut want, v)
        .unwrap();
    assert_eq!(got, want);
    assert_eq!(got[7], f32::NEG_INFINITY);

    let o = adasamp(
        &["sampler", "info", dir.join("ckpt").to_str().unwrap()],
        &dir,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("sampling_network") && out.contains("FLOPs per token"),
        "{out}"
    );
    assert!(
        out.contains(&format!("parameters: {}", sampler.parameter_count())),
        "{out}"
    );

    // A missing checkpoint is an error naming the pipeline, the stage and the parameter.
    std::fs::remove_dir_all(dir.join("ckpt")).unwrap();
    let o = adasamp(
        &[
            "apply",
            "--pipeline",
            dir.join("p.yaml").to_str().unwrap(),
            "--input",
            dir.join("in.safetensors").to_str().unwrap(),
            "--output",
            dir.join("out2.safetensors").to_str().unwrap(),
        ],
        &dir,
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("`learned`") && e.contains("checkpoint"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_sampler_quick_prints_a_table() {
    let dir = tmpdir("bench");
    let cfg = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs/samplers/local.yaml");
    let out = dir.join("bench.md");
    let o = adasamp(
        &[
            "bench-sampler",
            "--quick",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(&out).unwrap();
    assert!(
        table.contains("| local (tabulated, ") && table.contains("GFLOP/s"),
        "{table}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `bench-train --quick`: one row per network, fast and candle figures side by side.
#[test]
fn bench_train_quick_prints_a_table() {
    let dir = tmpdir("bench-train");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs/samplers");
    let out = dir.join("bench.md");
    let mut args = vec!["bench-train", "--quick", "--output", out.to_str().unwrap()];
    let cfgs: Vec<String> = [
        "local.yaml",
        "simple_dynamic.yaml",
        "sampling_network_tiny.yaml",
    ]
    .iter()
    .map(|c| root.join(c).to_str().unwrap().to_string())
    .collect();
    for c in &cfgs {
        args.extend(["--config", c.as_str()]);
    }
    let o = adasamp(&args, &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(&out).unwrap();
    for name in ["local", "simple_dynamic", "sampling_network_tiny"] {
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | name | params | threads | fast f16 | fast f32 | candle | ratio | …
        let fast: f64 = cells[4].parse().unwrap();
        let fast32: f64 = cells[5].parse().unwrap();
        let candle: f64 = cells[6].parse().unwrap();
        assert!(fast > 0.0 && fast32 > 0.0 && candle > 0.0, "{row}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
