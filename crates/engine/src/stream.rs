//! Incremental detokenization for streaming: token ids in, whole-character text pieces out.

use crate::error::Result;
use crate::tokenizer::TextTokenizer;

/// Incremental detokenizer for streaming: feed ids one at a time and get back the text they
/// complete. Text is only released once it is valid UTF-8 (a character split over several
/// byte-level tokens comes out whole with its last token), and each chunk is decoded with the
/// previous token as context so that decoders which strip a leading space do not eat the spaces
/// between chunks. The concatenated chunks equal `decode(all ids)`.
#[derive(Debug, Clone)]
pub struct TokenStream {
    /// The previous chunk's tokens (context) followed by the tokens not yet released as text.
    tokens: Vec<u32>,
    /// How many of `tokens` are context.
    read: usize,
    skip_special: bool,
}

impl Default for TokenStream {
    /// A stream that leaves special tokens out of the text.
    fn default() -> Self {
        Self::new(true)
    }
}

impl TokenStream {
    /// A new stream; with `skip_special`, control tokens produce no text.
    pub fn new(skip_special: bool) -> Self {
        Self {
            tokens: Vec::new(),
            read: 0,
            skip_special,
        }
    }

    /// Adds token `id` and returns the text it completes, if any. An id outside the vocabulary
    /// is an error and leaves the stream as it was.
    pub fn push(&mut self, tok: &TextTokenizer, id: u32) -> Result<Option<String>> {
        self.tokens.push(id);
        let (before, after) = match self.decode_window(tok) {
            Ok(texts) => texts,
            Err(e) => {
                self.tokens.pop();
                return Err(e);
            }
        };
        if after.len() > before.len() && !after.ends_with('\u{FFFD}') {
            let text = new_suffix(&before, &after).to_string();
            // The tokens just released become the context of the next chunk.
            self.tokens.drain(..self.read);
            self.read = self.tokens.len();
            Ok(Some(text))
        } else {
            Ok(None)
        }
    }

    /// Ends the stream: returns whatever text is still held back (an incomplete character comes
    /// out as U+FFFD) and resets the stream.
    pub fn finish(&mut self, tok: &TextTokenizer) -> Result<Option<String>> {
        let (before, after) = self.decode_window(tok)?;
        self.reset();
        let text = new_suffix(&before, &after);
        Ok((!text.is_empty()).then(|| text.to_string()))
    }

    /// Forgets every token pushed so far.
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.read = 0;
    }

    /// Whether some pushed tokens have not produced text yet.
    pub fn has_pending(&self) -> bool {
        self.read < self.tokens.len()
    }

    /// The text of the context alone, and of the context plus the pending tokens.
    fn decode_window(&self, tok: &TextTokenizer) -> Result<(String, String)> {
        let before = tok.decode(&self.tokens[..self.read], self.skip_special)?;
        let after = tok.decode(&self.tokens, self.skip_special)?;
        Ok((before, after))
    }
}

/// The part of `after` past its longest common prefix with `before` (on a character boundary).
fn new_suffix<'a>(before: &str, after: &'a str) -> &'a str {
    if let Some(rest) = after.strip_prefix(before) {
        return rest;
    }
    let common = before
        .char_indices()
        .zip(after.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or(before.len().min(after.len()));
    after.get(common..).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::tests::tiny_gguf;

    #[test]
    fn stream_waits_for_whole_characters() {
        let tok = TextTokenizer::from_gguf(&tiny_gguf("smollm")).unwrap();
        let ids = tok.encode("hello é world", false).unwrap();
        let (a, b) = (tok.token_to_id("Ã").unwrap(), tok.token_to_id("©").unwrap());
        assert!(ids.windows(2).any(|w| w == [a, b]), "{ids:?}");
        let mut stream = TokenStream::default();
        let mut out = Vec::new();
        for &i in &ids {
            if let Some(t) = stream.push(&tok, i).unwrap() {
                out.push(t);
            }
        }
        if let Some(t) = stream.finish(&tok).unwrap() {
            out.push(t);
        }
        assert!(out.iter().all(|t| !t.contains('\u{FFFD}')), "{out:?}");
        assert!(
            out.contains(&"é".to_string()) || out.iter().any(|t| t.ends_with('é')),
            "{out:?}"
        );
        assert_eq!(out.concat(), "hello é world");
        // An incomplete character is flushed by `finish`.
        let mut stream = TokenStream::default();
        assert_eq!(stream.push(&tok, a).unwrap(), None);
        assert!(stream.has_pending());
        assert_eq!(stream.finish(&tok).unwrap().as_deref(), Some("\u{FFFD}"));
        assert!(!stream.has_pending());
        // A bad id is an error and changes nothing.
        assert!(stream.push(&tok, 999).is_err());
        assert!(!stream.has_pending());
        // Special tokens are text only when asked for.
        let mut with = TokenStream::new(false);
        assert_eq!(with.push(&tok, 2).unwrap().as_deref(), Some("<|im_end|>"));
        let mut without = TokenStream::default();
        assert_eq!(without.push(&tok, 2).unwrap(), None);
        assert_eq!(without.push(&tok, 17).unwrap().as_deref(), Some("hello"));
        assert_eq!(without.finish(&tok).unwrap(), None);
    }

    #[test]
    fn suffix_on_char_boundaries() {
        assert_eq!(new_suffix("ab", "abc"), "c");
        assert_eq!(new_suffix("a\u{FFFD}", "aé"), "é");
        assert_eq!(new_suffix("", "x"), "x");
        assert_eq!(new_suffix("abc", "ab"), "");
    }

    #[test]
    fn pieces_keep_the_spaces_between_them() {
        let tok = TextTokenizer::from_gguf(&tiny_gguf("smollm")).unwrap();
        let mut stream = TokenStream::default();
        let ids = tok.encode("hello world 12", false).unwrap();
        let pieces: Vec<String> = ids
            .iter()
            .filter_map(|&i| stream.push(&tok, i).unwrap())
            .collect();
        assert_eq!(pieces.concat(), "hello world 12");
        assert_eq!(pieces[1], " world");
    }
}
