//! `adasamp model …`: fetch the default model; print a model's facts.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Options of `model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    pub action: ModelAction,
}

/// The `model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelAction {
    /// Fetch (or verify) the default model SmolLM2-135M-Instruct into $ADASAMP_HOME.
    Fetch,
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

/// Runs `model`.
pub fn run(a: &ModelArgs) -> Result<()> {
    match &a.action {
        ModelAction::Fetch => {
            let p = adasamp_engine::fetch::ensure_default_model(&mut |m: &str| eprintln!("{m}"))?;
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
