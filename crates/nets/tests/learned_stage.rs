//! The `learned` pipeline stage: built from pipeline YAML through the sampling core's external
//! stage registry, applied to rows, and its errors.

mod common;

use std::path::PathBuf;

use adasamp_nets::{register_learned_stage, FastSampler, LearnedSampler, LearnedStage};
use adasamp_sampling::{Context, PipelineSet, Row, Stage};
use candle_core::{DType, Device, Tensor};
use common::*;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("adasamp-learned-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn learned_stage_in_a_pipeline_equals_fast_and_candle() {
    register_learned_stage();
    let dir = tmp("pipe");
    let config = sn(16, 32, 2, 2, true);
    let sampler = LearnedSampler::seeded(&config, 4, DType::F32, &Device::Cpu).unwrap();
    sampler.save(&dir.join("ckpt")).unwrap();
    // Relative checkpoint path: resolved against the pipeline file's directory.
    let yaml = "pipelines:\n  - name: learned_only\n    processors:\n      - {name: learned, params: {checkpoint: ckpt}}\n  - name: top_k_then_learned\n    processors:\n      - {name: top_k, params: {top_k: 40}}\n      - {name: learned, params: {checkpoint: ckpt}}\n";
    std::fs::write(dir.join("p.yaml"), yaml).unwrap();
    let set = PipelineSet::from_path(&dir.join("p.yaml")).unwrap();

    let v = 500;
    let rows = random_logits_vec(1, v, 8, 3.0, 0.2, false);
    let raw: Vec<f32> = rows[0].iter().map(|&x| x as f32).collect();
    let want = sampler
        .forward(&Tensor::from_vec(raw.clone(), (1, v), &Device::Cpu).unwrap())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let mut fast = FastSampler::new(&sampler).unwrap();
    let mut fast_out = raw.clone();
    fast.apply(&mut fast_out).unwrap();

    let mut p = set.get("learned_only").unwrap().clone();
    let mut row = Row::new();
    let mut out = vec![0.0; v];
    p.apply_dense(&raw, 0, &Context::default(), &mut row, &mut out)
        .unwrap();
    assert_eq!(out, fast_out);
    for (a, b) in out.iter().zip(&want) {
        if *b == f32::NEG_INFINITY {
            assert_eq!(a, b);
        } else {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    // After top_k the row is sparse: the stage must equal the dense computation on the
    // top-k-masked row (absent tokens are -inf).
    let mut p2 = set.get("top_k_then_learned").unwrap().clone();
    let mut out2 = vec![0.0; v];
    p2.apply_dense(&raw, 0, &Context::default(), &mut row, &mut out2)
        .unwrap();
    let mut masked = vec![f32::NEG_INFINITY; v];
    let mut topk = set.get("learned_only").unwrap().clone();
    let mut tk = PipelineSet::from_yaml(
        "pipelines:\n  - name: k\n    processors:\n      - {name: top_k, params: {top_k: 40}}\n",
        None,
    )
    .unwrap()
    .get("k")
    .unwrap()
    .clone();
    tk.apply_dense(&raw, 0, &Context::default(), &mut row, &mut masked)
        .unwrap();
    let mut expect = vec![0.0; v];
    topk.apply_dense(&masked, 0, &Context::default(), &mut row, &mut expect)
        .unwrap();
    assert_eq!(out2.iter().filter(|x| x.is_finite()).count(), 40);
    for (a, b) in out2.iter().zip(&expect) {
        assert!(
            a == b || (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{a} vs {b}"
        );
    }
    // The spec keeps the resolved (absolute) checkpoint path: rebuilding elsewhere works.
    let resolved = set.to_yaml();
    assert!(
        resolved.contains(&dir.join("ckpt").display().to_string()),
        "{resolved}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn learned_stage_errors_name_the_parameter() {
    register_learned_stage();
    let e = PipelineSet::from_yaml(
        "pipelines:\n  - name: p1\n    processors:\n      - {name: learned, params: {checkpoint: /nonexistent/ckpt}}\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("p1")
            && e.contains("learned")
            && e.contains("checkpoint")
            && e.contains("/nonexistent/ckpt"),
        "{e}"
    );
    let e = PipelineSet::from_yaml(
        "pipelines:\n  - name: p2\n    processors:\n      - {name: learned, params: {checkpoint: x, temperature: 2}}\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("p2") && e.contains("temperature") && e.contains("unknown parameter"),
        "{e}"
    );
    let e = PipelineSet::from_yaml(
        "pipelines:\n  - name: p3\n    processors:\n      - {name: learned}\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing") && e.contains("checkpoint"), "{e}");
    let e = PipelineSet::from_yaml(
        "pipelines:\n  - name: p4\n    processors:\n      - {name: learnd}\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("learnd") && e.contains("learned"), "{e}");
    // A directory that is not a checkpoint.
    let dir = tmp("notckpt");
    let yaml = format!(
        "pipelines:\n  - name: p5\n    processors:\n      - {{name: learned, params: {{checkpoint: {}}}}}\n",
        dir.display()
    );
    let e = PipelineSet::from_yaml(&yaml, None).unwrap_err().to_string();
    assert!(
        e.contains("p5") && e.contains("checkpoint") && e.contains("config.json"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn learned_stage_rejects_non_finite_input_naming_the_row_and_token() {
    let sampler = LearnedSampler::seeded(&local(8), 0, DType::F32, &Device::Cpu).unwrap();
    let mut stage = LearnedStage::new(FastSampler::new(&sampler).unwrap(), "pl");
    let ctx = Context::default();
    for (bad, want) in [
        (f32::NAN, "row 7: input logit of token 3 is NaN"),
        (f32::INFINITY, "row 7: input logit of token 3 is +inf"),
    ] {
        let mut row = Row::new();
        row.load(&[0.0, 1.0, 2.0, 0.5, -1.0], 7).unwrap();
        row.values_mut()[3] = bad;
        let e = stage.apply(&mut row, &ctx).unwrap_err().to_string();
        assert!(
            e.contains("pl") && e.contains("learned") && e.contains(want),
            "{e}"
        );
    }
    // A sparse row: entry 1 of the kept tokens {2, 9} is token 9.
    let mut logits = vec![0.0f32; 12];
    logits[2] = 5.0;
    logits[9] = 4.0;
    let mut row = Row::new();
    row.load(&logits, 11).unwrap();
    row.retain_ge(4.0);
    assert_eq!(row.ids(), Some(&[2u32, 9][..]));
    row.values_mut()[1] = f32::NAN;
    let e = stage.apply(&mut row, &ctx).unwrap_err().to_string();
    assert!(e.contains("row 11: input logit of token 9 is NaN"), "{e}");
    let mut row = Row::new();
    row.load(&[0.0, 1.0], 2).unwrap();
    row.values_mut().fill(f32::NEG_INFINITY);
    let e = stage.apply(&mut row, &ctx).unwrap_err().to_string();
    assert!(e.contains("row 2: every input logit is -inf"), "{e}");
    // a valid row passes
    let mut row = Row::new();
    row.load(&[0.0, 1.0, 2.0], 0).unwrap();
    stage.apply(&mut row, &ctx).unwrap();
    assert!(row.values().iter().all(|v| v.is_finite()));
}

#[test]
fn cloned_learned_stages_share_their_weights() {
    let dir = tmp("shared");
    let config = sn(16, 32, 2, 2, true);
    let sampler = LearnedSampler::seeded(&config, 4, DType::F32, &Device::Cpu).unwrap();
    sampler.save(&dir.join("ckpt")).unwrap();
    let spec = adasamp_sampling::StageSpec::new("learned", &[]).with(
        "checkpoint",
        adasamp_sampling::spec::Value::String(dir.join("ckpt").to_string_lossy().into_owned()),
    );
    let stage = LearnedStage::from_spec(&spec, "p", 0).unwrap();
    let copy = stage.clone();
    assert!(std::sync::Arc::ptr_eq(
        stage.sampler().weights(),
        copy.sampler().weights()
    ));
    // A clone works without the checkpoint on disk: nothing is read again.
    std::fs::remove_dir_all(&dir).unwrap();
    let mut c2 = copy.clone();
    let mut row = Row::new();
    row.load(&[0.5, 1.0, -1.0, 2.0], 0).unwrap();
    c2.apply(&mut row, &Context::default()).unwrap();
    assert!(row.values().iter().all(|v| v.is_finite()));
}
