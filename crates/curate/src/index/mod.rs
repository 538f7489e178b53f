//! A suffix-array index over a token corpus (infini-gram style) and the overlap label built on
//! it (SPEC 4, "Data matching").
//!
//! * [`corpus`]: which files hold which documents (JSONL with a text field, or plain text).
//! * [`tokenizer`]: the index's tokenizer — loaded from a GGUF model, a `tokenizer.json` or the
//!   default model — and its identity.
//! * [`build`]: token text with a separator after every document, u16 ids when the vocabulary
//!   fits else u32, and its suffix array (SA-IS by libsais); [`build_index`] writes it all.
//! * [`format`]: the index directory (a JSON header and two binary files) and its integrity
//!   checks.
//! * [`search`]: n-gram counts and longest matches by narrowing a suffix-array interval one
//!   token at a time; [`open`]: the same over the memory-mapped files ([`Index`]).
//! * [`coverage`]: the greedy longest-match walk (matched tokens, breaks).
//! * [`overlap`]: `label overlap`, the resumable stage that writes the overlap labels.
//! * [`synth`] and [`bench`]: a seeded Zipf-like synthetic corpus and the benchmark of build
//!   speed and query latency.

pub mod bench;
pub mod build;
pub mod corpus;
pub mod coverage;
mod error;
pub mod format;
pub mod open;
pub mod overlap;
pub mod search;
pub mod synth;
pub mod tokenizer;

pub use build::{build_index, BuildOptions, BuildReport, CorpusTokens};
pub use coverage::{greedy_coverage, Coverage, DEFAULT_MAX_N};
pub use error::IndexError;
pub use format::IndexHeader;
pub use open::Index;
pub use overlap::{label_overlap, OverlapOptions};
pub use tokenizer::{load_tokenizer, tokenizer_sha256, LoadedTokenizer, TokenizerInfo};
