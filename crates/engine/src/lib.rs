//! adasamp's decoding engine: base language models behind one trait, with the default model,
//! tokenizers from GGUF metadata or `tokenizer.json`, chat templates, KV caches and decoding loops.
//! All sampling goes through `adasamp-sampling`.

pub mod error;
pub mod tokenizer;
pub mod chat;

pub use error::{EngineError, Result};
