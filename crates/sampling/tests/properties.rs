//! Property tests of the sampling core's invariants.

mod common;
use common::*;

use adasamp_sampling::{draw, sample_batch, Context, Row, StageSpec};
use proptest::prelude::*;

/// A logits row: finite values on a coarse grid (so ties happen) plus some `-inf`, at least one
/// finite entry.
fn logits() -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(
        prop_oneof![8 => (-80i32..80).prop_map(|x| x as f32 / 4.0), 1 => Just(f32::NEG_INFINITY)],
        1..400,
    )
    .prop_filter("one finite", |v| v.iter().any(|x| x.is_finite()))
}

/// A truncation stage with a random parameter and `min_tokens_to_keep`.
fn truncation() -> impl Strategy<Value = StageSpec> {
    let keep = 1usize..6;
    prop_oneof![
        (1usize..50, keep.clone()).prop_map(|(k, m)| StageSpec::new(
            "top_k",
            &[("top_k", k as f64), ("min_tokens_to_keep", m as f64)]
        )),
        (0.01f64..1.0, keep.clone()).prop_map(|(p, m)| StageSpec::new(
            "top_p",
            &[("top_p", p), ("min_tokens_to_keep", m as f64)]
        )),
        (0.0f64..1.0, keep.clone()).prop_map(|(p, m)| StageSpec::new(
            "min_p",
            &[("min_p", p), ("min_tokens_to_keep", m as f64)]
        )),
        (0.01f64..1.0, keep.clone()).prop_map(|(p, m)| StageSpec::new(
            "typical",
            &[("mass", p), ("min_tokens_to_keep", m as f64)]
        )),
        (1e-4f64..0.5, keep.clone()).prop_map(|(e, m)| StageSpec::new(
            "epsilon",
            &[("epsilon", e), ("min_tokens_to_keep", m as f64)]
        )),
        (1e-4f64..0.5, keep.clone()).prop_map(|(e, m)| StageSpec::new(
            "eta",
            &[("epsilon", e), ("min_tokens_to_keep", m as f64)]
        )),
        (0.0f64..1.0, keep).prop_map(|(a, m)| StageSpec::new(
            "top_a",
            &[("top_a", a), ("min_tokens_to_keep", m as f64)]
        )),
        (0.1f64..4.0).prop_map(|n| StageSpec::new("top_n_sigma", &[("n", n)])),
        (0.1f64..3.0).prop_map(|t| StageSpec::new("temperature", &[("temperature", t)])),
        (0.0f64..10.0).prop_map(|mu| StageSpec::new("mirostat_v2", &[("tau", mu)])),
    ]
}

fn min_keep(s: &StageSpec) -> usize {
    s.params
        .get("min_tokens_to_keep")
        .and_then(|v| v.as_u64())
        .unwrap_or(1) as usize
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn kept_set_is_nonempty_holds_the_argmax_and_min_keep(z in logits(), s in truncation()) {
        let out = run(&mut from_specs(vec![s.clone()]), &z, &[], 0);
        let k = kept(&out);
        prop_assert!(!k.is_empty());
        let finite = z.iter().filter(|v| v.is_finite()).count();
        prop_assert!(k.len() >= min_keep(&s).min(finite), "{s:?}: kept {} < min_keep", k.len());
        // Typical sampling may drop the most likely token by design (HF semantics).
        if s.name != "typical" {
            let am = adasamp_sampling::math::argmax(&z).unwrap();
            prop_assert!(out[am].is_finite(), "{s:?} removed the argmax");
        }
        // Removed tokens stay removed.
        for (a, b) in z.iter().zip(&out) {
            prop_assert!(a.is_finite() || !b.is_finite());
        }
    }

    #[test]
    fn final_distribution_sums_to_one(z in logits(), s in truncation(), u in 0.0f64..1.0) {
        let mut row = Row::new();
        row.load(&z, 0).unwrap();
        from_specs(vec![s]).apply(&mut row, &Context::default()).unwrap();
        let n = row.values().len();
        let sample = draw(&mut row, u, n).unwrap();
        let total: f64 = sample.top.iter().map(|t| t.prob as f64).sum();
        prop_assert!((total - 1.0).abs() < 1e-5, "sum {total}");
        prop_assert!(sample.top.iter().any(|t| t.id == sample.token));
        prop_assert!(sample.prob > 0.0);
        prop_assert!(sample.top.windows(2).all(|w| w[0].prob >= w[1].prob));
    }

    #[test]
    fn truncation_is_permutation_equivariant(z in logits(), s in truncation(), seed in 0u64..1000) {
        let n = z.len();
        let mut perm: Vec<usize> = (0..n).collect();
        let mut r = adasamp_sampling::rng::seeded(seed, 0);
        for i in (1..n).rev() {
            let j = (adasamp_sampling::rng::uniform(&mut r) * (i + 1) as f64) as usize;
            perm.swap(i, j);
        }
        let zp: Vec<f32> = perm.iter().map(|&i| z[i]).collect();
        let out = run(&mut from_specs(vec![s.clone()]), &z, &[], 0);
        let outp = run(&mut from_specs(vec![s.clone()]), &zp, &[], 0);
        for (j, &i) in perm.iter().enumerate() {
            prop_assert!(outp[j] == out[i] || (outp[j] - out[i]).abs() < 1e-6, "{s:?}: token {i}: {} vs {}", out[i], outp[j]);
        }
    }

    #[test]
    fn sampling_is_deterministic_for_a_seed_and_batch_independent(rows in prop::collection::vec(logits().prop_map(|mut v| { v.resize(64, 0.5); v }), 1..5), seed in any::<u64>()) {
        let p = pipeline("[{name: top_p, params: {top_p: 0.9}}, {name: temperature, params: {temperature: 1.3}}]");
        let flat: Vec<f32> = rows.concat();
        let a = sample_batch(&p, &flat, 64, seed, 3).unwrap();
        let b = sample_batch(&p, &flat, 64, seed, 3).unwrap();
        prop_assert_eq!(&a, &b);
        // Row r alone gives the same token as row r inside the batch when on the same stream.
        let last = rows.len() - 1;
        let mut s = adasamp_sampling::SequenceSampler::new(p.clone(), seed, last as u64, 3);
        let alone = s.sample(&rows[last], &Context::default(), 0).unwrap();
        prop_assert_eq!(alone.token, a[last].token);
    }

    #[test]
    fn draw_frequencies_follow_the_distribution(seed in 0u64..50) {
        // p = [0.5, 0.3, 0.2]: 4000 draws land within 4σ of the expected counts.
        let z = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let mut counts = [0usize; 3];
        let mut r = adasamp_sampling::rng::seeded(seed, 0);
        let mut row = Row::new();
        for _ in 0..4000 {
            row.load(&z, 0).unwrap();
            let t = draw(&mut row, adasamp_sampling::rng::uniform(&mut r), 0).unwrap().token;
            counts[t as usize] += 1;
        }
        for (c, p) in counts.iter().zip([0.5f64, 0.3, 0.2]) {
            let sd = (4000.0 * p * (1.0 - p)).sqrt();
            prop_assert!((*c as f64 - 4000.0 * p).abs() < 4.0 * sd, "{counts:?}");
        }
    }
}
