//! Stop strings over streamed text: where a generation's text ends, and how much of it may be
//! released while a tail could still grow into a stop string.

use std::ops::Range;

/// One generation's stop strings and its text so far.
///
/// Text arrives in pieces ([`StopMatcher::push`]). The text ends before the stop string that
/// completes first, as if the text arrived one character at a time (among several completing
/// at the same character, the one starting earliest), wherever the occurrence falls across
/// pieces: where the text is cut does not depend on how it was split into pieces. Text is *released* (safe to
/// show) up to the end, except a tail that is a proper prefix of some stop string: that tail is
/// held back until the next piece settles it, or until [`StopMatcher::finish`].
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Byte length of the longest stop string.
    longest: usize,
    text: String,
    /// Bytes of `text` released so far.
    released: usize,
    stopped: bool,
}

impl StopMatcher {
    /// A matcher for `stops`. Empty strings are ignored (they would match before any text).
    pub fn new<S: AsRef<str>>(stops: &[S]) -> Self {
        let stops: Vec<String> = stops
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Self {
            longest: stops.iter().map(String::len).max().unwrap_or(0),
            stops,
            ..Self::default()
        }
    }

    /// The stop strings in use (empty ones removed).
    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Appends `piece` and returns the range of [`StopMatcher::text`] released by it. If a stop
    /// string now occurs, the text is cut before the one that completed first, everything up to the
    /// cut is released and the matcher is stopped: later pushes are ignored.
    pub fn push(&mut self, piece: &str) -> Range<usize> {
        let before = self.released;
        if self.stopped || piece.is_empty() {
            return before..before;
        }
        let start = self.text.len();
        self.text.push_str(piece);
        // An occurrence not found before must end inside the new piece, so it starts at most
        // `longest` bytes before it.
        let from = floor_char_boundary(&self.text, start.saturating_sub(self.longest));
        let hay = &self.text[from..];
        let cut = self
            .stops
            .iter()
            .filter_map(|s| hay.find(s.as_str()).map(|p| (p + s.len(), p)))
            .min()
            .map(|(_, p)| from + p);
        match cut {
            Some(cut) => {
                self.text.truncate(cut);
                self.stopped = true;
                self.released = self.released.max(cut);
            }
            None => {
                let safe = self.text.len() - self.held_back();
                self.released = self.released.max(safe);
            }
        }
        before..self.released
    }

    /// Ends the text: releases the held-back tail (a stop-string prefix that never completed)
    /// and returns its range.
    pub fn finish(&mut self) -> Range<usize> {
        let before = self.released;
        self.released = self.text.len();
        before..self.released
    }

    /// Whether a stop string occurred.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The text so far (cut before the stop string once stopped), released or not.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How many bytes of [`StopMatcher::text`] have been released.
    pub fn released(&self) -> usize {
        self.released
    }

    /// The text, consuming the matcher.
    pub fn into_text(self) -> String {
        self.text
    }

    /// Length of the longest suffix of the text that is a proper prefix of some stop string.
    fn held_back(&self) -> usize {
        self.stops
            .iter()
            .flat_map(|s| {
                (1..s.len())
                    .rev()
                    .filter(move |&k| s.is_char_boundary(k))
                    .map(move |k| &s[..k])
            })
            .filter(|p| self.text.ends_with(p))
            .map(str::len)
            .max()
            .unwrap_or(0)
    }
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    (0..=i.min(s.len()))
        .rev()
        .find(|&k| s.is_char_boundary(k))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `pieces` and returns the released chunks (the final `finish` one included, when
    /// not empty).
    fn run(stops: &[&str], pieces: &[&str]) -> (Vec<String>, StopMatcher) {
        let mut m = StopMatcher::new(stops);
        let mut out = Vec::new();
        for p in pieces {
            let r = m.push(p);
            if !r.is_empty() {
                out.push(m.text()[r].to_string());
            }
        }
        let r = m.finish();
        if !r.is_empty() {
            out.push(m.text()[r].to_string());
        }
        (out, m)
    }

    #[test]
    fn no_stops_release_everything_at_once() {
        let (out, m) = run(&[], &["ab", "c"]);
        assert_eq!(out, ["ab", "c"]);
        assert!(!m.stopped());
        assert_eq!(m.text(), "abc");
    }

    #[test]
    fn stop_inside_one_piece_cuts_before_it() {
        let (out, m) = run(&["END"], &["hello END there"]);
        assert_eq!(out, ["hello "]);
        assert!(m.stopped());
        assert_eq!(m.text(), "hello ");
    }

    #[test]
    fn stop_straddling_pieces_is_found_and_its_prefix_never_released() {
        // "\n\nUser:" split over four pieces: nothing of it is ever released.
        let (out, m) = run(&["\n\nUser:"], &["Sure.", "\n", "\nUs", "er", ": hi"]);
        assert_eq!(out, ["Sure."]);
        assert!(m.stopped());
        assert_eq!(m.text(), "Sure.");
    }

    #[test]
    fn stop_split_across_several_tokens_one_byte_each() {
        let pieces: Vec<String> = "ab<stop>cd".chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (out, m) = run(&["<stop>"], &refs);
        assert_eq!(out.concat(), "ab");
        assert!(m.stopped());
    }

    #[test]
    fn first_completed_stop_wins() {
        // "b" completes before "abc" does, although "abc" starts earlier.
        let (out, m) = run(&["yz", "b", "abc"], &["xa", "bcyz"]);
        assert_eq!(m.text(), "xa");
        // "a" was held back as a prefix of "abc" until "b" settled it.
        assert_eq!(out, ["x", "a"]);
        // Completing at the same character: the one starting earliest.
        let (_, m) = run(&["bc", "abc"], &["xa", "bcyz"]);
        assert_eq!(m.text(), "x");
    }

    #[test]
    fn cut_does_not_depend_on_the_pieces_when_a_short_stop_completes_inside_a_long_one() {
        // Found by the property test below: "é" completes inside "béé".
        let stops = ["é", "béé"];
        let (_, whole) = run(&stops, &["a\na\nbéé"]);
        let (_, split) = run(&stops, &["a\na\nbé", "é"]);
        assert_eq!(whole.text(), "a\na\nb");
        assert_eq!(split.text(), "a\na\nb");
    }

    #[test]
    fn held_back_prefix_that_does_not_complete_is_released_later() {
        let mut m = StopMatcher::new(&["END"]);
        let r = m.push("hello EN");
        assert_eq!(&m.text()[r], "hello ");
        let r = m.push("X");
        assert_eq!(&m.text()[r], "ENX");
        // A tail still open at the end comes out with `finish`.
        let r = m.push(" E");
        assert_eq!(&m.text()[r], " ");
        let r = m.finish();
        assert_eq!(&m.text()[r], "E");
        assert!(!m.stopped());
        assert_eq!(m.into_text(), "hello ENX E");
    }

    #[test]
    fn empty_stop_strings_are_ignored() {
        let (out, m) = run(&["", "Z"], &["abc", "dZe"]);
        assert_eq!(out, ["abc", "d"]);
        assert_eq!(m.stops(), ["Z"]);
        let (out, m) = run(&[""], &["abc"]);
        assert_eq!(out, ["abc"]);
        assert!(!m.stopped());
    }

    #[test]
    fn multi_byte_stops_and_text() {
        // The stop's proper prefixes are cut on character boundaries ("é" is two bytes).
        let (out, m) = run(&["éa"], &["xé", "é", "ab"]);
        assert_eq!(out, ["x", "é"]);
        assert_eq!(m.text(), "xé");
        // The search window starts on a character boundary inside multi-byte text.
        let (_, m) = run(&["abc"], &["éééé", "a", "bc"]);
        assert_eq!(m.text(), "éééé");
        assert_eq!(floor_char_boundary("aé", 2), 1);
    }

    #[test]
    fn pushes_after_a_stop_are_ignored() {
        let mut m = StopMatcher::new(&["!"]);
        m.push("hi!");
        let r = m.push("more");
        assert!(r.is_empty());
        assert!(m.finish().is_empty());
        assert_eq!(m.text(), "hi");
        assert_eq!(m.released(), 2);
    }

    proptest::proptest! {
        /// However the text is cut into pieces, the released text is the whole text cut before
        /// the first occurrence of any (non-empty) stop string.
        #[test]
        fn released_text_does_not_depend_on_the_pieces(
            text in "[ab\\né]{0,24}",
            cuts in proptest::collection::vec(0usize..32, 0..8),
            stops in proptest::collection::vec("[ab\\né]{0,3}", 0..3),
        ) {
            let mut bounds: Vec<usize> = cuts
                .iter()
                .map(|&c| floor_char_boundary(&text, c))
                .chain([0, text.len()])
                .collect();
            bounds.sort_unstable();
            bounds.dedup();
            let mut m = StopMatcher::new(&stops);
            let mut released = String::new();
            for w in bounds.windows(2) {
                let r = m.push(&text[w[0]..w[1]]);
                released.push_str(&m.text()[r]);
            }
            let r = m.finish();
            released.push_str(&m.text()[r]);
            // The stop completing first (then the one starting earliest) cuts the text.
            let cut = stops
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| text.find(s.as_str()).map(|p| (p + s.len(), p)))
                .min()
                .map(|(_, p)| p);
            let want = &text[..cut.unwrap_or(text.len())];
            proptest::prop_assert_eq!(&released, want);
            proptest::prop_assert_eq!(m.text(), want);
            proptest::prop_assert_eq!(m.stopped(), cut.is_some());
        }
    }
}
