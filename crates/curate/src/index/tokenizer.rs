//! The tokenizer of an index: where it is loaded from and what identifies it.
//!
//! Token ids are only comparable between sequences made by the same tokenizer, so an index
//! records its tokenizer's identity ([`tokenizer_sha256`]) and every query path that turns text
//! into tokens checks it.

use std::path::{Path, PathBuf};

use adasamp_engine::tokenizer::TextTokenizer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::index::IndexError;

/// What an index records about its tokenizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerInfo {
    /// [`tokenizer_sha256`] of the tokenizer.
    pub sha256: String,
    /// What it was built from ([`TextTokenizer::kind`], e.g. `gguf gpt2, pre smollm`).
    pub kind: String,
    /// The file it was loaded from: a `.gguf` model, a `tokenizer.json`, or a directory holding
    /// one; `None` for the default model.
    pub source: Option<PathBuf>,
}

/// A tokenizer with its identity and origin.
#[derive(Debug, Clone)]
pub struct LoadedTokenizer {
    /// The tokenizer.
    pub tokenizer: TextTokenizer,
    /// Its identity and origin.
    pub info: TokenizerInfo,
}

/// SHA-256 (lowercase hex) of the tokenizer's complete definition (its `tokenizer.json`
/// serialisation: normalizer, pre-tokenizer, model with vocabulary and merges, added tokens).
/// Two tokenizers with the same hash turn every text into the same ids, whatever file they were
/// loaded from (a GGUF model and its re-quantisation share it).
pub fn tokenizer_sha256(t: &TextTokenizer) -> Result<String> {
    let json = t.inner().to_string(false).map_err(|e| {
        adasamp_engine::EngineError::Tokenizer(format!("serialising the tokenizer: {e}"))
    })?;
    Ok(crate::index::format::hex(&Sha256::digest(json.as_bytes())))
}

/// Loads a tokenizer: from a `.gguf` model file (its `tokenizer.ggml.*` metadata), a
/// `tokenizer.json`, or a directory holding a `tokenizer.json`; `None` = the default model
/// (fetched on first use; `log` receives its progress messages).
pub fn load_tokenizer(path: Option<&Path>, log: &mut dyn FnMut(&str)) -> Result<LoadedTokenizer> {
    // The index records where its tokenizer came from: an absolute path works from any
    // directory later.
    let absolute = path.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    let path = absolute.as_deref();
    let (tokenizer, source) = match path {
        None => {
            let model = adasamp_engine::fetch::ensure_default_model(log)?;
            (TextTokenizer::from_gguf_file(&model)?, None)
        }
        Some(p) if p.is_dir() => (
            TextTokenizer::from_file(&p.join("tokenizer.json"))?,
            Some(p.to_path_buf()),
        ),
        Some(p)
            if p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf")) =>
        {
            (TextTokenizer::from_gguf_file(p)?, Some(p.to_path_buf()))
        }
        Some(p) => (TextTokenizer::from_file(p)?, Some(p.to_path_buf())),
    };
    let info = TokenizerInfo {
        sha256: tokenizer_sha256(&tokenizer)?,
        kind: tokenizer.kind().to_string(),
        source,
    };
    Ok(LoadedTokenizer { tokenizer, info })
}

/// Loads the tokenizer an index was built with: from `path` when given (the index's source may
/// have moved), else from where the index says it came from. An error when its identity is not
/// `expected.sha256`.
pub fn load_matching(
    expected: &TokenizerInfo,
    path: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> Result<LoadedTokenizer> {
    let loaded = load_tokenizer(path.or(expected.source.as_deref()), log)?;
    check_matches(expected, &loaded.info)?;
    Ok(loaded)
}

/// An error unless `found` is the tokenizer `expected` describes.
pub fn check_matches(expected: &TokenizerInfo, found: &TokenizerInfo) -> Result<()> {
    if expected.sha256 == found.sha256 {
        return Ok(());
    }
    Err(IndexError::TokenizerMismatch {
        expected: expected.sha256.clone(),
        found: found.sha256.clone(),
        source_name: found
            .source
            .as_ref()
            .map_or("the default model".into(), |p| p.display().to_string()),
    }
    .into())
}
