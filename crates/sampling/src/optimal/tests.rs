use super::reference::{teacher_support, Pair};
use super::*;
use crate::synth::{self, RowKind};

fn logits(p: &[f64]) -> Vec<f32> {
    p.iter().map(|x| x.ln() as f32).collect()
}

fn mixer(method: AlphaMethod) -> Mixer {
    Mixer::new(MixOptions {
        method,
        ..MixOptions::default()
    })
    .unwrap()
}

fn pairs(vocab: usize, count: u64) -> Vec<(Vec<f32>, Vec<f32>)> {
    (0..count)
        .map(|s| crate::bench::optimal_pair(vocab, s))
        .collect()
}

#[test]
fn a_mirror_pair_meets_in_the_middle_for_every_method() {
    let theta = logits(&[0.5, 0.3, 0.15, 0.05]);
    let teacher = logits(&[0.05, 0.15, 0.3, 0.5]);
    for method in AlphaMethod::ALL {
        if method == AlphaMethod::Fixed {
            continue;
        }
        let s = mixer(method).alpha(&theta, &teacher, 0).unwrap();
        assert!((s.alpha - 0.5).abs() < 1e-6, "{method}: {s:?}");
    }
}

#[test]
fn hand_made_roots_check_by_substitution() {
    // θ peaked, teacher flatter: the KL root is found and checks in f64.
    let theta = logits(&[0.9, 0.05, 0.03, 0.02]);
    let teacher = logits(&[0.4, 0.3, 0.2, 0.1]);
    let pair = Pair::new(&theta, &teacher, None);
    for method in [
        AlphaMethod::KlSymmetry,
        AlphaMethod::ReverseKlSymmetry,
        AlphaMethod::EssBalance,
    ] {
        let s = mixer(method).alpha(&theta, &teacher, 0).unwrap();
        if method == AlphaMethod::ReverseKlSymmetry {
            // Δ is linear here and keeps its sign on [0, 1]: the nearer end.
            let (a, b) = (pair.residual(method, 0.0), pair.residual(method, 1.0));
            assert!(a.signum() == b.signum() && b.abs() < a.abs(), "{a} {b}");
            assert_eq!((s.alpha, s.status), (1.0, AlphaStatus::BracketEnd));
            continue;
        }
        assert_eq!(s.status, AlphaStatus::Root, "{method}");
        assert!(s.alpha > 0.0 && s.alpha < 1.0, "{method}: {s:?}");
        let r = pair.residual(method, s.alpha);
        assert!(r.abs() <= 1e-6, "{method}: Δ({}) = {r}", s.alpha);
        if method == AlphaMethod::KlSymmetry {
            let (a, b) = pair.kl(s.alpha);
            assert!((a - b).abs() < 1e-6, "KL(q‖θ) {a} vs KL(q‖t) {b}");
        }
        if method == AlphaMethod::EssBalance {
            let (a, b) = pair.ess(s.alpha);
            assert!((a / b - 1.0).abs() < 1e-6, "ESS {a} vs {b}");
        }
    }
    // Entropy: H(θ)/(H(θ)+H(t)).
    let (ht, hs) = pair.entropies();
    let s = mixer(AlphaMethod::Entropy)
        .alpha(&theta, &teacher, 0)
        .unwrap();
    assert!((s.alpha - ht / (ht + hs)).abs() < 1e-6);
    assert_eq!(s.status, AlphaStatus::ClosedForm);
}

#[test]
fn random_rows_solve_to_the_tolerance_at_both_vocabulary_sizes() {
    for vocab in [1000, 49152] {
        for (r, (theta, teacher)) in pairs(vocab, 6).iter().enumerate() {
            let pair = Pair::new(theta, teacher, None);
            for method in [
                AlphaMethod::KlSymmetry,
                AlphaMethod::ReverseKlSymmetry,
                AlphaMethod::EssBalance,
            ] {
                let s = mixer(method).alpha(theta, teacher, r).unwrap();
                let truth = pair.residual(method, s.alpha);
                match s.status {
                    AlphaStatus::Root => {
                        assert!(
                            truth.abs() <= 1e-6,
                            "V={vocab} row {r} {method}: {s:?} Δ={truth}"
                        )
                    }
                    AlphaStatus::BracketEnd => {
                        // No sign change on [0, 1].
                        let (a, b) = (pair.residual(method, 0.0), pair.residual(method, 1.0));
                        assert_eq!(a.signum(), b.signum(), "V={vocab} row {r} {method}: {s:?}");
                    }
                    other => panic!("V={vocab} row {r} {method}: {other:?}"),
                }
                assert!((s.residual - truth).abs() < 1e-6, "{s:?} vs {truth}");
            }
        }
    }
}

#[test]
fn kl_and_ess_roots_of_related_rows_lie_inside_the_bracket() {
    // The seed's ess_balance bisection moved the wrong end and returned 0 or 1; the true roots
    // of related rows are interior.
    for (r, (theta, teacher)) in pairs(4096, 6).iter().enumerate() {
        for method in [AlphaMethod::KlSymmetry, AlphaMethod::EssBalance] {
            let s = mixer(method).alpha(theta, teacher, r).unwrap();
            assert_eq!(s.status, AlphaStatus::Root, "row {r} {method}");
            assert!(
                s.alpha > 1e-3 && s.alpha < 1.0 - 1e-3,
                "row {r} {method}: {s:?}"
            );
        }
    }
}

#[test]
fn newton_takes_few_passes() {
    for (r, (theta, teacher)) in pairs(4096, 6).iter().enumerate() {
        // Bisection to 1e-6 would take ~20 evaluations.
        let s = mixer(AlphaMethod::KlSymmetry)
            .alpha(theta, teacher, r)
            .unwrap();
        assert!(s.passes <= 12, "row {r}: {s:?}");
        let s = mixer(AlphaMethod::EssBalance)
            .alpha(theta, teacher, r)
            .unwrap();
        assert!(s.passes <= 12, "row {r}: {s:?}");
        let s = mixer(AlphaMethod::ReverseKlSymmetry)
            .alpha(theta, teacher, r)
            .unwrap();
        // Closed form from the preparation passes; 3 exact passes when their f32 statistics cannot
        // certify the tolerance.
        assert!(s.passes == 0 || s.passes == 3, "row {r}: {s:?}");
    }
}

#[test]
fn the_one_exponential_ess_pass_matches_the_exact_two_exponential_one() {
    for (r, (theta, teacher)) in pairs(4096, 3).iter().enumerate() {
        let mut m = mixer(AlphaMethod::EssBalance);
        m.prepare(theta, teacher, r).unwrap();
        let [m_neg1, m0, m1, m2] = m.tilt_max;
        let (sb, sc) = (m1.max(m2), m_neg1.max(m0));
        let mut ratio = vec![0.0; m.d.len()];
        let gap = sb - sc;
        let (g, [u0, u0d, v1, v1d]) = kernels::ess_ratio(&m.d, &m.ex, &m.ey, gap, &mut ratio);
        assert!(g <= kernels::ESS_RATIO_MAX, "row {r}: {g}");
        let rel = |x: f64, y: f64| ((x - y) / y).abs();
        // Each weight within 4·EXP_F64_REL_ERR (two exponentials), the sums' rounding aside.
        let tol = 4.0 * EXP_F64_REL_ERR + 1e-12;
        // The ends from the ratio pass: Δ and its slope at α = 0 and 1 as full passes give them.
        let (c_theta, c_teacher) = (m.ex.iter().sum::<f64>().ln(), m.ey.iter().sum::<f64>().ln());
        let (e0, e1) = (
            kernels::moments_exact(&m.lp, &m.d, 0.0, 0.0),
            kernels::moments_exact(&m.lp, &m.d, 1.0, 0.0),
        );
        for (a, value, slope) in [
            (0.0, gap - c_theta + u0.ln(), e0[1] / e0[0] - u0d / u0),
            (1.0, c_teacher + gap - v1.ln(), v1d / v1 - e1[1] / e1[0]),
        ] {
            let t = kernels::two_tilts_exact(&m.lp, &m.d, 2.0 - a, -a, sb, sc);
            let (want, want_slope) = (
                (sb + t[0].ln()) - (sc + t[2].ln()),
                t[3] / t[2] - t[1] / t[0],
            );
            assert!(
                (value - want).abs() < 1e-10,
                "row {r} α={a}: {value} {want}"
            );
            assert!((slope - want_slope).abs() < 1e-8 * want_slope.abs().max(1.0));
        }
        for a in [0.0, 0.3, 0.77, 1.0] {
            let fast = kernels::ess_pass(&m.lp, &m.d, &ratio, a, sc);
            let exact = kernels::two_tilts_exact(&m.lp, &m.d, 2.0 - a, -a, sb, sc);
            // Sums within the pass's bound; the means (Δ's slope) as closely.
            assert!(
                rel(fast[0], exact[0]) < tol,
                "row {r} α={a}: {fast:?} {exact:?}"
            );
            assert!(
                rel(fast[2], exact[2]) < tol,
                "row {r} α={a}: {fast:?} {exact:?}"
            );
            let (mf, me) = (fast[1] / fast[0], exact[1] / exact[0]);
            assert!((mf - me).abs() < 1e-8 * me.abs().max(1.0), "{mf} {me}");
            let (mf, me) = (fast[3] / fast[2], exact[3] / exact[2]);
            assert!((mf - me).abs() < 1e-8 * me.abs().max(1.0), "{mf} {me}");
        }
        // The solver takes the one-exponential pass on such rows.
        m.alpha(theta, teacher, r).unwrap();
        assert_eq!(m.ratio_ok, Some(true), "row {r}");
    }
}

#[test]
fn ess_rows_with_huge_log_ratios_fall_back_and_still_solve() {
    // Two tokens whose log-ratios are ±200 (|2d| beyond the one-exponential pass's range): the
    // two-exponential pass takes over, and the root still checks by substitution.
    let mut theta: Vec<f32> = (0..64).map(|i| -((i % 7) as f32)).collect();
    let mut teacher: Vec<f32> = (0..64).map(|i| -((i % 5) as f32) * 0.8).collect();
    (theta[0], teacher[0]) = (0.0, -200.0);
    (theta[1], teacher[1]) = (-200.0, 0.0);
    let mut m = mixer(AlphaMethod::EssBalance);
    let s = m.alpha(&theta, &teacher, 0).unwrap();
    assert_ne!(m.ratio_ok, Some(true));
    let truth = Pair::new(&theta, &teacher, None).residual(AlphaMethod::EssBalance, s.alpha);
    assert_eq!(s.status, AlphaStatus::Root, "{s:?}");
    assert!(truth.abs() <= 1e-6, "{s:?} Δ={truth}");
}

#[test]
fn the_derivative_is_the_variance_of_the_log_ratio() {
    let (theta, teacher) = &pairs(2000, 1)[0];
    let mut m = mixer(AlphaMethod::KlSymmetry);
    m.prepare(theta, teacher, 0).unwrap();
    let pair = Pair::new(theta, teacher, None);
    for a in [0.1, 0.4, 0.8] {
        let t = m.tilt(a);
        let h = 1e-5;
        let fd = (pair.residual(AlphaMethod::KlSymmetry, a + h)
            - pair.residual(AlphaMethod::KlSymmetry, a - h))
            / (2.0 * h);
        assert!(
            (t.var - fd).abs() <= 1e-4 * fd.abs().max(1.0),
            "α={a}: {} vs {fd}",
            t.var
        );
        assert!((t.mean - pair.residual(AlphaMethod::KlSymmetry, a)).abs() < 1e-6);
    }
}

#[test]
fn equal_distributions_give_one_half_clamped() {
    let theta = synth::row(RowKind::HeavyTailed, 3000, 3);
    for method in [
        AlphaMethod::KlSymmetry,
        AlphaMethod::ReverseKlSymmetry,
        AlphaMethod::EssBalance,
    ] {
        let s = mixer(method).alpha(&theta, &theta, 0).unwrap();
        assert_eq!((s.alpha, s.status), (0.5, AlphaStatus::Equal), "{method}");
        // The seed returned 0.5 even outside [alpha_min, alpha_max].
        let mut m = Mixer::new(MixOptions {
            method,
            alpha: 0.7,
            alpha_min: 0.7,
            alpha_max: 0.9,
            ..MixOptions::default()
        })
        .unwrap();
        let s = m.alpha(&theta, &theta, 0).unwrap();
        assert_eq!((s.alpha, s.status), (0.7, AlphaStatus::Equal), "{method}");
    }
}

#[test]
fn a_bracket_without_the_root_returns_its_nearer_end() {
    let theta = logits(&[0.5, 0.3, 0.15, 0.05]);
    let teacher = logits(&[0.05, 0.15, 0.3, 0.5]);
    for method in [
        AlphaMethod::KlSymmetry,
        AlphaMethod::ReverseKlSymmetry,
        AlphaMethod::EssBalance,
    ] {
        let mut m = Mixer::new(MixOptions {
            method,
            alpha: 0.8,
            alpha_min: 0.8,
            alpha_max: 0.95,
            ..MixOptions::default()
        })
        .unwrap();
        let s = m.alpha(&theta, &teacher, 0).unwrap();
        assert_eq!(
            (s.alpha, s.status),
            (0.8, AlphaStatus::BracketEnd),
            "{method}"
        );
        let r = Pair::new(&theta, &teacher, None).residual(method, 0.8);
        assert!(
            (s.residual - r).abs() < 1e-6 && r.abs() > 1e-3,
            "{method}: {s:?} vs {r}"
        );
    }
}

#[test]
fn the_mixture_row_is_exactly_theta_at_zero_and_the_teacher_at_one() {
    let (theta, teacher) = &pairs(777, 1)[0];
    let mut out = Vec::new();
    for (alpha, want) in [(0.0, theta), (1.0, teacher)] {
        let mut m = Mixer::new(MixOptions {
            method: AlphaMethod::Fixed,
            alpha,
            ..MixOptions::default()
        })
        .unwrap();
        let s = m.mix(theta, teacher, 0, false, &mut out).unwrap();
        assert_eq!(s.alpha, alpha);
        assert_eq!(&out, want);
    }
    // In between: the geometric mixture, whose softmax is q_α.
    let mut m = Mixer::new(MixOptions {
        method: AlphaMethod::Fixed,
        alpha: 0.3,
        ..MixOptions::default()
    })
    .unwrap();
    m.mix(theta, teacher, 0, false, &mut out).unwrap();
    let lq = Pair::new(theta, teacher, None).log_q(0.3);
    let mine = Pair::new(&out, &out, None).theta;
    for (a, b) in lq.iter().zip(&mine) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn diagnostics_match_the_definitions() {
    for (r, (theta, teacher)) in pairs(3000, 4).iter().enumerate() {
        for method in AlphaMethod::ALL {
            let mut m = mixer(method);
            let mut out = Vec::new();
            let s = m.mix(theta, teacher, r, false, &mut out).unwrap();
            let pair = Pair::new(theta, teacher, None);
            let (ea, eb) = pair.ess(s.alpha);
            let (ka, kb) = pair.kl(s.alpha);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * y.abs().max(1e-2);
            assert!(
                close(s.ess_theta, ea),
                "{method}: ESS_θ {} vs {ea}",
                s.ess_theta
            );
            assert!(
                close(s.ess_teacher, eb),
                "{method}: ESS_t {} vs {eb}",
                s.ess_teacher
            );
            assert!(close(s.ess_ratio, ea / eb), "{method}: ratio");
            assert!(
                (s.kl_q_theta - ka).abs() < 1e-5,
                "{method}: KL θ {} vs {ka}",
                s.kl_q_theta
            );
            assert!(
                (s.kl_q_teacher - kb).abs() < 1e-5,
                "{method}: KL t {} vs {kb}",
                s.kl_q_teacher
            );
            assert_eq!(s.support, 3000);
        }
    }
}

#[test]
fn diagnostics_and_roots_hold_on_a_restricted_support() {
    for (r, (theta, teacher)) in pairs(3000, 6).iter().enumerate() {
        for (k, p) in [(Some(2), None), (None, Some(0.9)), (Some(300), Some(0.99))] {
            let keep = teacher_support(teacher, k, p);
            let pair = Pair::new(theta, teacher, Some(&keep));
            for method in AlphaMethod::ALL {
                let mut m = Mixer::new(MixOptions {
                    method,
                    teacher_top_k: k,
                    teacher_top_p: p,
                    ..MixOptions::default()
                })
                .unwrap();
                let mut out = Vec::new();
                let s = m.mix(theta, teacher, r, false, &mut out).unwrap();
                let ctx = format!("row {r} k={k:?} p={p:?} {method}: {s:?}");
                assert!(s.passes <= 16, "{ctx}");
                if s.status == AlphaStatus::Root {
                    assert!(pair.residual(method, s.alpha).abs() <= 1e-6, "{ctx}");
                }
                let (ea, eb) = pair.ess(s.alpha);
                let (ka, kb) = pair.kl(s.alpha);
                let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * y.abs().max(1e-2);
                assert!(
                    close(s.ess_theta, ea) && close(s.ess_teacher, eb),
                    "{ctx} {ea} {eb}"
                );
                assert!(close(s.ess_ratio, ea / eb), "{ctx}");
                assert!((s.kl_q_theta - ka).abs() < 1e-5, "{ctx} {ka}");
                assert!((s.kl_q_teacher - kb).abs() < 1e-5, "{ctx} {kb}");
            }
        }
    }
}

#[test]
fn teacher_top_p_keeps_the_token_that_crosses_the_threshold() {
    let theta = logits(&[0.25, 0.25, 0.25, 0.25]);
    let teacher = logits(&[0.5, 0.3, 0.2, 0.0001]);
    // 0.5 < 0.6 ≤ 0.5 + 0.3: the second token crosses 0.6 and stays (the seed dropped it).
    let keep = teacher_support(&teacher, None, Some(0.6));
    assert_eq!(keep, [true, true, false, false]);
    let mut m = Mixer::new(MixOptions {
        method: AlphaMethod::Fixed,
        alpha: 0.0,
        teacher_top_p: Some(0.6),
        ..MixOptions::default()
    })
    .unwrap();
    let mut out = Vec::new();
    let s = m.mix(&theta, &teacher, 0, false, &mut out).unwrap();
    assert_eq!(s.support, 2);
    assert_eq!(out[..2], theta[..2]);
    assert!(out[2..].iter().all(|v| *v == f32::NEG_INFINITY));
}

#[test]
fn teacher_support_agrees_with_sorting_on_random_rows() {
    for (r, (theta, teacher)) in pairs(2000, 6).iter().enumerate() {
        for (k, p) in [
            (Some(1), None),
            (Some(40), None),
            (None, Some(0.9)),
            (Some(50), Some(0.5)),
        ] {
            let keep = teacher_support(teacher, k, p);
            let mut m = Mixer::new(MixOptions {
                teacher_top_k: k,
                teacher_top_p: p,
                ..MixOptions::default()
            })
            .unwrap();
            let mut out = Vec::new();
            let s = m.mix(theta, teacher, r, false, &mut out).unwrap();
            let got: Vec<bool> = out.iter().map(|v| v.is_finite()).collect();
            assert_eq!(got, keep, "row {r} k={k:?} p={p:?}");
            assert_eq!(s.support, keep.iter().filter(|b| **b).count());
            // The root is the root of the restricted pair.
            let pair = Pair::new(theta, teacher, Some(&keep));
            if s.status == AlphaStatus::Root {
                assert!(pair.residual(AlphaMethod::KlSymmetry, s.alpha).abs() <= 1e-6);
            }
        }
    }
}

#[test]
fn forced_steps_use_the_teacher_alone() {
    let theta = logits(&[0.1, 0.6, 0.3]);
    let teacher = logits(&[0.7, 0.2, 0.1]);
    let mut m = mixer(AlphaMethod::KlSymmetry);
    let mut out = Vec::new();
    let s = m.mix(&theta, &teacher, 0, true, &mut out).unwrap();
    assert_eq!((s.alpha, s.status), (1.0, AlphaStatus::Forced));
    assert_eq!(out, teacher);
    assert!(s.kl_q_teacher.abs() < 1e-6 && (s.ess_teacher - 1.0).abs() < 1e-5);
    // A special token as the teacher's favourite forces it; otherwise not.
    let mut m = Mixer::new(MixOptions {
        teacher_special: vec![0],
        ..MixOptions::default()
    })
    .unwrap();
    assert_eq!(
        m.mix(&theta, &teacher, 0, false, &mut out).unwrap().status,
        AlphaStatus::Forced
    );
    let mut m = Mixer::new(MixOptions {
        teacher_special: vec![2],
        ..MixOptions::default()
    })
    .unwrap();
    assert_eq!(
        m.mix(&theta, &teacher, 0, false, &mut out).unwrap().status,
        AlphaStatus::Root
    );
}

#[test]
fn bad_input_is_a_typed_error() {
    let mut m = mixer(AlphaMethod::KlSymmetry);
    let e = m.alpha(&[0.0; 5], &[0.0; 7], 0).unwrap_err();
    assert_eq!(
        e,
        SamplingError::VocabSizes {
            theta: 5,
            teacher: 7
        }
    );
    assert!(e.to_string().contains('5') && e.to_string().contains('7'));
    let e = m.alpha(&[0.0, f32::NAN], &[0.0, 0.0], 3).unwrap_err();
    assert_eq!(e, SamplingError::NanLogit { row: 3, token: 1 });
    let e = m.alpha(&[0.0, 0.0], &[0.0, f32::INFINITY], 1).unwrap_err();
    assert_eq!(e, SamplingError::PosInfLogit { row: 1, token: 1 });
    let ninf = f32::NEG_INFINITY;
    let e = m.alpha(&[0.0, ninf], &[ninf, 0.0], 2).unwrap_err();
    assert_eq!(e, SamplingError::DisjointSupports { row: 2 });
    for (o, field) in [
        (
            MixOptions {
                alpha_min: -0.1,
                ..MixOptions::default()
            },
            "alpha_min",
        ),
        (
            MixOptions {
                alpha_max: 1.5,
                ..MixOptions::default()
            },
            "alpha_max",
        ),
        (
            MixOptions {
                alpha_min: 0.6,
                alpha_max: 0.4,
                alpha: 0.5,
                ..MixOptions::default()
            },
            "alpha_max",
        ),
        (
            MixOptions {
                alpha: f64::NAN,
                ..MixOptions::default()
            },
            "alpha",
        ),
        (
            MixOptions {
                teacher_top_k: Some(0),
                ..MixOptions::default()
            },
            "teacher_top_k",
        ),
        (
            MixOptions {
                teacher_top_p: Some(0.0),
                ..MixOptions::default()
            },
            "teacher_top_p",
        ),
        (
            MixOptions {
                tolerance: 0.0,
                ..MixOptions::default()
            },
            "tolerance",
        ),
    ] {
        match Mixer::new(o) {
            Err(SamplingError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    match AlphaMethod::parse("kl") {
        Err(SamplingError::InvalidConfig {
            field,
            value,
            reason,
        }) => {
            assert_eq!((field.as_str(), value.as_str()), ("alpha_method", "kl"));
            assert!(reason.contains("ess_balance"));
        }
        other => panic!("{other:?}"),
    }
    for m in AlphaMethod::ALL {
        assert_eq!(AlphaMethod::parse(m.name()).unwrap(), m);
    }
    // `alpha` is only bound to the bracket where it is used.
    assert!(Mixer::new(MixOptions {
        alpha_min: 0.6,
        ..MixOptions::default()
    })
    .is_ok());
}

#[test]
fn a_warm_mixer_does_not_reallocate() {
    let (theta, teacher) = &pairs(5000, 1)[0];
    let mut m = mixer(AlphaMethod::EssBalance);
    let mut out = Vec::new();
    m.mix(theta, teacher, 0, false, &mut out).unwrap();
    let ptrs = (
        m.lp.as_ptr(),
        m.d.as_ptr(),
        m.ex.as_ptr(),
        m.ey.as_ptr(),
        out.as_ptr(),
    );
    m.mix(teacher, theta, 1, false, &mut out).unwrap();
    assert_eq!(
        ptrs,
        (
            m.lp.as_ptr(),
            m.d.as_ptr(),
            m.ex.as_ptr(),
            m.ey.as_ptr(),
            out.as_ptr()
        )
    );
}

#[test]
fn the_summary_averages_steps() {
    let mut sum = MixSummary::default();
    let step = |alpha, status| MixStep {
        alpha,
        status,
        residual: alpha / 10.0,
        passes: 1,
        ess_theta: 0.5,
        ess_teacher: 0.25,
        ess_ratio: 2.0,
        kl_q_theta: alpha,
        kl_q_teacher: 1.0,
        support: 3,
    };
    sum.add(&step(0.2, AlphaStatus::Root));
    sum.add(&step(0.6, AlphaStatus::BracketEnd));
    sum.add(&step(1.0, AlphaStatus::Forced));
    assert!((sum.alpha_mean - 0.6).abs() < 1e-12);
    assert!((sum.kl_q_theta_mean - 0.6).abs() < 1e-12);
    assert_eq!(
        (sum.steps, sum.bracket_end_steps, sum.forced_steps),
        (3, 1, 1)
    );
    assert!((sum.max_abs_residual - 0.1).abs() < 1e-12);
}
