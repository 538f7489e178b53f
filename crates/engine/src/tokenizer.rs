//! Text tokenizers: built from GGUF metadata the way llama.cpp builds its vocabulary, or loaded from
//! a HuggingFace `tokenizer.json`. (The incremental detokenizer for streaming, [`TokenStream`],
//! lives in [`crate::stream`] and is re-exported here.)
//!
//! Both sources end up as a [`tokenizers::Tokenizer`] wrapped in a [`TextTokenizer`] that also
//! knows the model's special tokens (BOS, EOS and the other end-of-generation tokens).
//!
//! # GGUF tokenizers
//!
//! `tokenizer.ggml.model` picks the algorithm:
//!
//! - `gpt2`: byte-level BPE. `tokenizer.ggml.tokens` is the vocabulary, `tokenizer.ggml.merges`
//!   the ranked merges, and `tokenizer.ggml.pre` the pre-tokenizer: the same list of regexes that
//!   llama.cpp applies one after another (`llm_tokenizer_bpe` in llama.cpp's `src/llama-vocab.cpp`),
//!   each splitting every piece left by the previous one with matches kept as their own pieces. See
//!   [`pre_tokenizer_spec`] and [`supported_pre_tokenizers`].
//! - `llama`: SentencePiece-style BPE over `▁`-escaped text, ranked by `tokenizer.ggml.scores`,
//!   with `<0xXX>` byte fallback and a `▁` prepended to each text fragment when
//!   `tokenizer.ggml.add_space_prefix` is true (the default), like llama.cpp's `llm_tokenizer_spm`.
//!
//! Tokens of type 3 (control) and 2 (unknown) become special added tokens, tokens of type 4
//! (user-defined) plain added tokens: text that contains them encodes to their single id, as
//! llama.cpp does with `parse_special = true`. `decode(ids, true)` drops control tokens and keeps
//! user-defined ones, as llama.cpp's `token_to_piece(.., special = false)` does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
};

use crate::error::{io_err, EngineError, Result};
use crate::gguf::{self, Content};
pub use crate::stream::TokenStream;

/// GGUF token types (`tokenizer.ggml.token_type`, llama.cpp's `llama_token_type`).
pub mod token_type {
    /// Type not set.
    pub const UNDEFINED: i32 = 0;
    /// An ordinary vocabulary entry.
    pub const NORMAL: i32 = 1;
    /// The unknown token.
    pub const UNKNOWN: i32 = 2;
    /// A control token (`<|im_start|>`, `<s>`, …): parsed in text, dropped when decoding without specials.
    pub const CONTROL: i32 = 3;
    /// A user-defined token: always parsed in text and always rendered when decoding.
    pub const USER_DEFINED: i32 = 4;
    /// An unused slot.
    pub const UNUSED: i32 = 5;
    /// A byte-fallback token (`<0x0A>`).
    pub const BYTE: i32 = 6;
}

/// Texts of the tokens that end a generation, as listed by llama.cpp (`llama_vocab::impl::load`,
/// "maintain a list of tokens that cause end-of-generation"). A token with one of these texts is
/// added to [`TextTokenizer::eos_ids`] when the vocabulary marks it as a control/special token.
pub const END_OF_GENERATION_TOKENS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
];

/// One llama.cpp pre-tokenizer: the `tokenizer.ggml.pre` names that select it and what they imply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreTokenizerSpec {
    /// llama.cpp's name for it, without the `LLAMA_VOCAB_PRE_TYPE_` prefix (e.g. `SMOLLM`).
    pub llama_cpp_type: &'static str,
    /// The `tokenizer.ggml.pre` values that select it.
    pub names: &'static [&'static str],
    /// The regexes, applied in order; each splits every current piece, keeping matches as pieces.
    pub regexes: &'static [&'static str],
    /// Whether a pre-tokenized word found whole in the vocabulary skips the merges (`ignore_merges`).
    pub ignore_merges: bool,
    /// llama.cpp's default for "add BOS" with this pre-tokenizer (`tokenizer.ggml.add_bos_token`
    /// overrides it).
    pub add_bos: bool,
}

/// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre = pre`, or `None` when this crate
/// does not support it (for example the custom-coded `kimi-k2`, `afmoe` and `gemma4` ones).
///
/// ```
/// let spec = adasamp_engine::tokenizer::pre_tokenizer_spec("smollm").unwrap();
/// assert_eq!(spec.regexes[0], "\\p{N}");
/// ```
pub fn pre_tokenizer_spec(pre: &str) -> Option<&'static PreTokenizerSpec> {
    PRE_TOKENIZERS.iter().find(|s| s.names.contains(&pre))
}

/// Every `tokenizer.ggml.pre` value [`TextTokenizer::from_gguf`] accepts (besides a missing key,
/// which means `default`, as in llama.cpp).
pub fn supported_pre_tokenizers() -> impl Iterator<Item = &'static str> {
    PRE_TOKENIZERS.iter().flat_map(|s| s.names.iter().copied())
}

// The regexes below are llama.cpp's, copied verbatim (non-ASCII characters written as `\u{..}`)
// from `llm_tokenizer_bpe::llm_tokenizer_bpe` in `src/llama-vocab.cpp` (llama.cpp as vendored by
// llama-cpp-python 0.3.36); the name lists come from `llama_vocab::impl::load` in the same file,
// plus `gpt2` as an alias of `gpt-2`.

/// `LLAMA_VOCAB_PRE_TYPE_DEFAULT`.
const RE_DEFAULT: &[&str] = &[
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
];
/// `LLAMA_VOCAB_PRE_TYPE_LLAMA3`.
const RE_LLAMA3: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_JAIS2`.
const RE_JAIS2: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}",
];
/// `LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_LLM`.
const RE_DEEPSEEK_LLM: &[&str] = &[
    "[\r\n]",
    "\\s?[A-Za-z\u{b5}\u{c0}-\u{d6}\u{d8}-\u{f6}\u{f8}-\u{1ba}\u{1bc}-\u{1bf}\u{1c4}-\u{293}\u{295}-\u{2af}\u{370}-\u{373}\u{376}\u{377}\u{37b}-\u{37d}\u{37f}\u{386}\u{388}-\u{38a}\u{38c}\u{38e}-\u{3a1}\u{3a3}-\u{3f5}\u{3f7}-\u{481}\u{48a}-\u{52f}\u{531}-\u{556}\u{10a0}-\u{10c5}\u{13a0}-\u{13f5}\u{13f8}-\u{13fd}\u{1c90}-\u{1cba}\u{1cbd}-\u{1cbf}\u{1d00}-\u{1d2b}\u{1d6b}-\u{1d77}\u{1d79}-\u{1d9a}\u{1e00}-\u{1f15}\u{1f18}-\u{1f1d}\u{1f20}-\u{1f45}\u{1f48}-\u{1f4d}\u{1f50}-\u{1f57}\u{1f59}\u{1f5b}\u{1f5d}\u{1f5f}-\u{1f7d}\u{1f80}-\u{1fb4}\u{1fb6}-\u{1fbc}\u{1fbe}\u{1fc2}-\u{1fc4}\u{1fc6}-\u{1fcc}\u{1fd0}-\u{1fd3}\u{1fd6}-\u{1fdb}\u{1fe0}-\u{1fec}\u{1ff2}-\u{1ff4}\u{1ff6}-\u{1ffc}\u{2102}\u{2107}\u{210a}-\u{2113}\u{2115}\u{2119}-\u{211d}\u{2124}\u{2126}\u{2128}\u{212a}-\u{212d}\u{212f}-\u{2134}\u{2139}\u{213c}-\u{213f}\u{2145}-\u{2149}\u{214e}\u{2183}\u{2184}\u{2c00}-\u{2c7b}\u{2c7e}-\u{2ce4}\u{2ceb}-\u{2cee}\u{2cf2}\u{2cf3}\u{a640}-\u{a66d}\u{a680}-\u{a69b}\u{a722}-\u{a76f}\u{a771}-\u{a787}\u{a78b}-\u{a78e}\u{ab70}-\u{abbf}\u{fb00}-\u{fb06}\u{fb13}-\u{fb17}\u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+",
    "\\s?[!-/:-~\u{ff01}-\u{ff0f}\u{ff1a}-\u{ff5e}\u{2018}-\u{201f}\u{3000}-\u{3002}]+",
    "\\s+$",
    "[\u{4e00}-\u{9fa5}\u{800}-\u{4e00}\u{ac00}-\u{d7ff}]+",
    "\\p{N}+",
];
/// `LLAMA_VOCAB_PRE_TYPE_DEEPSEEK3_LLM`.
const RE_DEEPSEEK3_LLM: &[&str] = &[
    "\\p{N}{1,3}",
    "[\u{4e00}-\u{9fa5}\u{3040}-\u{309f}\u{30a0}-\u{30ff}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_SPARK2_5`.
const RE_SPARK2_5: &[&str] = &[
    "\\p{N}{1,3}",
    "[\u{4e00}-\u{9fa5}\u{3040}-\u{309f}\u{30a0}-\u{30ff}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\r\n]|\\s+(?!\\S)|\\s+",
    "\\p{N}",
];
/// `LLAMA_VOCAB_PRE_TYPE_YOUTU`.
const RE_YOUTU: &[&str] = &[
    "[\u{ac00}-\u{d7a3}\u{3131}-\u{318e}]+|[\u{ff01}\u{2026}\u{201c}\u{201d}\u{2018}\u{2019}\u{2014}\u{ff1a}\u{ff1b}\u{ff0c}\u{3001}-\u{303f}\u{fe30}-\u{fe4f}]+|[\u{3105}-\u{312f}]+|[\u{4e00}-\u{9fa5}\u{3040}-\u{309f}\u{30a0}-\u{30ff}]+",
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_DEEPSEEK_CODER`.
const RE_DEEPSEEK_CODER: &[&str] = &[
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\u{4e00}-\u{9fa5}\u{800}-\u{4e00}\u{ac00}-\u{d7ff}]+",
    "\\p{N}",
];
/// `LLAMA_VOCAB_PRE_TYPE_FALCON`.
const RE_FALCON: &[&str] = &[
    "[\\p{P}\\$\\+<=>\\^~\\|`]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "[0-9][0-9][0-9]",
];
/// `LLAMA_VOCAB_PRE_TYPE_STARCODER`.
const RE_STARCODER: &[&str] = &[
    "\\p{N}",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
];
/// `LLAMA_VOCAB_PRE_TYPE_GPT2`.
const RE_GPT2: &[&str] =
    &["'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"];
/// `LLAMA_VOCAB_PRE_TYPE_QWEN2`.
const RE_QWEN2: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_QWEN35`.
const RE_QWEN35: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_PORO`.
const RE_PORO: &[&str] = &[" ?[^(\\s|.,!?\u{2026}\u{3002}\u{ff0c}\u{3001}\u{964}\u{6d4}\u{60c})]+"];
/// `LLAMA_VOCAB_PRE_TYPE_VIKING`.
const RE_VIKING: &[&str] = &[
    " ?[^(\\s|.,!?\u{2026}\u{3002}\u{ff0c}\u{3001}\u{964}\u{6d4}\u{60c})]+",
    "\\p{N}",
];
/// `LLAMA_VOCAB_PRE_TYPE_TEKKEN`.
const RE_TEKKEN: &[&str] = &[
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_GPT4O`.
const RE_GPT4O: &[&str] = &[
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_GRANITE_EMB_MULTI`.
const RE_GRANITE_EMB_MULTI: &[&str] = &[
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))*((?=[\\p{L}\\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}\\p{M}])([^a-z]))+((?=[\\p{L}\\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_BAILINGMOE`.
const RE_BAILINGMOE: &[&str] = &[
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_SEED_CODER`.
const RE_SEED_CODER: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_UFAKZEKA`.
const RE_UFAKZEKA: &[&str] = &[
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_LAGUNA`.
const RE_LAGUNA: &[&str] = &[
    "[^\\n]+|[\\n]+",
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_EXAONE_MOE`.
const RE_EXAONE_MOE: &[&str] = &[
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
];
/// `LLAMA_VOCAB_PRE_TYPE_MINICPM5`.
const RE_MINICPM5: &[&str] = &[
    "\\p{N}{1,3}",
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
];

/// Every `tokenizer.ggml.pre` value this crate understands, in llama.cpp's order (`llama_vocab::impl::load` maps names to
/// `LLAMA_VOCAB_PRE_TYPE_*`; `llm_tokenizer_bpe::llm_tokenizer_bpe` maps those to regexes).
#[rustfmt::skip]
const PRE_TOKENIZERS: &[PreTokenizerSpec] = &[
    PreTokenizerSpec { llama_cpp_type: "DEFAULT", names: &["default"], regexes: RE_DEFAULT, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "LLAMA3", names: &["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"], regexes: RE_LLAMA3, ignore_merges: true, add_bos: true },
    PreTokenizerSpec { llama_cpp_type: "JAIS2", names: &["jais-2"], regexes: RE_JAIS2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "DBRX", names: &["dbrx"], regexes: RE_LLAMA3, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "SMAUG", names: &["smaug-bpe"], regexes: RE_LLAMA3, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "DEEPSEEK_LLM", names: &["deepseek-llm"], regexes: RE_DEEPSEEK_LLM, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "DEEPSEEK3_LLM", names: &["deepseek-v3"], regexes: RE_DEEPSEEK3_LLM, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "HUNYUAN_DENSE", names: &["hunyuan-dense"], regexes: RE_DEEPSEEK3_LLM, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "JOYAI_LLM", names: &["joyai-llm"], regexes: RE_DEEPSEEK3_LLM, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "HY_V4", names: &["hy_v4"], regexes: RE_DEEPSEEK3_LLM, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "SPARK2_5", names: &["spark2_5"], regexes: RE_SPARK2_5, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "YOUTU", names: &["youtu"], regexes: RE_YOUTU, ignore_merges: true, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "DEEPSEEK_CODER", names: &["deepseek-coder"], regexes: RE_DEEPSEEK_CODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "FALCON", names: &["falcon"], regexes: RE_FALCON, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "STARCODER", names: &["starcoder"], regexes: RE_STARCODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "REFACT", names: &["refact"], regexes: RE_STARCODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "COMMAND_R", names: &["command-r"], regexes: RE_STARCODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "SMOLLM", names: &["smollm"], regexes: RE_STARCODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "CODESHELL", names: &["codeshell"], regexes: RE_STARCODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "EXAONE", names: &["exaone"], regexes: RE_STARCODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "MINERVA", names: &["minerva-7b"], regexes: RE_STARCODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "MELLUM2", names: &["mellum2"], regexes: RE_STARCODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "GPT2", names: &["gpt-2", "gpt2", "phi-2", "gigachat", "a.x-4.0", "mellum", "exaone4"], regexes: RE_GPT2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "MPT", names: &["mpt"], regexes: RE_GPT2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "OLMO", names: &["olmo"], regexes: RE_GPT2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "JAIS", names: &["jais"], regexes: RE_GPT2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "TRILLION", names: &["trillion"], regexes: RE_GPT2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "GRANITE_DOCLING", names: &["granite-docling"], regexes: RE_GPT2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "QWEN2", names: &["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"], regexes: RE_QWEN2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "STABLELM2", names: &["stablelm2"], regexes: RE_QWEN2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "HUNYUAN", names: &["hunyuan"], regexes: RE_QWEN2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "SOLAR_OPEN", names: &["solar-open"], regexes: RE_QWEN2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "QWEN35", names: &["qwen35"], regexes: RE_QWEN35, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "PORO", names: &["poro-chat"], regexes: RE_PORO, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "BLOOM", names: &["bloom"], regexes: RE_PORO, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "GPT3_FINNISH", names: &["gpt3-finnish"], regexes: RE_PORO, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "CHATGLM4", names: &["chatglm-bpe"], regexes: RE_LLAMA3, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "CHATGLM4", names: &["glm4", "glm5"], regexes: RE_LLAMA3, ignore_merges: true, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "VIKING", names: &["viking"], regexes: RE_VIKING, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "TEKKEN", names: &["tekken"], regexes: RE_TEKKEN, ignore_merges: true, add_bos: true },
    PreTokenizerSpec { llama_cpp_type: "GPT4O", names: &["gpt-4o", "llama4", "kanana2", "talkie"], regexes: RE_GPT4O, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "MINIMAX_M2", names: &["minimax-m2"], regexes: RE_GPT4O, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "GRANITE_EMB_MULTI", names: &["granite-embed-multi-97m"], regexes: RE_GRANITE_EMB_MULTI, ignore_merges: true, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "BAILINGMOE", names: &["bailingmoe", "bailingmoe2", "llada-moe"], regexes: RE_BAILINGMOE, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "SEED_CODER", names: &["seed-coder"], regexes: RE_SEED_CODER, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "UFAKZEKA", names: &["ufakzeka"], regexes: RE_UFAKZEKA, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "GROK_2", names: &["grok-2"], regexes: RE_QWEN2, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "LAGUNA", names: &["laguna"], regexes: RE_LAGUNA, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "EXAONE_MOE", names: &["exaone-moe"], regexes: RE_EXAONE_MOE, ignore_merges: false, add_bos: false },
    PreTokenizerSpec { llama_cpp_type: "MINICPM5", names: &["minicpm5"], regexes: RE_MINICPM5, ignore_merges: true, add_bos: false },
];

/// A tokenizer plus the model's special tokens.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    eos_ids: Vec<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    special: HashSet<u32>,
    kind: String,
}

impl TextTokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    ///
    /// Errors name the metadata key at fault, or the unsupported `tokenizer.ggml.model` /
    /// `tokenizer.ggml.pre` value and what is supported.
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let model = gguf::get_str(content, KEY_MODEL)?.ok_or_else(|| gguf::missing(KEY_MODEL))?;
        let tokens = gguf_tokens(content)?;
        let n = tokens.len();
        let types = match gguf::get_int_array(content, KEY_TOKEN_TYPE)? {
            Some(t) if t.len() < n => {
                return Err(EngineError::Metadata {
                    key: KEY_TOKEN_TYPE.into(),
                    reason: format!("{} entries for {n} tokens", t.len()),
                })
            }
            Some(t) => t
                .into_iter()
                .map(|v| i32::try_from(v).unwrap_or(token_type::UNDEFINED))
                .collect(),
            None => vec![token_type::NORMAL; n],
        };
        let (mut inner, kind, defaults) = match model {
            "gpt2" => build_gpt2(content, &tokens)?,
            "llama" => build_spm(content, &tokens, &types)?,
            other => {
                return Err(EngineError::Tokenizer(format!(
                    "unsupported tokenizer model `{other}` ({KEY_MODEL}); supported: gpt2 (byte-level BPE), llama (SentencePiece BPE)"
                )))
            }
        };
        // Control and unknown tokens are special (skipped by `decode(.., true)`), user-defined
        // ones are plain added tokens; all of them are matched in text before pre-tokenization.
        let mut specials = Vec::new();
        let mut user = Vec::new();
        let mut special = HashSet::new();
        for (i, (t, &ty)) in tokens.iter().zip(&types).enumerate() {
            match ty {
                token_type::CONTROL | token_type::UNKNOWN => {
                    special.insert(i as u32);
                    specials.push(AddedToken::from(t.clone(), true).normalized(false));
                }
                token_type::USER_DEFINED => {
                    user.push(AddedToken::from(t.clone(), false).normalized(false))
                }
                _ => {}
            }
        }
        inner
            .add_special_tokens(specials)
            .map_err(tok_err("adding control tokens"))?;
        inner
            .add_tokens(user)
            .map_err(tok_err("adding user-defined tokens"))?;

        let id = |key: &str, default: Option<u32>| -> Result<Option<u32>> {
            Ok(match gguf::get_int(content, key)? {
                // llama.cpp ignores an out-of-range id and keeps the default.
                Some(v) if v >= 0 && (v as u64) < n as u64 => Some(v as u32),
                Some(_) => default,
                None => default,
            })
        };
        let bos = id(KEY_BOS, defaults.bos)?;
        let eos = id(KEY_EOS, defaults.eos)?;
        let unk = id(KEY_UNK, defaults.unk)?;
        let pad = id(KEY_PAD, None)?;
        let eot = id(KEY_EOT, None)?;
        let eom = id(KEY_EOM, None)?;
        let add_bos = gguf::get_bool(content, KEY_ADD_BOS)?.unwrap_or(defaults.add_bos);

        let mut eos_ids: Vec<u32> = Vec::new();
        for i in [eos, eot, eom].into_iter().flatten() {
            push_unique(&mut eos_ids, i);
        }
        for name in END_OF_GENERATION_TOKENS {
            if let Some(i) = inner.token_to_id(name) {
                if special.contains(&i) {
                    push_unique(&mut eos_ids, i);
                }
            }
        }
        drop_harmony_end(&mut eos_ids, &inner);
        Ok(Self {
            inner,
            bos,
            eos,
            eos_ids,
            unk,
            pad,
            add_bos,
            special,
            kind,
        })
    }

    /// Reads the GGUF header of `path` and builds its tokenizer (see [`TextTokenizer::from_gguf`]).
    pub fn from_gguf_file(path: &Path) -> Result<Self> {
        let (content, _) = gguf::read_content(path)?;
        Self::from_gguf(&content)
    }

    /// Loads a HuggingFace `tokenizer.json`.
    ///
    /// BOS/EOS come from `tokenizer_config.json` next to it when present (`bos_token`,
    /// `eos_token`, `add_bos_token`), and `generation_config.json`'s `eos_token_id` (a number or a
    /// list) adds end tokens. Without them, EOS is the first special token named in
    /// [`END_OF_GENERATION_TOKENS`].
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let inner = Tokenizer::from_bytes(&bytes)
            .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let config = read_json_opt(&dir.join("tokenizer_config.json"))?;
        let generation = read_json_opt(&dir.join("generation_config.json"))?;

        let special: HashSet<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&i, _)| i)
            .collect();
        let lookup = |field: &str| -> Option<u32> {
            let v = config.as_ref()?.get(field)?;
            let text = v
                .as_str()
                .or_else(|| v.get("content").and_then(|c| c.as_str()))?;
            inner.token_to_id(text)
        };
        let bos = lookup("bos_token");
        let unk = lookup("unk_token");
        let pad = lookup("pad_token");
        let mut eos = lookup("eos_token");
        let add_bos = config
            .as_ref()
            .and_then(|c| c.get("add_bos_token"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false);

        let mut eos_ids: Vec<u32> = eos.into_iter().collect();
        if let Some(g) = generation.as_ref().and_then(|g| g.get("eos_token_id")) {
            let ids: Vec<u64> = match g {
                serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_u64()).collect(),
                v => v.as_u64().into_iter().collect(),
            };
            for i in ids {
                if let Ok(i) = u32::try_from(i) {
                    push_unique(&mut eos_ids, i);
                }
            }
        }
        for name in END_OF_GENERATION_TOKENS {
            if let Some(i) = inner.token_to_id(name) {
                if special.contains(&i) {
                    push_unique(&mut eos_ids, i);
                }
            }
        }
        drop_harmony_end(&mut eos_ids, &inner);
        if eos.is_none() {
            eos = eos_ids.first().copied();
        }
        Ok(Self {
            inner,
            bos,
            eos,
            eos_ids,
            unk,
            pad,
            add_bos,
            special,
            kind: "tokenizer.json".into(),
        })
    }

    /// Wraps an existing [`tokenizers::Tokenizer`]; `eos` (when given) is the first of
    /// [`TextTokenizer::eos_ids`], followed by the special tokens named in
    /// [`END_OF_GENERATION_TOKENS`].
    pub fn from_tokenizer(inner: Tokenizer, bos: Option<u32>, eos: Option<u32>) -> Self {
        let special: HashSet<u32> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&i, _)| i)
            .collect();
        let mut eos_ids: Vec<u32> = eos.into_iter().collect();
        for name in END_OF_GENERATION_TOKENS {
            if let Some(i) = inner.token_to_id(name) {
                if special.contains(&i) {
                    push_unique(&mut eos_ids, i);
                }
            }
        }
        Self {
            inner,
            bos,
            eos,
            eos_ids,
            unk: None,
            pad: None,
            add_bos: false,
            special,
            kind: "custom".into(),
        }
    }

    /// Encodes `text`; special tokens written in it (`<|im_start|>`) become their single ids.
    /// With `add_bos`, the BOS id comes first (an error when the model has none).
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>> {
        let enc = self.inner.encode_fast(text, false).map_err(|e| {
            EngineError::Tokenizer(format!("encoding {} bytes of text: {e}", text.len()))
        })?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if add_bos {
            let bos = self.bos.ok_or_else(|| {
                EngineError::Tokenizer(
                    "a BOS token was requested but this tokenizer has none".into(),
                )
            })?;
            ids.push(bos);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Decodes `ids` to text (invalid UTF-8 becomes U+FFFD). With `skip_special`, control/special
    /// tokens are left out. An id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let size = self.vocab_size();
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= size) {
            return Err(EngineError::Tokenizer(format!(
                "token id {bad} is outside the vocabulary (size {size})"
            )));
        }
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| EngineError::Tokenizer(format!("decoding {} tokens: {e}", ids.len())))
    }

    /// Number of token ids (the vocabulary plus added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The BOS token id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The model's EOS token id (`tokenizer.ggml.eos_token_id` / `eos_token`), if any.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Every token that ends a generation: the EOS id first, then (GGUF) the EOT/EOM ids and the
    /// control tokens named in [`END_OF_GENERATION_TOKENS`] (`<|im_end|>`, `<|eot_id|>`,
    /// `<|endoftext|>`, …) that the vocabulary has.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// The unknown-token id, if any.
    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    /// The padding-token id, if any.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// Whether the model asks for a BOS token in front of a prompt (`tokenizer.ggml.add_bos_token`,
    /// `add_bos_token`, or llama.cpp's default for the tokenizer type).
    pub fn add_bos_token(&self) -> bool {
        self.add_bos
    }

    /// The id of the token whose text is exactly `s` (vocabulary or added token).
    pub fn token_to_id(&self, s: &str) -> Option<u32> {
        self.inner.token_to_id(s)
    }

    /// The text of token `id` as stored in the vocabulary (byte-level BPE tokens use `Ġ` for a
    /// space and so on; use [`TextTokenizer::decode`] for text).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Whether `id` is a control/special token (skipped by `decode(.., true)`).
    pub fn is_special(&self, id: u32) -> bool {
        self.special.contains(&id)
    }

    /// What this tokenizer was built from, e.g. `gguf gpt2, pre smollm` or `tokenizer.json`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The wrapped [`tokenizers::Tokenizer`].
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF metadata

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_MERGES: &str = "tokenizer.ggml.merges";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
const KEY_EOM: &str = "tokenizer.ggml.eom_token_id";
const KEY_UNK: &str = "tokenizer.ggml.unknown_token_id";
const KEY_PAD: &str = "tokenizer.ggml.padding_token_id";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// Special-token defaults of one tokenizer type (llama.cpp's, before the metadata overrides them).
struct Defaults {
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    add_bos: bool,
}

fn tok_err(what: &'static str) -> impl Fn(tokenizers::Error) -> EngineError {
    move |e| EngineError::Tokenizer(format!("{what}: {e}"))
}

/// The vocabulary; empty entries get llama.cpp's placeholder text `[EMPTY_<i>]`.
fn gguf_tokens(c: &Content) -> Result<Vec<String>> {
    let tokens = gguf::get_str_array(c, KEY_TOKENS)?.ok_or_else(|| gguf::missing(KEY_TOKENS))?;
    if tokens.is_empty() {
        return Err(EngineError::Metadata {
            key: KEY_TOKENS.into(),
            reason: "empty vocabulary".into(),
        });
    }
    if u32::try_from(tokens.len()).is_err() {
        return Err(EngineError::Metadata {
            key: KEY_TOKENS.into(),
            reason: format!("{} tokens do not fit 32-bit ids", tokens.len()),
        });
    }
    Ok(tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.is_empty() {
                format!("[EMPTY_{i}]")
            } else {
                (*t).to_string()
            }
        })
        .collect())
}

fn vocab_of(tokens: &[String]) -> Vocab {
    // Like llama.cpp's `token_to_id[word] = i`, a repeated text maps to its last id.
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

/// Byte-level BPE (`tokenizer.ggml.model = gpt2`).
fn build_gpt2(c: &Content, tokens: &[String]) -> Result<(Tokenizer, String, Defaults)> {
    let pre = gguf::get_str(c, KEY_PRE)?.unwrap_or("default");
    let spec = pre_tokenizer_spec(pre).ok_or_else(|| {
        EngineError::Tokenizer(format!(
            "unsupported pre-tokenizer `{pre}` ({KEY_PRE}); supported: {}",
            supported_pre_tokenizers().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let raw = gguf::get_str_array(c, KEY_MERGES)?.ok_or_else(|| gguf::missing(KEY_MERGES))?;
    let vocab = vocab_of(tokens);
    let mut merges = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        // llama.cpp: `word.find(' ', 1)`; a space never sits inside a multi-byte character.
        let pos = m
            .bytes()
            .skip(1)
            .position(|b| b == b' ')
            .map(|p| p + 1)
            .ok_or_else(|| EngineError::Metadata {
                key: KEY_MERGES.into(),
                reason: format!("entry {i} `{m}` is not two tokens separated by a space"),
            })?;
        let (a, b) = (&m[..pos], &m[pos + 1..]);
        // A merge whose parts or result are missing from the vocabulary can never produce a
        // token; the BPE model rejects such merges, so leave them out.
        if vocab.contains_key(a) && vocab.contains_key(b) && vocab.contains_key(&format!("{a}{b}"))
        {
            merges.push((a.to_string(), b.to_string()));
        }
    }
    if merges.len() < raw.len() {
        tracing::warn!(
            "{KEY_MERGES}: ignored {} merges whose tokens are not in the vocabulary",
            raw.len() - merges.len()
        );
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(spec.ignore_merges)
        .build()
        .map_err(tok_err("building the BPE model"))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(regex_pre_tokenizer(spec.regexes)?));
    tok.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    let defaults = Defaults {
        bos: None,
        eos: None,
        unk: None,
        add_bos: spec.add_bos,
    };
    Ok((tok, format!("gguf gpt2, pre {pre}"), defaults))
}

/// llama.cpp's regex pre-tokenization: each regex splits every piece (matches kept as pieces),
/// then the GPT-2 byte-to-unicode mapping.
fn regex_pre_tokenizer(regexes: &[&str]) -> Result<PreTokenizerWrapper> {
    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(regexes.len() + 1);
    for r in regexes {
        let split = Split::new(
            SplitPattern::Regex((*r).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| EngineError::Tokenizer(format!("compiling pre-tokenizer regex `{r}`: {e}")))?;
        steps.push(split.into());
    }
    steps.push(tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, false, false).into());
    Ok(PreTokenizerSequence::new(steps).into())
}

/// SentencePiece-style BPE (`tokenizer.ggml.model = llama`): merges ranked by the score of the
/// merged piece (llama.cpp's `llm_tokenizer_spm` merges the highest-scoring pair first).
fn build_spm(
    c: &Content,
    tokens: &[String],
    types: &[i32],
) -> Result<(Tokenizer, String, Defaults)> {
    let n = tokens.len();
    let scores = match gguf::get_f32_array(c, KEY_SCORES)? {
        Some(s) if s.len() < n => {
            return Err(EngineError::Metadata {
                key: KEY_SCORES.into(),
                reason: format!("{} entries for {n} tokens", s.len()),
            })
        }
        Some(s) => s,
        None => vec![0.0; n],
    };
    let vocab = vocab_of(tokens);
    let mergeable = |ty: i32| ty == token_type::NORMAL || ty == token_type::USER_DEFINED;
    let mut ranked: Vec<(f32, u32, u32, u32, usize)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !mergeable(types[i]) {
            continue;
        }
        for (k, _) in t.char_indices().skip(1) {
            let (a, b) = (&t[..k], &t[k..]);
            if let (Some(&ia), Some(&ib)) = (vocab.get(a), vocab.get(b)) {
                if mergeable(types[ia as usize]) && mergeable(types[ib as usize]) {
                    ranked.push((scores[i], i as u32, ia, ib, k));
                }
            }
        }
    }
    ranked.sort_by(|x, y| {
        y.0.total_cmp(&x.0)
            .then(x.1.cmp(&y.1))
            .then(x.2.cmp(&y.2))
            .then(x.3.cmp(&y.3))
    });
    let merges: Vec<(String, String)> = ranked
        .iter()
        .map(|&(_, i, _, _, k)| {
            let t = &tokens[i as usize];
            (t[..k].to_string(), t[k..].to_string())
        })
        .collect();
    let unk_id = match gguf::get_int(c, KEY_UNK)? {
        Some(v) if v >= 0 && (v as u64) < n as u64 => Some(v as u32),
        _ => Some(0),
    };
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .fuse_unk(true);
    if let Some(u) = unk_id {
        builder = builder.unk_token(tokens[u as usize].clone());
    }
    let bpe = builder
        .build()
        .map_err(tok_err("building the SentencePiece BPE model"))?;
    let add_space_prefix = gguf::get_bool(c, KEY_ADD_SPACE_PREFIX)?.unwrap_or(true);
    let mut tok = Tokenizer::new(bpe);
    let escape: NormalizerWrapper = Replace::new(" ", "\u{2581}")
        .map_err(tok_err("building the normalizer"))?
        .into();
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new("\u{2581}".into()).into(), escape]).into()
    } else {
        escape
    };
    tok.with_normalizer(Some(normalizer))
        .map_err(tok_err("setting the normalizer"))?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new("\u{2581}", " ")
            .map_err(tok_err("building the decoder"))?
            .into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    let defaults = Defaults {
        bos: Some(1),
        eos: Some(2),
        unk: unk_id,
        add_bos: true,
    };
    Ok((tok, "gguf llama (SentencePiece BPE)".into(), defaults))
}

fn push_unique(v: &mut Vec<u32>, id: u32) {
    if !v.contains(&id) {
        v.push(id);
    }
}

/// llama.cpp's workaround for the gpt-oss (`<|return|>` + `<|call|>`) and solar-open
/// (`<|calls|>` + `<|flush|>`) vocabularies, where `<|end|>` ends a message, not the generation.
fn drop_harmony_end(eos_ids: &mut Vec<u32>, tok: &Tokenizer) {
    let has = |s: &str| tok.token_to_id(s).is_some_and(|i| eos_ids.contains(&i));
    if (has("<|return|>") && has("<|call|>")) || (has("<|calls|>") && has("<|flush|>")) {
        if let Some(end) = tok.token_to_id("<|end|>") {
            eos_ids.retain(|&i| i != end);
        }
    }
}

fn read_json_opt(path: &Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| EngineError::Tokenizer(format!("{}: invalid JSON: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(PathBuf::from(path))(e)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gguf::Value;
    use candle_core::quantized::gguf_file::VersionedMagic;
    use std::collections::HashMap;

    fn strings(v: &[&str]) -> Value {
        Value::Array(v.iter().map(|s| Value::String((*s).into())).collect())
    }

    /// A tiny byte-level vocabulary: `Ġ` is a space, `Ã` + `©` the two bytes of `é`.
    pub(crate) fn tiny_gguf(pre: &str) -> Content {
        let tokens = [
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<tool>",
            "h",
            "e",
            "l",
            "o",
            "w",
            "r",
            "d",
            "Ġ",
            "1",
            "2",
            "he",
            "ll",
            "hell",
            "hello",
            "Ġw",
            "Ġwo",
            "Ġwor",
            "Ġworl",
            "Ġworld",
            "12",
            "Ã",
            "©",
        ];
        let mut types = vec![Value::I32(token_type::NORMAL); tokens.len()];
        for t in types.iter_mut().take(3) {
            *t = Value::I32(token_type::CONTROL);
        }
        types[3] = Value::I32(token_type::USER_DEFINED);
        let merges = [
            "h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "Ġwo r", "Ġwor l", "Ġworl d", "1 2",
        ];
        let mut metadata = HashMap::new();
        metadata.insert(KEY_MODEL.to_string(), Value::String("gpt2".into()));
        metadata.insert(KEY_PRE.to_string(), Value::String(pre.into()));
        metadata.insert(KEY_TOKENS.to_string(), strings(&tokens));
        metadata.insert(KEY_MERGES.to_string(), strings(&merges));
        metadata.insert(KEY_TOKEN_TYPE.to_string(), Value::Array(types));
        metadata.insert(KEY_BOS.to_string(), Value::U32(1));
        metadata.insert(KEY_EOS.to_string(), Value::U32(2));
        metadata.insert(KEY_ADD_BOS.to_string(), Value::Bool(false));
        Content {
            magic: VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    #[test]
    fn every_pre_tokenizer_regex_compiles() {
        for spec in PRE_TOKENIZERS {
            regex_pre_tokenizer(spec.regexes)
                .unwrap_or_else(|e| panic!("{}: {e}", spec.llama_cpp_type));
        }
        let names: Vec<_> = supported_pre_tokenizers().collect();
        for required in [
            "smollm",
            "gpt2",
            "gpt-2",
            "llama-bpe",
            "llama3",
            "qwen2",
            "deepseek-llm",
        ] {
            assert!(names.contains(&required), "{required}");
        }
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "a name is listed twice");
    }

    #[test]
    fn bpe_merges_and_pre_tokenizer() {
        let tok = TextTokenizer::from_gguf(&tiny_gguf("gpt2")).unwrap();
        assert_eq!(tok.kind(), "gguf gpt2, pre gpt2");
        let id = |s: &str| tok.token_to_id(s).unwrap();
        assert_eq!(
            tok.encode("hello world", false).unwrap(),
            vec![id("hello"), id("Ġworld")]
        );
        // gpt2 keeps digit runs together, smollm splits every digit.
        assert_eq!(tok.encode("12", false).unwrap(), vec![id("12")]);
        let smol = TextTokenizer::from_gguf(&tiny_gguf("smollm")).unwrap();
        assert_eq!(smol.encode("12", false).unwrap(), vec![id("1"), id("2")]);
        assert_eq!(smol.decode(&[id("1"), id("2")], false).unwrap(), "12");
        assert_eq!(
            tok.decode(&tok.encode("hello world", false).unwrap(), true)
                .unwrap(),
            "hello world"
        );
    }

    #[test]
    fn special_tokens() {
        let tok = TextTokenizer::from_gguf(&tiny_gguf("smollm")).unwrap();
        let ids = tok
            .encode("<|im_start|>hello<|im_end|><tool>", true)
            .unwrap();
        let id = |s: &str| tok.token_to_id(s).unwrap();
        assert_eq!(ids, vec![1, 1, id("hello"), 2, 3]);
        assert_eq!(
            tok.decode(&ids, false).unwrap(),
            "<|im_start|><|im_start|>hello<|im_end|><tool>"
        );
        // Control tokens are dropped, user-defined ones kept.
        assert_eq!(tok.decode(&ids, true).unwrap(), "hello<tool>");
        assert_eq!(tok.bos_id(), Some(1));
        assert_eq!(tok.eos_ids(), &[2, 0]);
        assert!(tok.is_special(0) && !tok.is_special(3));
        assert!(!tok.add_bos_token());
        assert_eq!(tok.vocab_size(), 26);
        assert_eq!(tok.id_to_token(17).as_deref(), Some("hello"));
        let err = tok.decode(&[26], false).unwrap_err().to_string();
        assert!(err.contains("26") && err.contains("26)"), "{err}");
    }

    #[test]
    fn unsupported_values_are_named() {
        let err = TextTokenizer::from_gguf(&tiny_gguf("kimi-k2"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`kimi-k2`")
                && err.contains("tokenizer.ggml.pre")
                && err.contains("smollm"),
            "{err}"
        );
        let mut c = tiny_gguf("gpt2");
        c.metadata
            .insert(KEY_MODEL.into(), Value::String("bert".into()));
        let err = TextTokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(err.contains("`bert`") && err.contains("gpt2"), "{err}");
        c.metadata.remove(KEY_MODEL);
        let err = TextTokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(
            err.contains("tokenizer.ggml.model") && err.contains("missing"),
            "{err}"
        );
        let mut c = tiny_gguf("gpt2");
        c.metadata.insert(KEY_TOKENS.into(), Value::U32(3));
        let err = TextTokenizer::from_gguf(&c).unwrap_err().to_string();
        assert!(
            err.contains("tokenizer.ggml.tokens") && err.contains("array"),
            "{err}"
        );
    }
}
