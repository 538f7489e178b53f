//! From the judge's first-token log-probabilities to the soft outcome of a pair (SPEC 4):
//! in one order `P(A wins) = p("A") / (p("A") + p("B"))`; a letter absent from the top
//! log-probabilities has probability 0, both absent gives 0.5; the two orders are averaged and
//! the pair's two scores renormalised to sum to 1.
//!
//! Which tokens count as a letter: every reported token whose text, with surrounding whitespace
//! removed, is exactly `A` (or `B`) — so `"A"` and `" A"` (a tokenizer's word-initial variant)
//! both count, and their probabilities add up; `"a"`, `"A."` or `"Answer"` do not.

/// The letter a token stands for, if it is exactly one of the two verdict letters.
pub fn verdict_letter(token_text: &str) -> Option<Letter> {
    match token_text.trim() {
        "A" => Some(Letter::A),
        "B" => Some(Letter::B),
        _ => None,
    }
}

/// One of the two verdict letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Letter {
    /// The answer shown first.
    A,
    /// The answer shown second.
    B,
}

/// The probabilities a judge gave the two verdict letters as its first token, each summed over
/// the tokens that stand for it among the top log-probabilities (absent: 0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LetterProbs {
    /// `p("A")`.
    pub a: f64,
    /// `p("B")`.
    pub b: f64,
}

/// A reported log-probability that is not a log-probability (NaN, +inf or clearly above 0).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("token {token:?}: log-probability {logprob} is not ≤ 0")]
pub struct BadLogprob {
    /// The token's text.
    pub token: String,
    /// The value reported.
    pub logprob: f64,
}

/// Slack above 0 tolerated in a reported log-probability (servers round `ln 1` to tiny
/// positive values).
const LOGPROB_SLACK: f64 = 1e-6;

impl LetterProbs {
    /// Sums `exp(logprob)` over the tokens of `top` (text, natural-log probability) that stand
    /// for `A` or `B` ([`verdict_letter`]); a token text listed twice counts once (the first).
    /// `-inf` is probability 0; NaN, `+inf` or a value above 0 (beyond rounding) is an error.
    pub fn from_top<'a>(top: impl IntoIterator<Item = (&'a str, f64)>) -> Result<Self, BadLogprob> {
        let mut seen: Vec<&str> = Vec::new();
        let mut p = LetterProbs::default();
        for (text, logprob) in top {
            if logprob.is_nan() || logprob > LOGPROB_SLACK {
                return Err(BadLogprob {
                    token: text.to_string(),
                    logprob,
                });
            }
            if seen.contains(&text) {
                continue;
            }
            seen.push(text);
            let prob = logprob.min(0.0).exp();
            match verdict_letter(text) {
                Some(Letter::A) => p.a += prob,
                Some(Letter::B) => p.b += prob,
                None => {}
            }
        }
        Ok(p)
    }

    /// `P(the answer shown first wins) = p(A) / (p(A) + p(B))`, 0.5 when both are 0.
    pub fn first_wins(&self) -> f64 {
        let total = self.a + self.b;
        if total > 0.0 {
            self.a / total
        } else {
            0.5
        }
    }
}

/// The soft outcome of answers `x` and `y` judged in both orders: `x_first` is the verdict with
/// `x` shown as `A`, `y_first` the one with `y` shown as `A`. Returns `(s_x, s_y)`:
/// `s_x = renorm((P_xy(A) + P_yx(B)) / 2)`, where in each order the letters' probabilities are
/// normalised to sum 1 ([`LetterProbs::first_wins`]), and the pair's two scores are divided by
/// their sum (exactly 1 up to rounding), so `s_x + s_y = 1`.
pub fn pair_outcome(x_first: LetterProbs, y_first: LetterProbs) -> (f64, f64) {
    let x_wins_as_a = x_first.first_wins();
    let x_wins_as_b = 1.0 - y_first.first_wins();
    let s_x = 0.5 * (x_wins_as_a + x_wins_as_b);
    let s_y = 0.5 * ((1.0 - x_wins_as_a) + (1.0 - x_wins_as_b));
    let total = s_x + s_y;
    (s_x / total, s_y / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(top: &[(&str, f64)]) -> LetterProbs {
        LetterProbs::from_top(top.iter().map(|&(t, p)| (t, p.ln()))).unwrap()
    }

    #[test]
    fn letters_are_the_trimmed_single_capitals() {
        for (t, want) in [
            ("A", Some(Letter::A)),
            (" A", Some(Letter::A)),
            ("A\n", Some(Letter::A)),
            ("B", Some(Letter::B)),
            ("\tB ", Some(Letter::B)),
            ("a", None),
            ("A.", None),
            ("AB", None),
            ("Answer", None),
            ("", None),
        ] {
            assert_eq!(verdict_letter(t), want, "{t:?}");
        }
    }

    #[test]
    fn one_order() {
        let p = probs(&[("A", 0.6), ("B", 0.2), ("The", 0.1)]);
        assert!((p.a - 0.6).abs() < 1e-12 && (p.b - 0.2).abs() < 1e-12);
        assert!((p.first_wins() - 0.75).abs() < 1e-12);
        // variants of a letter add up
        let p = probs(&[(" A", 0.3), ("A", 0.3), ("B", 0.2)]);
        assert!((p.first_wins() - 0.75).abs() < 1e-12);
        // a token listed twice counts once
        let p = probs(&[("A", 0.3), ("A", 0.3), ("B", 0.3)]);
        assert!((p.first_wins() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn absent_letters() {
        // B absent: probability 0, so A wins for sure in this order
        assert_eq!(probs(&[("A", 0.1), ("x", 0.9)]).first_wins(), 1.0);
        assert_eq!(probs(&[("B", 0.1), ("x", 0.9)]).first_wins(), 0.0);
        // both absent: 0.5
        assert_eq!(probs(&[("x", 0.9)]).first_wins(), 0.5);
        assert_eq!(LetterProbs::from_top([]).unwrap().first_wins(), 0.5);
        // -inf is probability 0, not an error
        let p = LetterProbs::from_top([("A", f64::NEG_INFINITY), ("B", -1.0)]).unwrap();
        assert_eq!(p.first_wins(), 0.0);
    }

    #[test]
    fn bad_logprobs_are_errors() {
        for bad in [f64::NAN, f64::INFINITY, 0.5] {
            let e = LetterProbs::from_top([("A", bad)]).unwrap_err();
            assert_eq!(e.token, "A");
        }
        // rounding above 0 is fine
        assert_eq!(
            LetterProbs::from_top([("A", 1e-9)]).unwrap().first_wins(),
            1.0
        );
    }

    #[test]
    fn both_orders_averaged_and_renormalised() {
        // x shown first: A 0.6, B 0.2 → x wins 0.75; y shown first: A 0.5, B 0.5 → x wins 0.5
        let (sx, sy) = pair_outcome(
            probs(&[("A", 0.6), ("B", 0.2)]),
            probs(&[("A", 0.5), ("B", 0.5)]),
        );
        assert!((sx - 0.625).abs() < 1e-12 && (sy - 0.375).abs() < 1e-12);
        // a judge that always says A (position bias) gives a draw
        let always_a = probs(&[("A", 0.9), ("B", 0.05)]);
        let (sx, sy) = pair_outcome(always_a, always_a);
        assert!((sx - 0.5).abs() < 1e-12 && (sy - 0.5).abs() < 1e-12);
        // both letters absent in both orders: 0.5 each
        let none = probs(&[("x", 1.0)]);
        assert_eq!(pair_outcome(none, none), (0.5, 0.5));
        // one order absent (0.5), the other sure
        let (sx, _) = pair_outcome(none, probs(&[("B", 0.4)]));
        assert!((sx - 0.75).abs() < 1e-12);
    }

    #[test]
    fn outcome_is_symmetric_and_sums_to_one() {
        let cases = [
            (0.7, 0.1, 0.2, 0.3),
            (0.0, 0.0, 0.9, 0.05),
            (1e-300, 0.0, 0.3, 0.3),
        ];
        for (a1, b1, a2, b2) in cases {
            let p = LetterProbs { a: a1, b: b1 };
            let q = LetterProbs { a: a2, b: b2 };
            let (sx, sy) = pair_outcome(p, q);
            let (ty, tx) = pair_outcome(q, p);
            assert!((sx - tx).abs() < 1e-12 && (sy - ty).abs() < 1e-12);
            assert!((sx + sy - 1.0).abs() < 1e-15 && (0.0..=1.0).contains(&sx));
        }
    }
}
