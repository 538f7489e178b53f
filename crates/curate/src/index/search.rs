//! Queries over a suffix array of a token text: n-gram counts and longest matches.
//!
//! The text is the corpus's documents, each followed by the separator id (`vocab_size`, larger
//! than every token id); the suffix array lists every position of the text in the lexicographic
//! order of the suffixes starting there. The suffixes that begin with an n-gram form one
//! contiguous interval of the suffix array, and the interval of `q[..k+1]` is the part of the
//! interval of `q[..k]` whose token at offset `k` equals `q[k]` — found by two binary searches
//! on that token, which is sorted inside the interval. Query tokens are always `< vocab_size`
//! (a token outside the vocabulary occurs nowhere), so a match never contains the separator and
//! never crosses from one document into the next.

use std::ops::Range;

/// A stored token id (u16 or u32).
pub trait Token: Copy + bytemuck::Pod {
    /// The id as u32.
    fn id(self) -> u32;
}

impl Token for u16 {
    #[inline(always)]
    fn id(self) -> u32 {
        u32::from(self)
    }
}

impl Token for u32 {
    #[inline(always)]
    fn id(self) -> u32 {
        self
    }
}

/// Below this many candidate suffixes, matching compares them one by one instead of searching.
const SMALL_INTERVAL: usize = 8;

/// A token text with its suffix array, borrowed (from memory or a memory map).
///
/// Every method is total: an out-of-range entry in a damaged array is read as the separator
/// (a mismatch), never a panic.
#[derive(Debug, Clone, Copy)]
pub struct SuffixView<'a, T> {
    text: &'a [T],
    sa: &'a [u32],
    vocab_size: u32,
    tokens: u64,
}

impl<'a, T: Token> SuffixView<'a, T> {
    /// A view of `text` (documents each ending with the separator `vocab_size`) and its suffix
    /// array `sa`; `tokens` = non-separator positions of the text.
    pub fn new(text: &'a [T], sa: &'a [u32], vocab_size: u32, tokens: u64) -> Self {
        Self {
            text,
            sa,
            vocab_size,
            tokens,
        }
    }

    /// The token at offset `k` of the suffix at suffix-array slot `j` (the separator when out of
    /// range).
    #[inline(always)]
    fn at(&self, j: usize, k: usize) -> u32 {
        match self.sa.get(j) {
            Some(&p) => self
                .text
                .get(p as usize + k)
                .map_or(self.vocab_size, |t| t.id()),
            None => self.vocab_size,
        }
    }

    /// The part of interval `r` (suffixes that share their first `k` tokens) whose token at
    /// offset `k` is `c`.
    #[inline]
    fn narrow(&self, r: Range<usize>, k: usize, c: u32) -> Range<usize> {
        // First slot with token ≥ c, by binary search.
        let (mut lo, mut hi) = (r.start, r.end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.at(mid, k) < c {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let start = lo;
        if start == r.end || self.at(start, k) != c {
            return start..start;
        }
        // First slot with token > c: gallop from `start` (matches are usually few), then bisect.
        let mut step = 1;
        let mut below = start; // at(below) == c
        let mut above = r.end; // at(above) > c, or the end
        while below + step < r.end {
            if self.at(below + step, k) > c {
                above = below + step;
                break;
            }
            below += step;
            step *= 2;
        }
        let (mut lo, mut hi) = (below + 1, above);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.at(mid, k) > c {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        start..lo
    }

    /// Length of the common prefix of the suffix at slot `j`, from offset `k`, and `rest`.
    #[inline]
    fn common(&self, j: usize, k: usize, rest: &[u32]) -> usize {
        rest.iter()
            .enumerate()
            .take_while(|&(i, &c)| self.at(j, k + i) == c)
            .count()
    }

    /// Number of occurrences of `ngram` in the corpus (never across a document boundary). The
    /// empty n-gram occurs once per corpus token; an n-gram with an id `≥ vocab_size` occurs
    /// nowhere.
    pub fn count(&self, ngram: &[u32]) -> u64 {
        if ngram.is_empty() {
            return self.tokens;
        }
        if ngram.iter().any(|&c| c >= self.vocab_size) {
            return 0;
        }
        let mut r = 0..self.sa.len();
        for (k, &c) in ngram.iter().enumerate() {
            if r.len() <= SMALL_INTERVAL {
                let rest = &ngram[k..];
                return r.filter(|&j| self.common(j, k, rest) == rest.len()).count() as u64;
            }
            r = self.narrow(r, k, c);
            if r.is_empty() {
                return 0;
            }
        }
        r.len() as u64
    }

    /// The length of the longest prefix of `query` that occurs in the corpus (count > 0): 0
    /// when even `query[0]` occurs nowhere (or `query` is empty), `query.len()` when all of it
    /// occurs. Exact: every prefix of an occurring n-gram occurs, so this is the largest `n`
    /// with `count(&query[..n]) > 0`.
    pub fn longest_prefix(&self, query: &[u32]) -> usize {
        let m = query
            .iter()
            .position(|&c| c >= self.vocab_size)
            .unwrap_or(query.len());
        let mut r = 0..self.sa.len();
        for (k, &c) in query[..m].iter().enumerate() {
            if r.len() <= SMALL_INTERVAL {
                let rest = &query[k..m];
                return k + r.map(|j| self.common(j, k, rest)).max().unwrap_or(0);
            }
            r = self.narrow(r, k, c);
            if r.is_empty() {
                return k;
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text "a b a b c | b a |" with a=0 b=1 c=2, separator 3, and its suffix array by sorting.
    fn small() -> (Vec<u16>, Vec<u32>) {
        let text: Vec<u16> = vec![0, 1, 0, 1, 2, 3, 1, 0, 3];
        let mut sa: Vec<u32> = (0..text.len() as u32).collect();
        sa.sort_by(|&a, &b| text[a as usize..].cmp(&text[b as usize..]));
        (text, sa)
    }

    #[test]
    fn counts_and_longest_prefixes_of_a_small_text() {
        let (text, sa) = small();
        let v = SuffixView::new(&text, &sa, 3, 7);
        assert_eq!(v.count(&[]), 7);
        assert_eq!(v.count(&[0]), 3);
        assert_eq!(v.count(&[0, 1]), 2);
        assert_eq!(v.count(&[1, 0]), 2);
        assert_eq!(v.count(&[0, 1, 2]), 1);
        assert_eq!(v.count(&[2, 1]), 0, "c then b would cross the document end");
        assert_eq!(v.count(&[3]), 0, "the separator is not a token");
        assert_eq!(v.count(&[7]), 0);
        assert_eq!(v.longest_prefix(&[0, 1, 0, 1, 2, 1]), 5);
        assert_eq!(v.longest_prefix(&[1, 0, 0]), 2);
        assert_eq!(v.longest_prefix(&[2, 1, 0]), 1);
        assert_eq!(v.longest_prefix(&[3, 0]), 0);
        assert_eq!(v.longest_prefix(&[]), 0);
    }

    #[test]
    fn a_damaged_array_gives_answers_not_panics() {
        let (text, mut sa) = small();
        sa[3] = 1_000;
        let v = SuffixView::new(&text, &sa, 3, 7);
        let _ = v.count(&[0, 1]);
        let _ = v.longest_prefix(&[0, 1, 0, 1]);
        let short = &sa[..4];
        let v = SuffixView::new(&text[..2], short, 3, 2);
        let _ = v.count(&[1, 0, 1]);
    }
}
