//! Diversity labels (placeholder module header, replaced below).
pub mod bleu;
pub mod entropy;
pub mod tokenizer_13a;
