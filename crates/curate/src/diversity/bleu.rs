//! Self-BLEU: sacreBLEU's sentence BLEU of each text of a group against the group's other texts
//! as references, averaged — as sacreBLEU 2.x's code behaves (`BLEU(effective_order=True)`,
//! the defaults of `sentence_bleu`): [`tokenize_13a`] tokens, n-grams of orders 1–4, exp
//! smoothing, effective order, the closest reference length.
//!
//! For a hypothesis with `c_n` clipped matches out of `t_n` n-grams of order `n`:
//! * no match at any order → 0;
//! * the effective order `N` is the largest `n ≤ 4` with `t_n > 0` (an order is dropped only when
//!   the hypothesis has no n-grams of it; orders with zero matches are kept and smoothed);
//! * `p_n = 100·c_n / t_n`, or, when `c_n = 0`, `100 / (2^k · t_n)` with `k` counting the
//!   zero-match orders so far (exp smoothing);
//! * `BP = exp(1 − r / h)` when the hypothesis length `h` is below the reference length `r`
//!   (0 when `h = 0`), else 1; `r` is the reference length closest to `h`, the shorter on a tie;
//! * `BLEU = BP · exp((Σ_{n≤N} ln p_n) / N)`, on the 0–100 scale.
//!
//! Clipping with several references counts an n-gram at most as often as the reference holding
//! it most often. [`self_bleu`] gets every leave-one-out clip from the top two counts of each
//! n-gram across the group, so a group costs O(total n-grams), not one sentence call per pair.

use std::collections::HashMap;

use super::tokenizer_13a::tokenize_13a;

/// The largest n-gram order.
pub const MAX_ORDER: usize = 4;

/// BLEU's sufficient statistics of one hypothesis against its references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BleuStats {
    /// Hypothesis length in tokens.
    pub hyp_len: usize,
    /// The closest reference length.
    pub ref_len: usize,
    /// Clipped n-gram matches per order (index `n − 1`).
    pub correct: [usize; MAX_ORDER],
    /// Hypothesis n-grams per order (index `n − 1`).
    pub total: [usize; MAX_ORDER],
}

impl BleuStats {
    /// The BLEU score (0–100) of these statistics: exp smoothing, effective order (see the
    /// module docs for the formula); operations in sacreBLEU's order, so results agree to the
    /// last bits.
    pub fn score(&self) -> f64 {
        let bp = if self.hyp_len < self.ref_len {
            if self.hyp_len > 0 {
                (1.0 - self.ref_len as f64 / self.hyp_len as f64).exp()
            } else {
                0.0
            }
        } else {
            1.0
        };
        if self.correct.iter().all(|&c| c == 0) {
            return 0.0;
        }
        let mut smooth = 1.0f64;
        let mut log_sum = 0.0f64;
        let mut order = 0usize;
        for n in 0..MAX_ORDER {
            if self.total[n] == 0 {
                break;
            }
            order = n + 1;
            let p = if self.correct[n] == 0 {
                smooth *= 2.0;
                100.0 / (smooth * self.total[n] as f64)
            } else {
                100.0 * self.correct[n] as f64 / self.total[n] as f64
            };
            log_sum += p.ln();
        }
        bp * (log_sum / order as f64).exp()
    }
}

/// sacreBLEU's `_get_closest_ref_len`: the reference length nearest `hyp_len`, the smaller on a
/// tie; `None` without references.
pub fn closest_ref_len(hyp_len: usize, ref_lens: impl IntoIterator<Item = usize>) -> Option<usize> {
    ref_lens
        .into_iter()
        .min_by_key(|&r| (r.abs_diff(hyp_len), r))
}

/// Token ids of a group's texts: equal tokens (strings) get equal ids.
fn intern<'a>(docs: &'a [Vec<String>], ids: &mut HashMap<&'a str, u32>) -> Vec<Vec<u32>> {
    docs.iter()
        .map(|d| {
            d.iter()
                .map(|t| {
                    let next = ids.len() as u32;
                    *ids.entry(t.as_str()).or_insert(next)
                })
                .collect()
        })
        .collect()
}

/// Counts of every n-gram (orders 1 to [`MAX_ORDER`]) of a token sequence; the order is the
/// slice's length.
fn ngram_counts(tokens: &[u32]) -> HashMap<&[u32], usize> {
    let mut m = HashMap::with_capacity(tokens.len() * MAX_ORDER);
    for n in 1..=MAX_ORDER.min(tokens.len()) {
        for g in tokens.windows(n) {
            *m.entry(g).or_insert(0) += 1;
        }
    }
    m
}

/// BLEU statistics of one hypothesis against references merged by per-n-gram maximum count,
/// one sentence at a time as sacreBLEU computes them. `None` without references.
pub fn sentence_stats(hypothesis: &str, references: &[&str]) -> Option<BleuStats> {
    let mut all = vec![tokenize_13a(hypothesis)];
    all.extend(references.iter().map(|r| tokenize_13a(r)));
    let mut ids = HashMap::new();
    let docs = intern(&all, &mut ids);
    let ref_len = closest_ref_len(docs[0].len(), docs[1..].iter().map(Vec::len))?;
    let mut max_ref: HashMap<&[u32], usize> = HashMap::new();
    for r in &docs[1..] {
        for (g, c) in ngram_counts(r) {
            let e = max_ref.entry(g).or_insert(0);
            *e = (*e).max(c);
        }
    }
    let mut stats = BleuStats {
        hyp_len: docs[0].len(),
        ref_len,
        ..BleuStats::default()
    };
    for (g, c) in ngram_counts(&docs[0]) {
        stats.total[g.len() - 1] += c;
        stats.correct[g.len() - 1] += c.min(max_ref.get(g).copied().unwrap_or(0));
    }
    Some(stats)
}

/// sacreBLEU `sentence_bleu(hypothesis, references)` with its defaults (13a, exp smoothing,
/// effective order), 0–100. `None` without references (sacreBLEU raises).
pub fn sentence_bleu(hypothesis: &str, references: &[&str]) -> Option<f64> {
    sentence_stats(hypothesis, references).map(|s| s.score())
}

/// The two largest counts of an n-gram across a group's texts and the text holding the
/// largest.
#[derive(Debug, Clone, Copy, Default)]
struct TopTwo {
    max: usize,
    max_doc: usize,
    second: usize,
}

impl TopTwo {
    fn add(&mut self, doc: usize, count: usize) {
        if count > self.max {
            self.second = self.max;
            self.max = count;
            self.max_doc = doc;
        } else if count > self.second {
            self.second = count;
        }
    }

    /// The largest count among the texts other than `doc`.
    fn without(&self, doc: usize) -> usize {
        if doc == self.max_doc {
            self.second
        } else {
            self.max
        }
    }
}

/// The BLEU statistics of each text against all the others of the group, in O(total n-grams):
/// the clip of an n-gram for text `i` is its largest count outside `i`, which is the top count
/// unless `i` holds it, then the second. Empty for fewer than two texts.
pub fn leave_one_out_stats(texts: &[&str]) -> Vec<BleuStats> {
    if texts.len() < 2 {
        return Vec::new();
    }
    let tokens: Vec<Vec<String>> = texts.iter().map(|t| tokenize_13a(t)).collect();
    let mut ids = HashMap::new();
    let docs = intern(&tokens, &mut ids);
    let counts: Vec<_> = docs.iter().map(|d| ngram_counts(d)).collect();
    let mut top: HashMap<&[u32], TopTwo> = HashMap::new();
    for (i, c) in counts.iter().enumerate() {
        for (&g, &k) in c {
            top.entry(g).or_default().add(i, k);
        }
    }
    let lens: Vec<usize> = docs.iter().map(Vec::len).collect();
    let ref_lens = closest_other_lens(&lens);
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut s = BleuStats {
                hyp_len: lens[i],
                ref_len: ref_lens[i],
                ..BleuStats::default()
            };
            for (&g, &k) in c {
                s.total[g.len() - 1] += k;
                s.correct[g.len() - 1] += k.min(top[g].without(i));
            }
            s
        })
        .collect()
}

/// For each length, the closest among the other lengths (the smaller on a tie), from one sort:
/// the neighbours in sorted order, a duplicate of itself being the exact match.
fn closest_other_lens(lens: &[usize]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    let mut out = vec![0; lens.len()];
    for (pos, &i) in order.iter().enumerate() {
        let below = pos.checked_sub(1).map(|p| lens[order[p]]);
        let above = order.get(pos + 1).map(|&j| lens[j]);
        let candidates = below.into_iter().chain(above);
        // At least one neighbour exists: callers pass two or more lengths.
        out[i] = closest_ref_len(lens[i], candidates).unwrap_or(lens[i]);
    }
    out
}

/// Self-BLEU of a group (0–100): the mean over its texts of [`sentence_bleu`] of the text
/// against all the others, summed in order and divided by the count. `None` for fewer than two
/// texts.
pub fn self_bleu(texts: &[&str]) -> Option<f64> {
    let stats = leave_one_out_stats(texts);
    if stats.is_empty() {
        return None;
    }
    let sum: f64 = stats.iter().map(BleuStats::score).sum();
    Some(sum / stats.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn identical_texts_score_100_and_disjoint_texts_0() {
        let s = self_bleu(&["the cat sat on the mat", "the cat sat on the mat"]).unwrap();
        assert!((s - 100.0).abs() < 1e-12, "{s}");
        assert_eq!(self_bleu(&["a b c", "d e f"]), Some(0.0));
        assert_eq!(self_bleu(&["only one"]), None);
        assert_eq!(sentence_bleu("x", &[]), None);
    }

    #[test]
    fn effective_order_keeps_zero_match_orders_and_smooths_them() {
        // "a b" vs "a c": unigrams 1/2, bigrams 0/1 → p2 = 100 / (2·1); effective order 2.
        let s = sentence_bleu("a b", &["a c"]).unwrap();
        let want = ((50f64.ln() + 50f64.ln()) / 2.0).exp();
        assert!((s - want).abs() < 1e-12, "{s} vs {want}");
        // A one-token hypothesis has order 1 only.
        assert!(
            (sentence_bleu("a", &["a b"]).unwrap() - 100.0 * (1.0f64 - 2.0).exp()).abs() < 1e-12
        );
    }

    #[test]
    fn closest_reference_length_prefers_the_shorter_on_a_tie() {
        assert_eq!(closest_ref_len(5, [3, 7]), Some(3));
        assert_eq!(closest_ref_len(5, [7, 3, 6]), Some(6));
        assert_eq!(closest_ref_len(5, []), None);
        assert_eq!(closest_other_lens(&[5, 3, 7, 5]), [5, 5, 5, 5]);
        assert_eq!(closest_other_lens(&[5, 3, 7]), [3, 5, 5]);
        assert_eq!(closest_other_lens(&[0, 0]), [0, 0]);
    }

    fn group() -> impl Strategy<Value = Vec<String>> {
        let token = prop::sample::select(vec![
            "a", "b", "the", "cat", ",", ".", "1", "2.5", "-", "3-4", "!", "é", "猫", "&amp;",
        ]);
        let sep = prop::sample::select(vec![" ", "", "\n", " -\n"]);
        let text = (prop::collection::vec(token, 0..24), sep).prop_map(|(t, s)| t.join(s));
        prop::collection::vec(text, 2..9)
    }

    proptest! {
        /// The O(total n-grams) leave-one-out statistics equal one sentence call per text
        /// against all the others.
        #[test]
        fn leave_one_out_equals_one_sentence_call_per_text(texts in group()) {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let fast = leave_one_out_stats(&refs);
            prop_assert_eq!(fast.len(), refs.len());
            let mut sum = 0.0;
            for (i, hyp) in refs.iter().enumerate() {
                let others: Vec<&str> = refs.iter().enumerate()
                    .filter(|&(j, _)| j != i).map(|(_, t)| *t).collect();
                let naive = sentence_stats(hyp, &others).unwrap();
                prop_assert_eq!(fast[i], naive);
                sum += naive.score();
            }
            prop_assert_eq!(self_bleu(&refs), Some(sum / refs.len() as f64));
        }
    }
}
