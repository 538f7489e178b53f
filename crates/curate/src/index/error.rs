//! What can be wrong with a token index: files that are damaged or belong to another build, a
//! corpus that cannot be indexed, a tokenizer that is not the index's.

use std::path::PathBuf;

/// A token index is damaged, belongs to another build, or cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A file of the index has another size than its header says: a truncated copy or an
    /// interrupted write.
    #[error("{path}: {found} bytes, expected {expected} ({what}); the index is truncated or damaged, rebuild it")]
    Size {
        /// The file.
        path: PathBuf,
        /// What the expected size is made of.
        what: String,
        /// The size the header implies.
        expected: u64,
        /// The size on disk.
        found: u64,
    },
    /// A file of the index does not belong to it: another build's file, another file format,
    /// or an unsupported version.
    #[error("{path}: {field} is {found}, expected {expected}; the file belongs to another index or is not an index file")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The field that differs.
        field: String,
        /// What the index expects.
        expected: String,
        /// What the file holds.
        found: String,
    },
    /// The index header is not valid JSON or lacks a field.
    #[error("{path}: {message}")]
    Header {
        /// The header file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The corpus cannot be indexed (empty, too large, a token outside the vocabulary).
    #[error("corpus: {message}")]
    Corpus {
        /// What is wrong.
        message: String,
    },
    /// The suffix-array construction (libsais) failed.
    #[error("suffix array construction failed on {positions} positions: {message}")]
    Construction {
        /// Length of the text it was given.
        positions: u64,
        /// libsais' error.
        message: String,
    },
    /// A tokenizer is not the one the index was built with, so its token ids mean other things.
    #[error("tokenizer {found} (from {source_name}) is not the index's tokenizer {expected}")]
    TokenizerMismatch {
        /// SHA-256 of the index's tokenizer.
        expected: String,
        /// SHA-256 of the tokenizer given.
        found: String,
        /// Where the tokenizer given came from.
        source_name: String,
    },
}
