//! Checkpoints: bitwise round trip, training state, atomic writes, clear errors for missing,
//! truncated, corrupt or mismatched files; the shipped YAML configs.

mod common;

use std::fs;
use std::path::PathBuf;

use adasamp_nets::checkpoint::{
    self, CONFIG_FILE, MODEL_FILE, TRAINING_STATE_FILE, TRAINING_STATE_JSON,
};
use adasamp_nets::{
    LearnedSampler, NetsError, OptimizerMoments, RngState, SamplerConfig, TrainingState,
};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::*;
use rand::SeedableRng;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "adasamp-nets-test-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn round_trip_is_bitwise_identical() {
    let root = scratch("roundtrip");
    let z = random_logits(3, 200, 4, 0.2, true);
    for (k, config) in small_variants().iter().enumerate() {
        let vm = VarMap::new();
        let s = LearnedSampler::init(config, &vm, 10 + k as u64, DType::F32, &Device::Cpu).unwrap();
        let dir = root.join(format!("ckpt{k}"));
        checkpoint::save(&dir, &s, None).unwrap();
        let loaded = checkpoint::load(&dir, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(loaded.meta.config, *config);
        assert_eq!(loaded.meta.parameter_count, s.parameter_count());
        assert!(loaded.training.is_none());
        assert_eq!(
            bits(&s.forward(&z).unwrap()),
            bits(&loaded.sampler.forward(&z).unwrap())
        );
        for ((na, ta), (nb, tb)) in s
            .named_parameters()
            .iter()
            .zip(loaded.sampler.named_parameters().iter())
        {
            assert_eq!(na, nb);
            assert_eq!(bits(ta), bits(tb), "{na}");
        }
        let dir2 = root.join(format!("ckpt{k}-b"));
        loaded.sampler.save(&dir2).unwrap();
        let reloaded = LearnedSampler::load(&dir2, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            bits(&s.forward(&z).unwrap()),
            bits(&reloaded.forward(&z).unwrap())
        );
        let again = checkpoint::load_expecting(&dir, config, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(again.sampler.parameter_count(), s.parameter_count());
        // Nothing but the checkpoint itself in the parent directory.
        let leftovers: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn training_state_round_trip_and_resume() {
    let root = scratch("training");
    let config = load_config("sampling_network_tiny.yaml");
    let vm = VarMap::new();
    let s = LearnedSampler::init(&config, &vm, 3, DType::F32, &Device::Cpu).unwrap();
    let mut moments = OptimizerMoments::default();
    for (i, (name, t)) in s.named_parameters().into_iter().enumerate() {
        moments
            .m
            .insert(name.clone(), (t.ones_like().unwrap() * (i as f64)).unwrap());
        moments.v.insert(name, (t.sqr().unwrap() + 0.5).unwrap());
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
    let _ = rand::RngCore::next_u64(&mut rng);
    let mut state = TrainingState {
        step: 120,
        epoch: 1,
        batch_in_epoch: 37,
        rows_seen: 12_345,
        seed: 99,
        rng: Some(RngState::capture(&rng)),
        ..TrainingState::default()
    };
    state.schedule.kind = "cosine".into();
    state.schedule.position = 120;
    state.optimizer.t = 120;
    state
        .extra
        .insert("last_loss".into(), serde_json::json!(0.25));
    let dir = root.join("step-120");
    checkpoint::save(&dir, &s, Some((&state, &moments))).unwrap();
    for f in [
        MODEL_FILE,
        CONFIG_FILE,
        TRAINING_STATE_FILE,
        TRAINING_STATE_JSON,
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let loaded = checkpoint::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let (st, mo) = loaded.training.expect("training state");
    assert_eq!(st, state);
    assert_eq!(mo.m.len(), moments.m.len());
    for (k, t) in &moments.v {
        assert_eq!(bits(t), bits(&mo.v[k]), "v.{k}");
    }
    for (k, t) in &moments.m {
        assert_eq!(bits(t), bits(&mo.m[k]), "m.{k}");
    }
    // Resume: trainable variables from the checkpoint's weights.
    let (_, weights) = checkpoint::load_weights(&dir, DType::F32, &Device::Cpu).unwrap();
    let vm2 = VarMap::new();
    let resumed =
        LearnedSampler::trainable_from(&config, weights, &vm2, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(vm2.all_vars().len(), s.named_parameters().len());
    let z = random_logits(2, 50, 1, 0.1, false);
    assert_eq!(
        bits(&s.forward(&z).unwrap()),
        bits(&resumed.forward(&z).unwrap())
    );

    // Overwriting replaces the previous checkpoint (here: without training state).
    checkpoint::save(&dir, &s, None).unwrap();
    assert!(!dir.join(TRAINING_STATE_JSON).exists());
    // A moments set that misses a parameter is refused before anything is written.
    moments.m.remove("encoder.up.bias");
    let dir2 = root.join("bad");
    let e = checkpoint::save(&dir2, &s, Some((&state, &moments))).unwrap_err();
    assert!(
        matches!(e, NetsError::MissingParameter { ref name, .. } if name == "encoder.up.bias"),
        "{e}"
    );
    assert!(!dir2.exists());
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn save_errors_leave_no_partial_directory() {
    let root = scratch("atomic");
    let s = LearnedSampler::seeded(&local(8), 1, DType::F32, &Device::Cpu).unwrap();
    // The destination is a regular file: refused, file untouched, no temporary left.
    let file = root.join("occupied");
    fs::write(&file, b"keep me").unwrap();
    assert!(checkpoint::save(&file, &s, None).is_err());
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
    // The parent does not exist.
    let e = checkpoint::save(&root.join("no/such/dir"), &s, None).unwrap_err();
    assert!(matches!(e, NetsError::MissingFile { .. }), "{e}");
    let names: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("occupied")]);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn clear_errors_for_bad_checkpoints() {
    let root = scratch("errors");
    let dev = Device::Cpu;
    let sn_cfg = load_config("sampling_network_tiny.yaml");
    let s = LearnedSampler::seeded(&sn_cfg, 2, DType::F32, &dev).unwrap();
    let dir = root.join("sn");
    checkpoint::save(&dir, &s, None).unwrap();

    // Missing directory / files name the path.
    let e = checkpoint::load(&root.join("absent"), DType::F32, &dev).unwrap_err();
    assert!(
        matches!(e, NetsError::MissingFile { .. }) && e.to_string().contains("absent"),
        "{e}"
    );

    // Caller expected another architecture.
    let e = checkpoint::load_expecting(&dir, &local(64), DType::F32, &dev).unwrap_err();
    assert!(matches!(e, NetsError::ConfigMismatch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("local_probability_transform") && msg.contains("sampling_network"),
        "{msg}"
    );

    // config.json says local, the weights are a sampling network's.
    let other = root.join("mixed");
    fs::create_dir(&other).unwrap();
    fs::copy(dir.join(MODEL_FILE), other.join(MODEL_FILE)).unwrap();
    let meta = serde_json::json!({
        "format": "adasamp-sampler", "format_version": 1,
        "config": {"architecture": "local_probability_transform", "hidden": 64},
        "parameter_count": 213, "dtype": "f32"
    });
    fs::write(other.join(CONFIG_FILE), meta.to_string()).unwrap();
    let e = checkpoint::load(&other, DType::F32, &dev).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, NetsError::MissingParameter { .. }), "{msg}");
    assert!(
        msg.contains("mlp.gate.weight") && msg.contains("look like a sampling_network"),
        "{msg}"
    );
    assert!(msg.contains(MODEL_FILE), "{msg}");

    // Same architecture, other sizes: the shape mismatch names the parameter and both shapes.
    let mut bigger = sn_cfg.clone();
    if let SamplerConfig::SamplingNetwork(c) = &mut bigger {
        c.d_ff = 64;
    }
    let meta = serde_json::json!({
        "format": "adasamp-sampler", "format_version": 1,
        "config": bigger, "parameter_count": adasamp_nets::parameter_count(&bigger).unwrap(), "dtype": "f32"
    });
    fs::write(other.join(CONFIG_FILE), meta.to_string()).unwrap();
    let e = checkpoint::load(&other, DType::F32, &dev).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, NetsError::ShapeMismatch { .. }), "{msg}");
    assert!(
        msg.contains("blocks.0.ffn.gate.weight")
            && msg.contains("[42, 16]")
            && msg.contains("[21, 16]"),
        "{msg}"
    );

    // Extra parameters: a tiny network without `scale` reading weights that have it.
    let mut no_scale = sn_cfg.clone();
    if let SamplerConfig::SamplingNetwork(c) = &mut no_scale {
        c.scale = false;
    }
    let meta = serde_json::json!({
        "format": "adasamp-sampler", "format_version": 1,
        "config": no_scale, "parameter_count": adasamp_nets::parameter_count(&no_scale).unwrap(), "dtype": "f32"
    });
    fs::write(other.join(CONFIG_FILE), meta.to_string()).unwrap();
    let e = checkpoint::load(&other, DType::F32, &dev).unwrap_err();
    assert!(
        matches!(e, NetsError::UnexpectedParameter { ref name, .. } if name.starts_with("scale.")),
        "{e}"
    );

    // Wrong parameter_count in config.json.
    let meta = serde_json::json!({
        "format": "adasamp-sampler", "format_version": 1,
        "config": sn_cfg, "parameter_count": 7, "dtype": "f32"
    });
    fs::write(other.join(CONFIG_FILE), meta.to_string()).unwrap();
    let e = checkpoint::load(&other, DType::F32, &dev).unwrap_err();
    assert!(
        matches!(e, NetsError::BadMetadata { .. }) && e.to_string().contains("parameter_count"),
        "{e}"
    );

    // Unknown field / garbage in config.json.
    fs::write(other.join(CONFIG_FILE), "{not json").unwrap();
    let e = checkpoint::load(&other, DType::F32, &dev).unwrap_err();
    assert!(
        matches!(e, NetsError::BadMetadata { .. }) && e.to_string().contains(CONFIG_FILE),
        "{e}"
    );

    // Truncated safetensors.
    let trunc = root.join("trunc");
    fs::create_dir(&trunc).unwrap();
    fs::copy(dir.join(CONFIG_FILE), trunc.join(CONFIG_FILE)).unwrap();
    let bytes = fs::read(dir.join(MODEL_FILE)).unwrap();
    fs::write(trunc.join(MODEL_FILE), &bytes[..bytes.len() / 2]).unwrap();
    let e = checkpoint::load(&trunc, DType::F32, &dev).unwrap_err();
    assert!(matches!(e, NetsError::CorruptSafetensors { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&trunc.join(MODEL_FILE).display().to_string()),
        "{e}"
    );
    // Garbage header.
    fs::write(
        trunc.join(MODEL_FILE),
        b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage",
    )
    .unwrap();
    let e = checkpoint::load(&trunc, DType::F32, &dev).unwrap_err();
    assert!(matches!(e, NetsError::CorruptSafetensors { .. }), "{e}");
    // Missing weights file.
    fs::remove_file(trunc.join(MODEL_FILE)).unwrap();
    let e = checkpoint::load(&trunc, DType::F32, &dev).unwrap_err();
    assert!(
        matches!(e, NetsError::MissingFile { .. }) && e.to_string().contains(MODEL_FILE),
        "{e}"
    );

    // Half a training state.
    fs::write(dir.join(TRAINING_STATE_JSON), "{}").unwrap();
    let e = checkpoint::load(&dir, DType::F32, &dev).unwrap_err();
    assert!(
        matches!(e, NetsError::MissingFile { .. }) && e.to_string().contains(TRAINING_STATE_FILE),
        "{e}"
    );
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn f64_checkpoint_loads_as_f32_and_f64() {
    let root = scratch("f64");
    let c = simple(8, true);
    let s = LearnedSampler::seeded(&c, 6, DType::F64, &Device::Cpu).unwrap();
    let dir = root.join("c");
    checkpoint::save(&dir, &s, None).unwrap();
    assert_eq!(checkpoint::read_meta(&dir).unwrap().dtype, "f64");
    let z = random_logits(2, 30, 2, 0.2, false)
        .to_dtype(DType::F64)
        .unwrap();
    let l64 = checkpoint::load(&dir, DType::F64, &Device::Cpu).unwrap();
    assert_eq!(
        s.forward(&z)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap(),
        l64.sampler
            .forward(&z)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
    );
    let l32 = checkpoint::load(&dir, DType::F32, &Device::Cpu).unwrap();
    assert!(max_abs_diff(&s.forward(&z).unwrap(), &l32.sampler.forward(&z).unwrap()) < 1e-4);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn shipped_configs_parse_and_validate() {
    for (file, arch) in [
        ("local.yaml", "local_probability_transform"),
        ("simple_dynamic.yaml", "simple_distribution_aware_transform"),
        ("simple_static.yaml", "simple_distribution_aware_transform"),
        ("sampling_network.yaml", "sampling_network"),
        ("sampling_network_tiny.yaml", "sampling_network"),
    ] {
        let c = load_config(file);
        assert_eq!(c.architecture(), arch, "{file}");
        let back = SamplerConfig::from_yaml_str(&c.to_yaml().unwrap(), file).unwrap();
        assert_eq!(back, c);
    }
    let e = SamplerConfig::from_yaml_file(&config_path("nope.yaml")).unwrap_err();
    assert!(
        matches!(e, NetsError::MissingFile { .. }) && e.to_string().contains("nope.yaml"),
        "{e}"
    );
}
