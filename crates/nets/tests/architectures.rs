//! Forward-pass properties of the three architectures: parameter counts, exact permutation
//! equivariance, `-inf` handling, finite outputs across vocabulary sizes, seeded init.

mod common;

use std::sync::OnceLock;

use adasamp_nets::{describe, parameter_count, LearnedSampler, NetsError, SamplerConfig};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use common::*;
use proptest::prelude::*;

fn swiglu(i: usize, h: usize, o: usize) -> usize {
    let f = 2 * h / 3;
    2 * (i * f + f) + f * o + o
}

/// Parameter count from the SPEC §2 formulas, independently of the implementation.
fn expected_count(c: &SamplerConfig) -> usize {
    match c {
        SamplerConfig::LocalProbabilityTransform(c) => swiglu(1, c.hidden, 1) + 2,
        SamplerConfig::SimpleDistributionAwareTransform(c) => {
            let h = c.hidden;
            2 * h + swiglu(h + 2, h, 1) + if c.dynamic_truncation { 6 } else { 2 }
        }
        SamplerConfig::SamplingNetwork(c) => {
            let d = c.d_model;
            let block = (d * 3 * d + 3 * d) + (d * d + d) + swiglu(d, c.d_ff, d) + 4 * d;
            swiglu(1, c.encoder_hidden, d)
                + c.n_blocks * block
                + swiglu(2 * d, d, 1)
                + if c.scale { swiglu(d, d / 2, 1) } else { 0 }
                + swiglu(d, d / 2, 2)
        }
    }
}

#[test]
fn parameter_counts_of_the_shipped_configs() {
    let cases = [
        ("local.yaml", 213),
        ("simple_dynamic.yaml", 5805),
        ("simple_static.yaml", 5801),
        ("sampling_network.yaml", 38_893),
        ("sampling_network_tiny.yaml", 5_901),
    ];
    for (file, n) in cases {
        let c = load_config(file);
        assert_eq!(expected_count(&c), n, "{file} (formula)");
        assert_eq!(parameter_count(&c).unwrap(), n, "{file}");
        let s = LearnedSampler::seeded(&c, 1, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(s.parameter_count(), n, "{file}");
    }
    let mut no_scale = load_config("sampling_network.yaml");
    if let SamplerConfig::SamplingNetwork(c) = &mut no_scale {
        c.scale = false;
    }
    assert_eq!(parameter_count(&no_scale).unwrap(), 38_893 - 671);
    for c in small_variants() {
        assert_eq!(parameter_count(&c).unwrap(), expected_count(&c), "{c}");
    }
}

#[test]
fn describe_groups_parameters_by_module() {
    let s = describe(&load_config("sampling_network.yaml")).unwrap();
    assert_eq!(s.total, 38_893);
    let modules: Vec<(&str, usize)> = s.modules.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    assert_eq!(
        modules,
        vec![
            ("encoder", 788),
            ("blocks.0", 8500),
            ("blocks.1", 8500),
            ("blocks.2", 8500),
            ("blocks.3", 8500),
            ("transform", 2752),
            ("scale", 671),
            ("truncation", 682)
        ]
    );
    assert!(s.layers.contains(&("blocks.0.attn.qkv".to_string(), 3168)));
    assert!(s
        .parameters
        .contains(&("blocks.3.ln2.weight".to_string(), vec![32])));
    assert!(s
        .parameters
        .contains(&("encoder.gate.weight".to_string(), vec![21, 1])));
    let text = s.to_string();
    assert!(
        text.contains("parameters: 38893") && text.contains("blocks.2"),
        "{text}"
    );
}

fn check_equivariance(sampler: &LearnedSampler, z: &Tensor, seed: u64) -> f64 {
    let v = z.dim(1).unwrap();
    let perm = permutation(v, seed);
    let idx = Tensor::new(perm.as_slice(), &Device::Cpu).unwrap();
    let out = sampler.forward(z).unwrap();
    let out_perm = sampler.forward(&z.index_select(&idx, 1).unwrap()).unwrap();
    // out_perm[:, i] = S(z)[:, perm[i]]
    max_abs_diff(&out_perm, &out.index_select(&idx, 1).unwrap())
}

fn full_size_variants() -> Vec<SamplerConfig> {
    vec![
        load_config("local.yaml"),
        load_config("simple_dynamic.yaml"),
        load_config("simple_static.yaml"),
        load_config("sampling_network.yaml"),
        sn(32, 64, 4, 4, false),
    ]
}

#[test]
fn exact_permutation_equivariance() {
    let z = random_logits(4, 1000, 11, 0.1, true);
    for (k, c) in full_size_variants().iter().enumerate() {
        let s = LearnedSampler::seeded(c, 100 + k as u64, DType::F32, &Device::Cpu).unwrap();
        for seed in [1, 2] {
            let d = check_equivariance(&s, &z, seed);
            assert!(d <= 1e-5, "{c}: max |S(Πz) − ΠS(z)| = {d}");
        }
    }
}

#[test]
fn masked_inputs_give_neg_inf_and_finite_elsewhere() {
    for v in [2usize, 3, 17, 1000] {
        let z = random_logits(3, v, v as u64, 0.3, true);
        for c in full_size_variants().iter().chain(small_variants().iter()) {
            let s = LearnedSampler::seeded(c, 5, DType::F32, &Device::Cpu).unwrap();
            let out = s.forward(&z).unwrap();
            assert_eq!(out.dims(), z.dims());
            assert_masked_finite(&z, &out, &format!("{c}, V={v}"));
        }
    }
}

#[test]
fn large_vocabulary_row() {
    let v = 262_144;
    let z = random_logits(1, v, 3, 0.01, false);
    let configs = [
        load_config("local.yaml"),
        load_config("simple_dynamic.yaml"),
        load_config("simple_static.yaml"),
        load_config("sampling_network_tiny.yaml"),
        load_config("sampling_network.yaml"),
    ];
    for c in &configs {
        let s = LearnedSampler::seeded(c, 9, DType::F32, &Device::Cpu).unwrap();
        let out = s.forward(&z).unwrap();
        assert_masked_finite(&z, &out, &format!("{c}, V={v}"));
    }
}

#[test]
fn masked_tokens_behave_as_absent() {
    // The kept tokens' outputs equal the outputs for the row with the masked tokens deleted.
    let rows = random_logits_vec(3, 60, 21, 3.0, 0.4, true);
    for c in small_variants() {
        let s = LearnedSampler::seeded(&c, 77, DType::F32, &Device::Cpu).unwrap();
        for row in &rows {
            let full = s
                .forward(&to_tensor(std::slice::from_ref(row), DType::F32))
                .unwrap();
            let kept: Vec<f64> = row.iter().copied().filter(|x| x.is_finite()).collect();
            let small = s.forward(&to_tensor(&[kept], DType::F32)).unwrap();
            let full: Vec<f32> = full.flatten_all().unwrap().to_vec1().unwrap();
            let full_kept: Vec<f32> = full
                .iter()
                .zip(row)
                .filter(|(_, x)| x.is_finite())
                .map(|(y, _)| *y)
                .collect();
            let small: Vec<f32> = small.flatten_all().unwrap().to_vec1().unwrap();
            for (a, b) in full_kept.iter().zip(&small) {
                assert!((a - b).abs() <= 1e-5, "{c}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn output_dtype_follows_input_and_f64_model_agrees() {
    let c = load_config("sampling_network_tiny.yaml");
    let s32 = LearnedSampler::seeded(&c, 4, DType::F32, &Device::Cpu).unwrap();
    let s64 = LearnedSampler::seeded(&c, 4, DType::F64, &Device::Cpu).unwrap();
    let z = random_logits(2, 40, 8, 0.2, false);
    let o32 = s32.forward(&z).unwrap();
    assert_eq!(o32.dtype(), DType::F32);
    let o64 = s64.forward(&z.to_dtype(DType::F64).unwrap()).unwrap();
    assert_eq!(o64.dtype(), DType::F64);
    assert!(max_abs_diff(&o32, &o64) < 1e-4);
}

#[test]
fn seeded_init_is_reproducible_and_pytorch_like() {
    let c = load_config("sampling_network_tiny.yaml");
    let dev = Device::Cpu;
    let vm1 = VarMap::new();
    let a = LearnedSampler::init(&c, &vm1, 42, DType::F32, &dev).unwrap();
    let vm2 = VarMap::new();
    let b = LearnedSampler::init(&c, &vm2, 42, DType::F32, &dev).unwrap();
    let inference = LearnedSampler::seeded(&c, 42, DType::F32, &dev).unwrap();
    let other = LearnedSampler::seeded(&c, 43, DType::F32, &dev).unwrap();
    assert_eq!(vm1.all_vars().len(), a.named_parameters().len());
    let mut differs = false;
    for (((na, ta), (nb, tb)), ((ni, ti), (_, to))) in a
        .named_parameters()
        .iter()
        .zip(b.named_parameters().iter())
        .zip(
            inference
                .named_parameters()
                .iter()
                .zip(other.named_parameters().iter()),
        )
    {
        assert_eq!(na, nb);
        assert_eq!(na, ni);
        let va: Vec<f32> = ta.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(
            va,
            tb.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{na}"
        );
        assert_eq!(
            va,
            ti.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{na}"
        );
        differs |= va != to.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        if na.ends_with("weight") && !na.contains(".ln") {
            let fan_in = *ta.dims().last().unwrap() as f32;
            let bound = 1.0 / fan_in.sqrt();
            assert!(va.iter().all(|x| x.abs() <= bound), "{na} outside ±{bound}");
        }
        if na.contains(".ln") && na.ends_with("weight") {
            assert!(va.iter().all(|&x| x == 1.0));
        }
    }
    assert!(differs, "different seeds gave identical weights");

    let local = LearnedSampler::seeded(&load_config("local.yaml"), 1, DType::F32, &dev).unwrap();
    let p = local.named_parameters();
    let get = |n: &str| -> f32 {
        p.iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .to_vec1::<f32>()
            .unwrap()[0]
    };
    assert_eq!(get("truncation.scale"), 1.0);
    assert_eq!(get("truncation.threshold"), 10.0);
    let st =
        LearnedSampler::seeded(&load_config("simple_static.yaml"), 1, DType::F32, &dev).unwrap();
    let p = st.named_parameters();
    let get = |n: &str| -> f32 {
        p.iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .to_vec1::<f32>()
            .unwrap()[0]
    };
    assert_eq!(get("truncation.scale_raw"), 0.5413);
    assert_eq!(get("truncation.threshold_raw"), 10.0);
}

#[test]
fn trainable_parameters_are_the_varmap_variables() {
    let c = load_config("local.yaml");
    let vm = VarMap::new();
    let s = LearnedSampler::init(&c, &vm, 1, DType::F32, &Device::Cpu).unwrap();
    let z = random_logits(2, 30, 1, 0.2, false);
    let before = s.forward(&z).unwrap();
    let data = vm.data().lock().unwrap();
    let var = &data["truncation.threshold"];
    var.set(&Tensor::new(&[-3.0f32], &Device::Cpu).unwrap())
        .unwrap();
    drop(data);
    let after = s.forward(&z).unwrap();
    assert!(
        max_abs_diff(&before, &after) > 1e-3,
        "changing a Var did not change the output"
    );
}

#[test]
fn invalid_inputs_are_rejected() {
    let s =
        LearnedSampler::seeded(&load_config("local.yaml"), 1, DType::F32, &Device::Cpu).unwrap();
    let dev = Device::Cpu;
    let ninf = f32::NEG_INFINITY;
    let cases = [
        Tensor::new(&[[0.0f32, 1.0], [ninf, ninf]], &dev).unwrap(),
        Tensor::new(&[[0.0f32, f32::NAN]], &dev).unwrap(),
        Tensor::new(&[[0.0f32, f32::INFINITY]], &dev).unwrap(),
        Tensor::new(&[0.0f32, 1.0], &dev).unwrap(),
    ];
    for z in cases {
        match s.forward(&z) {
            Err(NetsError::InvalidLogits { .. } | NetsError::BadShape { .. }) => {}
            other => panic!("{z}: expected InvalidLogits or BadShape, got {other:?}"),
        }
    }
    let e = s
        .forward(&Tensor::new(&[[0.0f32, 1.0], [ninf, ninf]], &dev).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("row 1"), "{e}");
}

/// The largest finite |x| of a tensor (0 when none is finite).
fn finite_max_abs(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
        .into_iter()
        .filter(|x| x.is_finite())
        .fold(0.0, |m, x| m.max(x.abs()))
}

fn proptest_samplers() -> &'static Vec<LearnedSampler> {
    static S: OnceLock<Vec<LearnedSampler>> = OnceLock::new();
    S.get_or_init(|| {
        small_variants()
            .iter()
            .enumerate()
            .map(|(k, c)| LearnedSampler::seeded(c, k as u64, DType::F32, &Device::Cpu).unwrap())
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn prop_equivariant_and_finite(
        n in 1usize..3,
        v in 2usize..24,
        seed in any::<u64>(),
        mask_frac in 0.0f64..0.7,
        sigma in 0.1f64..8.0,
    ) {
        let z = to_tensor(&random_logits_vec(n, v, seed, sigma, mask_frac, false), DType::F32);
        for s in proptest_samplers() {
            let out = s.forward(&z).unwrap();
            assert_masked_finite(&z, &out, &s.config().to_string());
            let d = check_equivariance(s, &z, seed ^ 0x5555);
            // f32 sums over the vocabulary in a permuted order round differently: the
            // bound scales with the output's magnitude (large `sigma` gives |S(z)| ≫ 1).
            let tol = 1e-5 * finite_max_abs(&out).max(1.0);
            prop_assert!(d <= tol, "{}: {} > {}", s.config(), d, tol);
        }
    }
}
