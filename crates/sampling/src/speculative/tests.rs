//! The exactness harness: on small enumerable vocabularies and adversarial (p, q) pairs, the
//! accept / residual rule outputs exactly p — by exact enumeration, and by a chi-square goodness
//! of fit over seeded draws (p-value > 0.001). A multi-token round with context-dependent p and
//! q reproduces the target's joint distribution of two tokens.

use super::*;
use crate::gof::chi_square_test;
use crate::rng::{self, ChaCha20Rng};

const DRAWS: usize = 20_000;

/// Adversarial pairs (name, p, q) over a vocabulary of 5.
fn pairs() -> Vec<(&'static str, Vec<f32>, Vec<f32>)> {
    vec![
        (
            "p = q",
            vec![0.1, 0.2, 0.3, 0.4, 0.0],
            vec![0.1, 0.2, 0.3, 0.4, 0.0],
        ),
        (
            "disjoint supports",
            vec![0.5, 0.5, 0.0, 0.0, 0.0],
            vec![0.0, 0.0, 0.3, 0.7, 0.0],
        ),
        (
            "one-hot q",
            vec![0.1, 0.2, 0.3, 0.4, 0.0],
            vec![0.0, 0.0, 1.0, 0.0, 0.0],
        ),
        (
            "q = 0 where p > 0",
            vec![0.2; 5],
            vec![0.5, 0.5, 0.0, 0.0, 0.0],
        ),
        (
            "one-hot p",
            vec![0.0, 0.0, 0.0, 1.0, 0.0],
            vec![0.25, 0.25, 0.25, 0.25, 0.0],
        ),
        (
            "close",
            vec![0.3, 0.25, 0.2, 0.15, 0.1],
            vec![0.28, 0.27, 0.2, 0.1, 0.15],
        ),
    ]
}

/// A random distribution over `v` tokens with some zeros.
fn random_dist(rng: &mut ChaCha20Rng, v: usize) -> Vec<f32> {
    let mut w: Vec<f64> = (0..v)
        .map(|_| {
            let u = rng::uniform(rng);
            if u < 0.25 {
                0.0
            } else {
                u * u
            }
        })
        .collect();
    if w.iter().all(|&x| x == 0.0) {
        w[0] = 1.0;
    }
    let z: f64 = w.iter().sum();
    w.iter().map(|&x| (x / z) as f32).collect()
}

/// The rule's output distribution, enumerated exactly: `Σ_x q(x)·[a(x)·δ_x + (1 − a(x))·r_x]`.
fn enumerate(p: &[f32], q: Proposal<'_>, one_hot_on: Option<u32>) -> Vec<f64> {
    let mut out = vec![0.0; p.len()];
    let mut r = Vec::new();
    let proposals: Vec<(u32, f64)> = match (q, one_hot_on) {
        (Proposal::OneHot, Some(t)) => vec![(t, 1.0)],
        (Proposal::Dense(q), _) => q
            .iter()
            .enumerate()
            .filter(|(_, &v)| v > 0.0)
            .map(|(i, &v)| (i as u32, v as f64))
            .collect(),
        (Proposal::OneHot, None) => panic!("a one-hot proposal needs its token"),
    };
    for (x, qx) in proposals {
        let a = acceptance_probability(p, q, x).unwrap();
        out[x as usize] += qx * a;
        residual(p, q, x, &mut r).unwrap();
        for (o, &ry) in out.iter_mut().zip(&r) {
            *o += qx * (1.0 - a) * ry;
        }
    }
    out
}

/// One seeded draw through the rule: `x ~ q`, judged, resampled on rejection.
fn one_token(p: &[f32], q: &[f32], rng: &mut ChaCha20Rng, scratch: &mut Vec<f64>) -> u32 {
    let qw: Vec<f64> = q.iter().map(|&v| v as f64).collect();
    let x = draw_weights(&qw, rng::uniform(rng)).unwrap();
    match judge(p, Proposal::Dense(q), x, rng::uniform(rng)).unwrap() {
        Verdict::Accepted => x,
        Verdict::Rejected => {
            resample(p, Proposal::Dense(q), x, rng::uniform(rng), scratch).unwrap()
        }
    }
}

fn as_f64(p: &[f32]) -> Vec<f64> {
    let z: f64 = p.iter().map(|&v| v as f64).sum();
    p.iter().map(|&v| v as f64 / z).collect()
}

#[test]
fn exact_enumeration_gives_p_for_adversarial_and_random_pairs() {
    let mut cases = pairs();
    let mut rng = rng::seeded(7, 0);
    for _ in 0..50 {
        let p = random_dist(&mut rng, 6);
        let q = random_dist(&mut rng, 6);
        cases.push(("random", p, q));
    }
    for (name, p, q) in &cases {
        let got = enumerate(p, Proposal::Dense(q), None);
        for (y, (&g, &w)) in got.iter().zip(&as_f64(p)).enumerate() {
            assert!((g - w).abs() < 1e-6, "{name}: token {y}: {g} vs p = {w}");
        }
    }
    // A one-hot proposal on every token p or not: still exactly p.
    let p = [0.1f32, 0.2, 0.3, 0.4, 0.0];
    for t in 0..5 {
        let got = enumerate(&p, Proposal::OneHot, Some(t));
        for (y, (&g, &w)) in got.iter().zip(&as_f64(&p)).enumerate() {
            assert!(
                (g - w).abs() < 1e-6,
                "one-hot on {t}: token {y}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn seeded_draws_fit_p_by_chi_square() {
    let mut scratch = Vec::new();
    for (k, (name, p, q)) in pairs().into_iter().enumerate() {
        let mut rng = rng::seeded(2024, k as u64);
        let mut counts = vec![0u64; p.len()];
        for _ in 0..DRAWS {
            counts[one_token(&p, &q, &mut rng, &mut scratch) as usize] += 1;
        }
        let fit = chi_square_test(&counts, &as_f64(&p)).unwrap();
        assert!(fit.p_value > 0.001, "{name}: {fit:?} counts {counts:?}");
    }
}

#[test]
fn resampling_from_the_full_target_fails_the_same_test() {
    // The seed's bug (RT-DLM): after a rejection draw from p instead of norm(max(0, p − q)).
    // The harness must catch it, or it proves nothing.
    let (p, q) = (
        vec![0.1f32, 0.2, 0.3, 0.4, 0.0],
        vec![0.0f32, 0.0, 1.0, 0.0, 0.0],
    );
    let mut rng = rng::seeded(2024, 99);
    let pw = as_f64(&p);
    let mut counts = vec![0u64; p.len()];
    for _ in 0..DRAWS {
        let x = 2;
        let y = match judge(&p, Proposal::Dense(&q), x, rng::uniform(&mut rng)).unwrap() {
            Verdict::Accepted => x,
            Verdict::Rejected => draw_weights(&pw, rng::uniform(&mut rng)).unwrap(),
        };
        counts[y as usize] += 1;
    }
    let fit = chi_square_test(&counts, &pw).unwrap();
    assert!(fit.p_value < 1e-6, "{fit:?}");
}

/// A context-dependent toy model over 4 tokens: the next-token distribution given the previous
/// token (`None` at the start).
fn markov(table: &[[f32; 4]; 5], prev: Option<u32>) -> &[f32; 4] {
    &table[prev.map_or(4, |t| t as usize + 1)]
}

#[test]
fn multi_token_rounds_reproduce_the_joint_distribution_of_two_tokens() {
    let p_table = [
        [0.4, 0.3, 0.2, 0.1],
        [0.1, 0.6, 0.2, 0.1],
        [0.0, 0.0, 0.5, 0.5],
        [0.25, 0.25, 0.25, 0.25],
        [0.1, 0.2, 0.3, 0.4], // start
    ];
    let q_table = [
        [0.7, 0.1, 0.1, 0.1],
        [0.0, 0.0, 0.0, 1.0],
        [0.5, 0.5, 0.0, 0.0],
        [0.1, 0.2, 0.3, 0.4],
        [0.4, 0.3, 0.2, 0.1], // start
    ];
    let mut rng = rng::seeded(5, 0);
    let mut counts = vec![0u64; 16];
    let mut scratch = Vec::new();
    for _ in 0..DRAWS {
        // Rounds of G = 2 drafts until two tokens are out.
        let mut out: Vec<u32> = Vec::new();
        while out.len() < 2 {
            let mut drafts = Vec::new();
            let mut prev = out.last().copied();
            for _ in 0..2 {
                let q = markov(&q_table, prev);
                let qw: Vec<f64> = q.iter().map(|&v| v as f64).collect();
                let x = draw_weights(&qw, rng::uniform(&mut rng)).unwrap();
                drafts.push((x, prev));
                prev = Some(x);
            }
            let mut all = true;
            for &(x, ctx) in &drafts {
                let (p, q) = (markov(&p_table, ctx), markov(&q_table, ctx));
                match judge(p, Proposal::Dense(q), x, rng::uniform(&mut rng)).unwrap() {
                    Verdict::Accepted => out.push(x),
                    Verdict::Rejected => {
                        let u = rng::uniform(&mut rng);
                        out.push(resample(p, Proposal::Dense(q), x, u, &mut scratch).unwrap());
                        all = false;
                        break;
                    }
                }
            }
            if all {
                let p = markov(&p_table, out.last().copied());
                let pw: Vec<f64> = p.iter().map(|&v| v as f64).collect();
                out.push(draw_weights(&pw, rng::uniform(&mut rng)).unwrap());
            }
        }
        counts[(out[0] * 4 + out[1]) as usize] += 1;
    }
    let mut joint = vec![0.0f64; 16];
    for a in 0..4u32 {
        for b in 0..4u32 {
            joint[(a * 4 + b) as usize] = markov(&p_table, None)[a as usize] as f64
                * markov(&p_table, Some(a))[b as usize] as f64;
        }
    }
    let fit = chi_square_test(&counts, &joint).unwrap();
    assert!(fit.p_value > 0.001, "{fit:?} counts {counts:?}");
}

#[test]
fn judge_agrees_with_the_acceptance_probability() {
    let (p, q) = ([0.1f32, 0.6, 0.3], [0.5f32, 0.3, 0.2]);
    let a = acceptance_probability(&p, Proposal::Dense(&q), 0).unwrap();
    assert!((a - 0.2).abs() < 1e-6);
    assert_eq!(
        judge(&p, Proposal::Dense(&q), 0, 0.19).unwrap(),
        Verdict::Accepted
    );
    assert_eq!(
        judge(&p, Proposal::Dense(&q), 0, 0.21).unwrap(),
        Verdict::Rejected
    );
    // p(x) ≥ q(x): always kept.
    assert_eq!(
        judge(&p, Proposal::Dense(&q), 1, 0.999_999).unwrap(),
        Verdict::Accepted
    );
    // One-hot: kept with probability p(x).
    assert!((acceptance_probability(&p, Proposal::OneHot, 2).unwrap() - 0.3).abs() < 1e-6);
}

#[test]
fn bad_rows_and_tokens_are_typed_errors_naming_field_and_value() {
    let p = [0.5f32, 0.5, 0.0];
    let cases: Vec<(Vec<f32>, Vec<f32>, u32, &str)> = vec![
        (
            vec![0.5, f32::NAN, 0.5],
            vec![0.5, 0.5, 0.0],
            0,
            "p[1] = NaN",
        ),
        (
            vec![0.5, 0.5, 0.0],
            vec![0.5, f32::INFINITY, 0.0],
            0,
            "q[1] = inf",
        ),
        (vec![0.5, 0.7, -0.2], vec![0.5, 0.5, 0.0], 0, "p[2] = -0.2"),
        (vec![0.5, 0.4, 0.0], vec![0.5, 0.5, 0.0], 0, "p[3] ="),
        (vec![], vec![], 0, "p[0] = []"),
        (p.to_vec(), vec![0.5, 0.5], 0, "q[2] = 2 entries"),
        (p.to_vec(), vec![0.5, 0.5, 0.0], 3, "token[3] = 3"),
        (p.to_vec(), vec![0.5, 0.5, 0.0], 2, "q[2] = 0"),
    ];
    for (p, q, t, want) in cases {
        let err = judge(&p, Proposal::Dense(&q), t, 0.5).unwrap_err();
        assert!(matches!(err, SamplingError::Speculative { .. }), "{err}");
        assert!(err.to_string().contains(want), "{err} lacks `{want}`");
        assert!(resample(&p, Proposal::Dense(&q), t, 0.5, &mut Vec::new()).is_err());
    }
    assert!(draw_weights(&[0.0, 0.0], 0.5).is_err());
    assert!(draw_weights(&[], 0.5).is_err());
}

#[test]
fn residual_is_p_where_nothing_exceeds_q() {
    let p = [0.25f32, 0.25, 0.5];
    let mut r = Vec::new();
    residual(&p, Proposal::Dense(&p), 1, &mut r).unwrap();
    assert_eq!(r, [0.25, 0.25, 0.5]);
    residual(&p, Proposal::Dense(&[0.5, 0.5, 0.0]), 1, &mut r).unwrap();
    assert_eq!(r, [0.0, 0.0, 1.0]);
    residual(&p, Proposal::OneHot, 2, &mut r).unwrap();
    assert_eq!(r, [0.5, 0.5, 0.0]);
}

#[test]
fn stats_report_rates() {
    let mut s = SpeculationStats {
        drafted: 10,
        accepted: 7,
        target_forwards: 4,
        generated: 11,
    };
    assert!((s.acceptance_rate() - 0.7).abs() < 1e-12);
    assert!((s.tokens_per_forward() - 2.75).abs() < 1e-12);
    s.add(&s.clone());
    assert_eq!(s.drafted, 20);
    assert_eq!(SpeculationStats::default().acceptance_rate(), 0.0);
    assert_eq!(SpeculationStats::default().tokens_per_forward(), 0.0);
}
