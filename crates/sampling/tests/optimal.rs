//! Properties of optimal sampling's α solvers on random small rows, checked by substitution
//! against the f64 reference.

use adasamp_sampling::optimal::reference::{teacher_support, Pair};
use adasamp_sampling::optimal::{AlphaMethod, AlphaStatus, MixOptions, Mixer};
use proptest::prelude::*;

fn rows() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    (2usize..40).prop_flat_map(|n| {
        (
            prop::collection::vec(-15.0f32..15.0, n),
            prop::collection::vec(-15.0f32..15.0, n),
        )
    })
}

fn method() -> impl Strategy<Value = AlphaMethod> {
    prop::sample::select(AlphaMethod::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn alpha_is_in_the_bracket_and_a_root_checks_by_substitution(
        (theta, teacher) in rows(),
        method in method(),
        lo in 0.0f64..0.5,
        width in 0.0f64..0.5,
        top_k in prop::option::of(1usize..12),
    ) {
        let hi = lo + width;
        let mut m = Mixer::new(MixOptions {
            method,
            alpha: lo,
            alpha_min: lo,
            alpha_max: hi,
            teacher_top_k: top_k,
            ..MixOptions::default()
        }).unwrap();
        let mut out = Vec::new();
        let s = m.mix(&theta, &teacher, 0, false, &mut out).unwrap();
        prop_assert!(s.alpha >= lo && s.alpha <= hi, "{s:?}");
        let keep = teacher_support(&teacher, top_k, None);
        let pair = Pair::new(&theta, &teacher, Some(&keep));
        let truth = pair.residual(method, s.alpha);
        match s.status {
            AlphaStatus::Root | AlphaStatus::Equal => prop_assert!(truth.abs() <= 1e-6, "{s:?} Δ={truth}"),
            AlphaStatus::BracketEnd => {
                // No sign change on the bracket, and the nearer end.
                let (a, b) = (pair.residual(method, lo), pair.residual(method, hi));
                prop_assert!(a.signum() == b.signum(), "{s:?}: Δ({lo})={a} Δ({hi})={b}");
                prop_assert!(truth.abs() <= a.abs().min(b.abs()) + 1e-6);
            }
            AlphaStatus::Fixed => prop_assert_eq!(s.alpha, lo),
            AlphaStatus::ClosedForm => {
                let (ht, hs) = pair.entropies();
                let want = if ht + hs > 0.0 { ht / (ht + hs) } else { 0.5 };
                prop_assert!((s.alpha - want.clamp(lo, hi)).abs() < 1e-6);
            }
            other => prop_assert!(false, "{other:?}"),
        }
        // Diagnostics are distributions' facts: ESS in (0, 1], KL ≥ 0.
        prop_assert!(s.ess_theta > 0.0 && s.ess_theta <= 1.0 + 1e-9);
        prop_assert!(s.ess_teacher > 0.0 && s.ess_teacher <= 1.0 + 1e-9);
        prop_assert!(s.kl_q_theta >= 0.0 && s.kl_q_teacher >= 0.0);
        // q* is the geometric mixture at α on the teacher's support.
        for (((o, a), b), k) in out.iter().zip(&theta).zip(&teacher).zip(&keep) {
            let want = if *k {
                ((1.0 - s.alpha) * *a as f64 + s.alpha * *b as f64) as f32
            } else {
                f32::NEG_INFINITY
            };
            prop_assert_eq!(*o, want);
        }
    }

    #[test]
    fn roots_on_the_whole_bracket_check_by_substitution(
        (theta, teacher) in rows(),
        method in prop::sample::select(vec![AlphaMethod::KlSymmetry, AlphaMethod::EssBalance]),
        top_k in prop::option::of(1usize..12),
    ) {
        // [0, 1]: the ends come from the preparation (kl_symmetry) or the ratio pass
        // (ess_balance), and a root always exists unless the distributions agree.
        let mut m = Mixer::new(MixOptions {
            method,
            teacher_top_k: top_k,
            ..MixOptions::default()
        }).unwrap();
        let s = m.alpha(&theta, &teacher, 0).unwrap();
        let keep = teacher_support(&teacher, top_k, None);
        let truth = Pair::new(&theta, &teacher, Some(&keep)).residual(method, s.alpha);
        prop_assert!(matches!(s.status, AlphaStatus::Root | AlphaStatus::Equal), "{s:?}");
        prop_assert!(truth.abs() <= 1e-6, "{s:?} Δ={truth}");
        prop_assert!((s.residual - truth).abs() <= 1e-6, "{s:?} Δ={truth}");
    }

    #[test]
    fn the_kl_residual_increases_in_alpha((theta, teacher) in rows(), a in 0.0f64..1.0, b in 0.0f64..1.0) {
        let pair = Pair::new(&theta, &teacher, None);
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(pair.residual(AlphaMethod::KlSymmetry, lo) <= pair.residual(AlphaMethod::KlSymmetry, hi) + 1e-12);
    }
}
