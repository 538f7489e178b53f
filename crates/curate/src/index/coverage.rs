//! Greedy longest-match coverage of a generation by a reference corpus (SPEC 4, "Data
//! matching"): how much of a generation is made of n-grams that occur in the corpus, and how
//! often a run of matches breaks off.

use crate::error::{CurateError, Result};

/// The longest n-gram the greedy walk looks for by default (the reference's `max_n`).
pub const DEFAULT_MAX_N: usize = 10;

/// The coverage of one token sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coverage {
    /// Tokens in the sequence.
    pub tokens: usize,
    /// Tokens covered by greedy longest matches.
    pub matched: usize,
    /// Match → no-match transitions: positions with no match that directly follow a match.
    pub breaks: usize,
}

impl Coverage {
    /// `matched / tokens`; 0 for an empty sequence.
    pub fn fraction(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.matched as f64 / self.tokens as f64
        }
    }
}

/// The greedy walk over `tokens`, given `longest(q)` = the length of the longest prefix of `q`
/// that occurs in the corpus (count > 0). It is called with `q` = the next at most `max_n`
/// tokens:
///
/// ```text
/// i = 0, in_match = false
/// while i < len:
///     n = longest(tokens[i .. min(i + max_n, len)])
///     if n > 0: matched += n; i += n; in_match = true          (a match: jump past it)
///     else:     breaks += in_match; i += 1; in_match = false   (no match: advance by 1)
/// ```
///
/// A position with no match is one whose token occurs nowhere in the corpus (every prefix of an
/// occurring n-gram occurs, so `n = 0` means the 1-gram `tokens[i]` has count 0): it is
/// uncovered, the walk advances by one token, and it counts as a break when the step before it
/// was a match. Two matches in a row are no break; a match at the end is none either.
/// `max_n` must be at least 1.
pub fn greedy_coverage(
    tokens: &[u32],
    max_n: usize,
    mut longest: impl FnMut(&[u32]) -> usize,
) -> Result<Coverage> {
    if max_n == 0 {
        return Err(CurateError::BadParameter {
            name: "max_n".into(),
            value: "0".into(),
            message: "the longest n-gram must be at least 1 token".into(),
        });
    }
    let mut c = Coverage {
        tokens: tokens.len(),
        ..Coverage::default()
    };
    let mut i = 0;
    let mut in_match = false;
    while i < tokens.len() {
        let q = &tokens[i..tokens.len().min(i + max_n)];
        let n = longest(q).min(q.len());
        if n > 0 {
            c.matched += n;
            i += n;
            in_match = true;
        } else {
            c.breaks += usize::from(in_match);
            i += 1;
            in_match = false;
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_by_hand() {
        // Corpus n-grams: anything made of 1s and 2s of length ≤ 2; 9 never occurs.
        let longest = |q: &[u32]| q.iter().take(2).take_while(|&&t| t != 9).count();
        let c = greedy_coverage(&[1, 2, 1, 9, 9, 2, 9], 10, longest).unwrap();
        // [1 2] [1] 9 9 [2] 9  → matched 4, breaks: after [1] and after [2].
        assert_eq!(
            c,
            Coverage {
                tokens: 7,
                matched: 4,
                breaks: 2
            }
        );
        assert!((c.fraction() - 4.0 / 7.0).abs() < 1e-12);
        let none = greedy_coverage(&[], 10, longest).unwrap();
        assert_eq!(none.fraction(), 0.0);
        assert_eq!(greedy_coverage(&[9, 1], 1, longest).unwrap().breaks, 0);
        assert!(greedy_coverage(&[1], 0, longest)
            .unwrap_err()
            .to_string()
            .contains("max_n"));
    }
}
