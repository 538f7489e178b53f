//! `adasamp logits`: a model's raw logits for every position of a prompt (teacher-forced), as
//! safetensors (tensor `logits`, F32 [positions, V]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::logits_io::{self, Logits};

/// Options of `logits`.
#[derive(Debug, Args)]
pub struct LogitsArgs {
    /// The text (the chat template is applied unless --raw).
    #[arg(long)]
    pub prompt: String,
    /// Use the prompt as-is.
    #[arg(long)]
    pub raw: bool,
    /// Model (default: the default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output safetensors file.
    #[arg(long)]
    pub output: PathBuf,
}

/// Runs `logits`.
pub fn run(a: &LogitsArgs) -> Result<()> {
    let mut lm = adasamp_engine::load(
        a.model.as_deref(),
        adasamp_engine::BackendChoice::Candle,
        Default::default(),
        &mut |m: &str| eprintln!("{m}"),
    )?;
    let ids = lm.prompt_tokens(&a.prompt, None, a.raw)?;
    let seq = lm.model.new_sequence()?;
    let l = lm
        .model
        .forward(&[adasamp_engine::Feed::tokens(seq, &ids).with_all_logits()])?
        .logits;
    logits_io::write(
        &a.output,
        &Logits {
            rows: l.rows,
            vocab: l.vocab,
            data: l.data,
        },
    )?;
    eprintln!(
        "wrote {} rows × {} logits to {}",
        l.rows,
        l.vocab,
        a.output.display()
    );
    Ok(())
}
