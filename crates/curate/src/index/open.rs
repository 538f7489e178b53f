//! An index opened for queries: the header read and checked, the token and suffix-array files
//! memory-mapped and checked against it.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};

use crate::error::{CurateError, Result};
use crate::index::coverage::{greedy_coverage, Coverage};
use crate::index::format::{self, BinaryKind, IndexHeader, TokenWidth, HEADER_FILE, PREFIX_BYTES};
use crate::index::search::SuffixView;
use crate::index::IndexError;

/// A token index on disk, opened for queries. The files stay mapped, not read: a query reads
/// only the pages it touches.
#[derive(Debug)]
pub struct Index {
    dir: PathBuf,
    header: IndexHeader,
    tokens: Mmap,
    sa: Mmap,
}

/// A borrowed view at the stored width.
enum View<'a> {
    U16(SuffixView<'a, u16>),
    U32(SuffixView<'a, u32>),
}

impl Index {
    /// Opens the index in `dir`. Errors name the file: a missing or malformed header, a binary
    /// file of another build, format or width (build id, magic, kind, count), a truncated or
    /// overlong file, or a token file that does not end with a document separator.
    pub fn open(dir: &Path) -> Result<Self> {
        let header = IndexHeader::read(dir)?;
        let header_path = dir.join(HEADER_FILE);
        let map = |kind: BinaryKind| -> Result<Mmap> {
            let path = format::binary_path(dir, kind);
            let file = File::open(&path).map_err(CurateError::io(&path))?;
            // SAFETY: the map is read-only; the index files are written once (atomically, into
            // a fresh directory) and never modified in place. A file truncated by someone else
            // while mapped would fault, as with any mapped file.
            let m = unsafe { Mmap::map(&file) }.map_err(CurateError::io(&path))?;
            Ok(m)
        };
        let tokens = map(BinaryKind::Tokens)?;
        let sa = map(BinaryKind::SuffixArray)?;
        let tokens_path = format::binary_path(dir, BinaryKind::Tokens);
        let sa_path = format::binary_path(dir, BinaryKind::SuffixArray);
        let width = header.token_width.bytes();
        let tok_payload = format::check_binary(
            &tokens_path,
            &tokens,
            BinaryKind::Tokens,
            width,
            &header,
            &header_path,
        )?;
        format::check_binary(
            &sa_path,
            &sa,
            BinaryKind::SuffixArray,
            4,
            &header,
            &header_path,
        )?;
        if cfg!(target_endian = "big") {
            return Err(IndexError::Mismatch {
                path: tokens_path,
                field: "byte order".into(),
                expected: "this host's (big-endian)".into(),
                found: "little-endian".into(),
            }
            .into());
        }
        let last = &tok_payload[tok_payload.len() - width..];
        let last = match header.token_width {
            TokenWidth::U16 => u32::from(u16::from_le_bytes([last[0], last[1]])),
            TokenWidth::U32 => u32::from_le_bytes([last[0], last[1], last[2], last[3]]),
        };
        if last != header.separator {
            return Err(IndexError::Mismatch {
                path: tokens_path,
                field: "last token".into(),
                expected: format!("the separator {}", header.separator),
                found: last.to_string(),
            }
            .into());
        }
        for m in [&tokens, &sa] {
            // Queries jump around; read-ahead would only evict useful pages.
            let _ = m.advise(Advice::Random);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            header,
            tokens,
            sa,
        })
    }

    /// The header: vocabulary, tokenizer, corpus files, counts.
    pub fn header(&self) -> &IndexHeader {
        &self.header
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn view(&self) -> View<'_> {
        // Lengths and the 64-byte payload offset were checked in `open`, and a map starts on a
        // page boundary, so these casts cannot fail.
        let sa: &[u32] = bytemuck::cast_slice(&self.sa[PREFIX_BYTES..]);
        let payload = &self.tokens[PREFIX_BYTES..];
        let (v, n) = (self.header.vocab_size, self.header.tokens);
        match self.header.token_width {
            TokenWidth::U16 => View::U16(SuffixView::new(bytemuck::cast_slice(payload), sa, v, n)),
            TokenWidth::U32 => View::U32(SuffixView::new(bytemuck::cast_slice(payload), sa, v, n)),
        }
    }

    /// The tokens of the corpus from position `at` (of `0..positions`), at most `max_len`,
    /// stopping at the end of the document (empty when `at` is a separator or out of range).
    pub fn document_tokens(&self, at: u64, max_len: usize) -> Vec<u32> {
        fn take<T: crate::index::search::Token>(
            t: &[T],
            at: u64,
            max_len: usize,
            sep: u32,
        ) -> Vec<u32> {
            let start = usize::try_from(at).unwrap_or(usize::MAX).min(t.len());
            t[start..]
                .iter()
                .take(max_len)
                .map(|x| x.id())
                .take_while(|&x| x != sep)
                .collect()
        }
        let payload = &self.tokens[PREFIX_BYTES..];
        let sep = self.header.separator;
        match self.header.token_width {
            TokenWidth::U16 => take::<u16>(bytemuck::cast_slice(payload), at, max_len, sep),
            TokenWidth::U32 => take::<u32>(bytemuck::cast_slice(payload), at, max_len, sep),
        }
    }

    /// Occurrences of `ngram` in the corpus, never across a document boundary (see
    /// [`SuffixView::count`]).
    pub fn count(&self, ngram: &[u32]) -> u64 {
        match self.view() {
            View::U16(v) => v.count(ngram),
            View::U32(v) => v.count(ngram),
        }
    }

    /// The length of the longest prefix of `query` that occurs in the corpus (see
    /// [`SuffixView::longest_prefix`]).
    pub fn longest_prefix(&self, query: &[u32]) -> usize {
        match self.view() {
            View::U16(v) => v.longest_prefix(query),
            View::U32(v) => v.longest_prefix(query),
        }
    }

    /// The greedy longest-match coverage of `tokens` with n-grams of at most `max_n` tokens
    /// (see [`greedy_coverage`] for the exact walk).
    pub fn coverage(&self, tokens: &[u32], max_n: usize) -> Result<Coverage> {
        match self.view() {
            View::U16(v) => greedy_coverage(tokens, max_n, |q| v.longest_prefix(q)),
            View::U32(v) => greedy_coverage(tokens, max_n, |q| v.longest_prefix(q)),
        }
    }
}
