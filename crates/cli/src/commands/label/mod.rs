//! `adasamp label <kind>`: add one kind of label to candidate records (one module per kind).

pub mod quality;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Options of `label`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// Which label.
    #[command(subcommand)]
    pub label: Label,
}

/// The kinds of label.
#[derive(Debug, Subcommand)]
pub enum Label {
    /// Quality per (prompt, seed): a Swiss tournament judged pairwise (a local model or an
    /// OpenAI-compatible endpoint) and Bradley–Terry ratings, or a reward per generation from a
    /// scorer endpoint.
    Quality(Box<quality::QualityArgs>),
}

/// Runs `label`.
pub fn run(a: &LabelArgs) -> Result<()> {
    match &a.label {
        Label::Quality(q) => quality::run(q),
    }
}
