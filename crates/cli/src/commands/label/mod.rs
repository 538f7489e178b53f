//! `adasamp label …`: curation labels added to candidate records (one module per label).

pub mod overlap;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Options of `label`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    #[command(subcommand)]
    pub label: Label,
}

/// The labels.
#[derive(Debug, Subcommand)]
pub enum Label {
    /// Greedy longest-match coverage of each generation by an indexed corpus (`adasamp index
    /// build`): matched tokens, their fraction, and match → no-match breaks.
    Overlap(overlap::OverlapArgs),
}

/// Runs `label`.
pub fn run(a: &LabelArgs) -> Result<()> {
    match &a.label {
        Label::Overlap(o) => overlap::run(o),
    }
}
