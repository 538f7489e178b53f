//! `adasamp index …`: build a suffix-array index over a token corpus; look one up.

use std::path::PathBuf;

use adasamp_curate::index::{self, build_index, load_tokenizer, BuildOptions, Index};
use anyhow::Result;
use clap::{Args, Subcommand};

/// Options of `index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(subcommand)]
    pub action: IndexAction,
}

/// The `index` subcommands.
#[derive(Debug, Subcommand)]
pub enum IndexAction {
    /// Tokenize a corpus and write its suffix-array index (a directory, replaced atomically).
    /// `*.jsonl` / `*.ndjson` files hold one document per line (a JSON object with a text
    /// field); any other file is one plain-text document.
    Build {
        /// Corpus files.
        #[arg(long, required = true, num_args = 1..)]
        corpus: Vec<PathBuf>,
        /// The tokenizer: a .gguf model, a tokenizer.json, or a directory with one (default:
        /// the default model's).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// The JSONL field holding a document's text.
        #[arg(long, default_value = index::corpus::DEFAULT_TEXT_FIELD)]
        text_field: String,
        /// The index directory to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print an index's header (tokenizer, corpus files, counts) as JSON.
    Info {
        /// The index directory.
        #[arg(long)]
        index: PathBuf,
    },
    /// Tokenize a text with the index's tokenizer; print its count and the longest prefix that
    /// occurs.
    Count {
        /// The index directory.
        #[arg(long)]
        index: PathBuf,
        /// The text.
        text: String,
        /// The index's tokenizer, if it has moved since the build.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
}

/// Runs `index`.
pub fn run(a: &IndexArgs) -> Result<()> {
    let mut log = |m: &str| eprintln!("{m}");
    match &a.action {
        IndexAction::Build {
            corpus,
            tokenizer,
            text_field,
            out,
        } => {
            let tok = load_tokenizer(tokenizer.as_deref(), &mut log)?;
            let opts = BuildOptions {
                text_field: text_field.clone(),
            };
            let report = build_index(corpus, &tok, out, &opts)?;
            println!("{report}");
        }
        IndexAction::Info { index } => {
            let index = Index::open(index)?;
            println!("{}", serde_json::to_string_pretty(index.header())?);
        }
        IndexAction::Count {
            index,
            text,
            tokenizer,
        } => {
            let index = Index::open(index)?;
            let tok = index::tokenizer::load_matching(
                &index.header().tokenizer,
                tokenizer.as_deref(),
                &mut log,
            )?;
            let ids = tok.tokenizer.encode(text, false)?;
            let info = serde_json::json!({
                "tokens": ids,
                "count": index.count(&ids),
                "longest_prefix": index.longest_prefix(&ids),
            });
            println!("{info}");
        }
    }
    Ok(())
}
