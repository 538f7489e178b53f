//! The on-disk form of a token index: a directory with a JSON header and two binary files.
//!
//! ```text
//! DIR/header.json        IndexHeader (format, version, build id, vocabulary, tokenizer, corpus files, counts)
//! DIR/tokens.bin         64-byte prefix, then `positions` token ids (u16 or u32, little-endian)
//! DIR/suffix_array.bin   64-byte prefix, then `positions` suffix-array entries (u32, little-endian)
//! ```
//!
//! Each binary file's prefix is: magic `ADSIDX01` (8 bytes), its kind (`tokens\0\0` or
//! `sufarray`, 8 bytes), element width in bytes (u32), 4 zero bytes, element count (u64), and
//! the build id (32 bytes: SHA-256 of the token payload, also in the header as hex). Opening an
//! index checks every field and each file's exact length, so a truncated file, or a file of
//! another build, is an error naming the file, never wrong answers.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CurateError, Result};
use crate::index::tokenizer::TokenizerInfo;
use crate::index::IndexError;

/// The header file's name inside an index directory.
pub const HEADER_FILE: &str = "header.json";
/// The token file's name inside an index directory.
pub const TOKENS_FILE: &str = "tokens.bin";
/// The suffix-array file's name inside an index directory.
pub const SUFFIX_ARRAY_FILE: &str = "suffix_array.bin";
/// [`IndexHeader::format`] of every index.
pub const FORMAT: &str = "adasamp-token-index";
/// [`IndexHeader::version`] this code writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the payload of each binary file.
pub const PREFIX_BYTES: usize = 64;

const MAGIC: &[u8; 8] = b"ADSIDX01";
const KIND_TOKENS: &[u8; 8] = b"tokens\0\0";
const KIND_SUFFIX_ARRAY: &[u8; 8] = b"sufarray";

/// How wide a stored token id is: 2 bytes when the vocabulary and the document separator fit
/// (`vocab_size ≤ 65535`), else 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenWidth {
    /// u16 ids.
    U16,
    /// u32 ids.
    U32,
}

impl TokenWidth {
    /// The width for a vocabulary of `vocab_size` ids plus the separator id `vocab_size`.
    pub fn for_vocab(vocab_size: u32) -> Self {
        if vocab_size <= u32::from(u16::MAX) {
            Self::U16
        } else {
            Self::U32
        }
    }

    /// Bytes per id.
    pub fn bytes(self) -> usize {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }
}

/// One corpus file as indexed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusFileInfo {
    /// The path given at build time.
    pub path: PathBuf,
    /// SHA-256 of its bytes (lowercase hex).
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Documents with at least one token.
    pub documents: u64,
    /// Documents that tokenized to nothing (not indexed).
    pub empty_documents: u64,
    /// Tokens (separators not counted).
    pub tokens: u64,
}

/// `header.json`: what an index holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version ([`VERSION`]).
    pub version: u32,
    /// SHA-256 (hex) of the token payload; the binary files carry it too.
    pub build_id: String,
    /// Width of a stored token id.
    pub token_width: TokenWidth,
    /// Token ids are `0..vocab_size`.
    pub vocab_size: u32,
    /// The id that ends every document (`vocab_size`); no query token equals it, so no match
    /// crosses a document boundary.
    pub separator: u32,
    /// The tokenizer the corpus was tokenized with.
    pub tokenizer: TokenizerInfo,
    /// The JSONL field holding a document's text.
    pub text_field: String,
    /// The corpus files, in the order given.
    pub files: Vec<CorpusFileInfo>,
    /// Documents indexed (each followed by one separator).
    pub documents: u64,
    /// Corpus tokens, separators not counted.
    pub tokens: u64,
    /// `tokens + documents`: the length of the token and suffix-array files.
    pub positions: u64,
    /// How the suffix array was built.
    pub suffix_array: String,
}

impl IndexHeader {
    /// Reads and checks `DIR/header.json` (format, version, counts consistent).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(HEADER_FILE);
        let text = std::fs::read_to_string(&path).map_err(CurateError::io(&path))?;
        let h: Self = serde_json::from_str(&text).map_err(|e| IndexError::Header {
            path: path.clone(),
            message: format!("not an index header: {e}"),
        })?;
        let mismatch = |field: &str, expected: String, found: String| IndexError::Mismatch {
            path: path.clone(),
            field: field.into(),
            expected,
            found,
        };
        if h.format != FORMAT {
            return Err(mismatch("format", FORMAT.into(), h.format).into());
        }
        if h.version != VERSION {
            return Err(mismatch("version", VERSION.to_string(), h.version.to_string()).into());
        }
        if h.token_width != TokenWidth::for_vocab(h.vocab_size) || h.separator != h.vocab_size {
            return Err(IndexError::Header {
                path,
                message: format!(
                    "token_width {:?} and separator {} do not fit vocab_size {}",
                    h.token_width, h.separator, h.vocab_size
                ),
            }
            .into());
        }
        if h.tokens.checked_add(h.documents) != Some(h.positions) || h.documents == 0 {
            return Err(IndexError::Header {
                path,
                message: format!(
                    "positions {} is not tokens {} + documents {} (with at least one document)",
                    h.positions, h.tokens, h.documents
                ),
            }
            .into());
        }
        Ok(h)
    }

    /// The build id as 32 bytes.
    fn build_id_bytes(&self, path: &Path) -> Result<[u8; 32]> {
        let bad = || IndexError::Header {
            path: path.to_path_buf(),
            message: format!(
                "build_id `{}` is not 64 hex digits",
                self.build_id.escape_debug()
            ),
        };
        if self.build_id.len() != 64 || !self.build_id.is_ascii() {
            return Err(bad().into());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.build_id[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

/// Which binary file of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// `tokens.bin`.
    Tokens,
    /// `suffix_array.bin`.
    SuffixArray,
}

impl BinaryKind {
    fn tag(self) -> &'static [u8; 8] {
        match self {
            Self::Tokens => KIND_TOKENS,
            Self::SuffixArray => KIND_SUFFIX_ARRAY,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::SuffixArray => "suffix array",
        }
    }

    /// The file's name inside an index directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Tokens => TOKENS_FILE,
            Self::SuffixArray => SUFFIX_ARRAY_FILE,
        }
    }
}

/// Writes a binary file: prefix, then `payload` (already little-endian).
pub fn write_binary(
    path: &Path,
    kind: BinaryKind,
    width: usize,
    count: u64,
    build_id: &[u8; 32],
    payload: &[u8],
) -> Result<()> {
    let mut prefix = [0u8; PREFIX_BYTES];
    prefix[0..8].copy_from_slice(MAGIC);
    prefix[8..16].copy_from_slice(kind.tag());
    prefix[16..20].copy_from_slice(&(width as u32).to_le_bytes());
    prefix[24..32].copy_from_slice(&count.to_le_bytes());
    prefix[32..64].copy_from_slice(build_id);
    let file = std::fs::File::create(path).map_err(CurateError::io(path))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    w.write_all(&prefix)
        .and_then(|_| w.write_all(payload))
        .and_then(|_| w.flush())
        .map_err(CurateError::io(path))?;
    Ok(())
}

/// Checks a mapped binary file against the header: length, magic, kind, width, count, build id.
/// Returns the payload (everything after the prefix).
pub fn check_binary<'a>(
    path: &Path,
    bytes: &'a [u8],
    kind: BinaryKind,
    width: usize,
    header: &IndexHeader,
    header_path: &Path,
) -> Result<&'a [u8]> {
    let expected_len =
        (PREFIX_BYTES as u64).saturating_add(header.positions.saturating_mul(width as u64));
    let found_len = bytes.len() as u64;
    let what = format!(
        "{PREFIX_BYTES}-byte prefix + {} {} of {width} bytes",
        header.positions,
        kind.name()
    );
    if found_len < PREFIX_BYTES as u64 {
        return Err(size_error(path, what, expected_len, found_len));
    }
    let mismatch = |field: &str, expected: String, found: String| -> CurateError {
        IndexError::Mismatch {
            path: path.to_path_buf(),
            field: field.into(),
            expected,
            found,
        }
        .into()
    };
    let shown = |b: &[u8]| String::from_utf8_lossy(b).escape_debug().to_string();
    if &bytes[0..8] != MAGIC {
        return Err(mismatch("magic", shown(MAGIC), shown(&bytes[0..8])));
    }
    if &bytes[8..16] != kind.tag() {
        return Err(mismatch("kind", shown(kind.tag()), shown(&bytes[8..16])));
    }
    let le_u32 =
        |r: std::ops::Range<usize>| u32::from_le_bytes(bytes[r].try_into().unwrap_or([0xff; 4]));
    let file_width = le_u32(16..20);
    if file_width as usize != width {
        return Err(mismatch(
            "element width",
            width.to_string(),
            file_width.to_string(),
        ));
    }
    let count = u64::from_le_bytes(bytes[24..32].try_into().unwrap_or([0xff; 8]));
    if count != header.positions {
        return Err(mismatch(
            "element count",
            header.positions.to_string(),
            count.to_string(),
        ));
    }
    let id = header.build_id_bytes(header_path)?;
    if bytes[32..64] != id {
        return Err(mismatch(
            "build id",
            header.build_id.clone(),
            hex(&bytes[32..64]),
        ));
    }
    if found_len != expected_len {
        return Err(size_error(path, what, expected_len, found_len));
    }
    Ok(&bytes[PREFIX_BYTES..])
}

fn size_error(path: &Path, what: String, expected: u64, found: u64) -> CurateError {
    IndexError::Size {
        path: path.to_path_buf(),
        what,
        expected,
        found,
    }
    .into()
}

/// Lowercase hex of `bytes` (hashes and build ids as the header writes them).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The path of `kind`'s file in index directory `dir`.
pub fn binary_path(dir: &Path, kind: BinaryKind) -> PathBuf {
    dir.join(kind.file_name())
}
