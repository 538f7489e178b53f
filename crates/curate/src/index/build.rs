//! Building an index: token text with document separators, its suffix array (SA-IS, libsais),
//! and the directory that stores both (written atomically).

use std::path::{Path, PathBuf};
use std::time::Instant;

use adasamp_engine::files::write_dir_atomic;
use libsais::SuffixArrayConstruction;
use sha2::{Digest, Sha256};

use crate::error::{CurateError, Result};
use crate::index::corpus::{read_documents, CorpusFormat, DEFAULT_TEXT_FIELD};
use crate::index::format::{
    self, BinaryKind, CorpusFileInfo, IndexHeader, TokenWidth, FORMAT, HEADER_FILE, VERSION,
};
use crate::index::search::SuffixView;
use crate::index::tokenizer::LoadedTokenizer;
use crate::index::IndexError;

/// The suffix-array construction, as recorded in [`IndexHeader::suffix_array`].
pub const SUFFIX_ARRAY_ALGORITHM: &str = "SA-IS (libsais, one thread), u32 entries";

/// Most positions (tokens + documents) one index holds: suffix-array entries are 32-bit.
pub const MAX_POSITIONS: u64 = i32::MAX as u64;

/// Token ids stored at their width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenText {
    /// 2-byte ids.
    U16(Vec<u16>),
    /// 4-byte ids.
    U32(Vec<u32>),
}

impl TokenText {
    /// Number of positions.
    pub fn len(&self) -> usize {
        match self {
            Self::U16(v) => v.len(),
            Self::U32(v) => v.len(),
        }
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids' bytes, little-endian.
    fn le_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Self::U16(v) if cfg!(target_endian = "little") => bytemuck::cast_slice(v).into(),
            Self::U32(v) if cfg!(target_endian = "little") => bytemuck::cast_slice(v).into(),
            Self::U16(v) => v.iter().flat_map(|t| t.to_le_bytes()).collect(),
            Self::U32(v) => v.iter().flat_map(|t| t.to_le_bytes()).collect(),
        }
    }
}

/// A corpus as token ids: every document's tokens followed by the separator `vocab_size`.
#[derive(Debug, Clone)]
pub struct CorpusTokens {
    vocab_size: u32,
    text: TokenText,
    documents: u64,
    tokens: u64,
    open: u64,
}

impl CorpusTokens {
    /// An empty corpus over ids `0..vocab_size` (1 ≤ `vocab_size` < 2³¹ − 1), stored as u16 when
    /// `vocab_size ≤ 65535`, else u32.
    pub fn new(vocab_size: u32) -> Result<Self> {
        if vocab_size == 0 || u64::from(vocab_size) >= MAX_POSITIONS {
            return Err(CurateError::BadParameter {
                name: "vocab_size".into(),
                value: vocab_size.to_string(),
                message: format!("must be in 1..{MAX_POSITIONS}"),
            });
        }
        let text = match TokenWidth::for_vocab(vocab_size) {
            TokenWidth::U16 => TokenText::U16(Vec::new()),
            TokenWidth::U32 => TokenText::U32(Vec::new()),
        };
        Ok(Self {
            vocab_size,
            text,
            documents: 0,
            tokens: 0,
            open: 0,
        })
    }

    /// Reserves room for `positions` more positions.
    pub fn reserve(&mut self, positions: usize) {
        match &mut self.text {
            TokenText::U16(v) => v.reserve(positions),
            TokenText::U32(v) => v.reserve(positions),
        }
    }

    /// Appends ids to the current document; an id `≥ vocab_size` is an error (nothing appended).
    pub fn extend(&mut self, ids: &[u32]) -> Result<()> {
        if let Some(&bad) = ids.iter().find(|&&t| t >= self.vocab_size) {
            return Err(IndexError::Corpus {
                message: format!(
                    "token id {bad} is outside the vocabulary (size {})",
                    self.vocab_size
                ),
            }
            .into());
        }
        // This document's separator is still to come.
        let positions = self.text.len() as u64 + ids.len() as u64 + 1;
        if positions > MAX_POSITIONS {
            return Err(IndexError::Corpus {
                message: format!(
                    "more than {MAX_POSITIONS} positions (tokens + documents); split the corpus into several indexes"
                ),
            }
            .into());
        }
        match &mut self.text {
            // Every id is < vocab_size ≤ 65535 here.
            TokenText::U16(v) => v.extend(ids.iter().map(|&t| t as u16)),
            TokenText::U32(v) => v.extend_from_slice(ids),
        }
        self.open += ids.len() as u64;
        Ok(())
    }

    /// Ends the current document: a separator follows it when it has tokens (an empty document
    /// leaves no trace). Returns whether it had tokens.
    pub fn end_document(&mut self) -> bool {
        if self.open == 0 {
            return false;
        }
        match &mut self.text {
            TokenText::U16(v) => v.push(self.vocab_size as u16),
            TokenText::U32(v) => v.push(self.vocab_size),
        }
        self.documents += 1;
        self.tokens += self.open;
        self.open = 0;
        true
    }

    /// Ids are `0..vocab_size`; `vocab_size` is the separator.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// Documents ended so far (with tokens).
    pub fn documents(&self) -> u64 {
        self.documents
    }

    /// Tokens of the ended documents.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// The text: ended documents with their separators (and any open document's tokens).
    pub fn text(&self) -> &TokenText {
        &self.text
    }

    /// The suffix array of the text (SA-IS, libsais, one thread). Ends an open document first.
    /// An empty corpus is an error.
    pub fn suffix_array(&mut self) -> Result<Vec<u32>> {
        self.end_document();
        let n = self.text.len();
        if n == 0 {
            return Err(IndexError::Corpus {
                message: "no tokens: every document was empty".into(),
            }
            .into());
        }
        let mut sa = vec![0u32; n];
        let out: &mut [i32] = bytemuck::cast_slice_mut(&mut sa);
        let failed = |e: libsais::LibsaisError| -> CurateError {
            IndexError::Construction {
                positions: n as u64,
                message: format!("{e:?}"),
            }
            .into()
        };
        match &mut self.text {
            TokenText::U16(v) => {
                SuffixArrayConstruction::for_text(&v[..])
                    .in_borrowed_buffer(out)
                    .single_threaded()
                    .run()
                    .map_err(failed)?;
            }
            TokenText::U32(v) => {
                // Ids ≤ vocab_size < 2³¹ − 1: the same values as i32 (libsais' large alphabet).
                let text: &mut [i32] = bytemuck::cast_slice_mut(&mut v[..]);
                SuffixArrayConstruction::for_text_mut(text)
                    .in_borrowed_buffer(out)
                    .single_threaded()
                    .run()
                    .map_err(failed)?;
            }
        }
        Ok(sa)
    }

    /// Queries over this corpus and its suffix array `sa` (from [`CorpusTokens::suffix_array`]),
    /// without writing an index: `f` gets a u16 or u32 view.
    pub fn with_view<R>(
        &self,
        sa: &[u32],
        f16: impl FnOnce(SuffixView<'_, u16>) -> R,
        f32: impl FnOnce(SuffixView<'_, u32>) -> R,
    ) -> R {
        match &self.text {
            TokenText::U16(v) => f16(SuffixView::new(v, sa, self.vocab_size, self.tokens)),
            TokenText::U32(v) => f32(SuffixView::new(v, sa, self.vocab_size, self.tokens)),
        }
    }
}

/// What an index records besides its tokens: where they came from.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The tokenizer's identity and origin.
    pub tokenizer: crate::index::tokenizer::TokenizerInfo,
    /// The JSONL text field used.
    pub text_field: String,
    /// The corpus files.
    pub files: Vec<CorpusFileInfo>,
}

/// Writes the index directory `out` (replaced atomically: a reader sees the old index or the
/// complete new one) for `corpus` and its suffix array `sa`. Returns the header written.
pub fn write_index(
    out: &Path,
    corpus: &CorpusTokens,
    sa: &[u32],
    provenance: Provenance,
) -> Result<IndexHeader> {
    let positions = corpus.text.len() as u64;
    if sa.len() as u64 != positions || corpus.open > 0 || positions == 0 {
        return Err(IndexError::Corpus {
            message: format!(
                "suffix array of {} entries for {positions} positions (documents must be ended, the corpus non-empty)",
                sa.len()
            ),
        }
        .into());
    }
    let tokens = corpus.text.le_bytes();
    let id: [u8; 32] = Sha256::digest(&tokens).into();
    let header = IndexHeader {
        format: FORMAT.into(),
        version: VERSION,
        build_id: format::hex(&id),
        token_width: TokenWidth::for_vocab(corpus.vocab_size),
        vocab_size: corpus.vocab_size,
        separator: corpus.vocab_size,
        tokenizer: provenance.tokenizer,
        text_field: provenance.text_field,
        files: provenance.files,
        documents: corpus.documents,
        tokens: corpus.tokens,
        positions,
        suffix_array: SUFFIX_ARRAY_ALGORITHM.into(),
    };
    let sa_bytes: std::borrow::Cow<'_, [u8]> = if cfg!(target_endian = "little") {
        bytemuck::cast_slice(sa).into()
    } else {
        sa.iter().flat_map(|p| p.to_le_bytes()).collect()
    };
    let width = header.token_width.bytes();
    let json = serde_json::to_string_pretty(&header).map_err(|e| IndexError::Header {
        path: out.join(HEADER_FILE),
        message: e.to_string(),
    })?;
    write_dir_atomic::<CurateError>(out, |tmp| {
        format::write_binary(
            &format::binary_path(tmp, BinaryKind::Tokens),
            BinaryKind::Tokens,
            width,
            positions,
            &id,
            &tokens,
        )?;
        format::write_binary(
            &format::binary_path(tmp, BinaryKind::SuffixArray),
            BinaryKind::SuffixArray,
            4,
            positions,
            &id,
            &sa_bytes,
        )?;
        let header_path = tmp.join(HEADER_FILE);
        std::fs::write(&header_path, json.as_bytes()).map_err(CurateError::io(&header_path))?;
        for f in [
            header_path,
            format::binary_path(tmp, BinaryKind::Tokens),
            format::binary_path(tmp, BinaryKind::SuffixArray),
        ] {
            std::fs::File::open(&f)
                .and_then(|h| h.sync_all())
                .map_err(CurateError::io(&f))?;
        }
        Ok(())
    })?;
    Ok(header)
}

/// Options of [`build_index`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The JSONL field holding a document's text.
    pub text_field: String,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            text_field: DEFAULT_TEXT_FIELD.into(),
        }
    }
}

/// What [`build_index`] did, with its timings.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The header written.
    pub header: IndexHeader,
    /// Where.
    pub dir: PathBuf,
    /// Seconds reading and tokenizing the corpus.
    pub tokenize_s: f64,
    /// Seconds building the suffix array.
    pub suffix_array_s: f64,
    /// Seconds writing the index.
    pub write_s: f64,
}

impl std::fmt::Display for BuildReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.header;
        let bytes: u64 = h.files.iter().map(|f| f.bytes).sum();
        let empty: u64 = h.files.iter().map(|f| f.empty_documents).sum();
        write!(
            f,
            "index {}: {} tokens in {} documents from {} files ({:.1} MB), {:?} ids, vocabulary {}\n  \
             tokenize {:.1} s, suffix array {:.1} s ({:.1} Mtokens/s), write {:.1} s",
            self.dir.display(),
            h.tokens,
            h.documents,
            h.files.len(),
            bytes as f64 / 1e6,
            h.token_width,
            h.vocab_size,
            self.tokenize_s,
            self.suffix_array_s,
            h.positions as f64 / 1e6 / self.suffix_array_s.max(1e-9),
            self.write_s,
        )?;
        if empty > 0 {
            write!(f, "\n  {empty} empty documents left out")?;
        }
        Ok(())
    }
}

/// Tokenizes the corpus `files` (see [`crate::index::corpus`] for what a document is) with
/// `tokenizer` — no BOS, special-token text becomes its id — and writes the index to `out`.
/// A progress bar counts corpus bytes.
pub fn build_index(
    files: &[PathBuf],
    tokenizer: &LoadedTokenizer,
    out: &Path,
    opts: &BuildOptions,
) -> Result<BuildReport> {
    if files.is_empty() {
        return Err(IndexError::Corpus {
            message: "no corpus files given".into(),
        }
        .into());
    }
    let vocab = u32::try_from(tokenizer.tokenizer.vocab_size()).unwrap_or(u32::MAX);
    let mut corpus = CorpusTokens::new(vocab)?;
    let mut total_bytes = 0u64;
    for f in files {
        total_bytes += std::fs::metadata(f).map_err(CurateError::io(f))?.len();
    }
    let bar = crate::stage::progress(total_bytes as usize, "bytes");
    let t0 = Instant::now();
    let mut infos = Vec::with_capacity(files.len());
    for path in files {
        let (docs0, tokens0) = (corpus.documents(), corpus.tokens());
        let mut empty = 0u64;
        let digest = read_documents(
            path,
            CorpusFormat::of(path),
            &opts.text_field,
            &mut |piece| {
                let ids = tokenizer.tokenizer.encode(piece.text, false)?;
                corpus.extend(&ids)?;
                if piece.ends_document && !corpus.end_document() {
                    empty += 1;
                }
                bar.inc(piece.bytes);
                Ok(())
            },
        )?;
        infos.push(CorpusFileInfo {
            path: path.clone(),
            sha256: digest.sha256,
            bytes: digest.bytes,
            documents: corpus.documents() - docs0,
            empty_documents: empty,
            tokens: corpus.tokens() - tokens0,
        });
    }
    bar.finish_and_clear();
    let tokenize_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let sa = corpus.suffix_array()?;
    let suffix_array_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let header = write_index(
        out,
        &corpus,
        &sa,
        Provenance {
            tokenizer: tokenizer.info.clone(),
            text_field: opts.text_field.clone(),
            files: infos,
        },
    )?;
    Ok(BuildReport {
        header,
        dir: out.to_path_buf(),
        tokenize_s,
        suffix_array_s,
        write_s: t2.elapsed().as_secs_f64(),
    })
}
