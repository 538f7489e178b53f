//! Prompt-lookup n-gram drafts: the continuation of the longest earlier match of the history's
//! last tokens (no second model; llama.cpp and vLLM ship the same idea).

/// Proposes up to `g` tokens for `history` (prompt + generated so far): for `n` from
/// `min(max_n, len − 1)` down to 1, the most recent earlier occurrence of the last `n` tokens
/// whose continuation is non-empty gives the draft — the tokens that followed it, at most `g`,
/// never past the end of the history. Empty when no suffix recurs (or `g` or `max_n` is 0).
pub fn ngram_draft(history: &[u32], max_n: usize, g: usize) -> Vec<u32> {
    let h = history.len();
    if g == 0 || h < 2 {
        return Vec::new();
    }
    for n in (1..=max_n.min(h - 1)).rev() {
        let suffix = &history[h - n..];
        // Occurrences start at i ≤ h − n − 1 (strictly before the suffix itself), latest first.
        for i in (0..h - n).rev() {
            if &history[i..i + n] == suffix {
                let start = i + n;
                let end = (start + g).min(h);
                if start < end {
                    return history[start..end].to_vec();
                }
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposes_the_continuation_of_the_longest_latest_match() {
        // …1 2 3 | 9 … 1 2 3 | 7 8 … 2 3: the longest recurring suffix is "2 3" (n = 2).
        let h = [1, 2, 3, 9, 4, 2, 3, 7, 8, 5, 2, 3];
        assert_eq!(ngram_draft(&h, 3, 2), [7, 8]);
        assert_eq!(ngram_draft(&h, 3, 10), [7, 8, 5, 2, 3]);
        // With n ≤ 1 only the last token matters: the latest earlier 3 is followed by 7.
        assert_eq!(ngram_draft(&h, 1, 1), [7]);
        // A longer match wins over a later shorter one.
        let h = [5, 6, 7, 1, 6, 8, 5, 6];
        assert_eq!(ngram_draft(&h, 2, 1), [7]);
        assert_eq!(ngram_draft(&h, 1, 1), [8]);
    }

    #[test]
    fn no_match_or_nothing_asked_gives_no_draft() {
        assert!(ngram_draft(&[1, 2, 3, 4], 3, 4).is_empty());
        assert!(ngram_draft(&[1, 1], 3, 0).is_empty());
        assert!(ngram_draft(&[1, 1], 0, 3).is_empty());
        assert!(ngram_draft(&[1], 3, 3).is_empty());
        // A run of one token: the draft repeats it (overlapping match).
        assert_eq!(ngram_draft(&[4, 4, 4], 2, 3), [4]);
    }
}
