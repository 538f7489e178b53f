//! `adasamp label …`: the label stages of curation, one module each.

pub mod diversity;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Options of `label`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    #[command(subcommand)]
    pub label: Label,
}

/// The label stages.
#[derive(Debug, Subcommand)]
pub enum Label {
    /// Diversity across seeds per (prompt, pipeline): self-BLEU (sacreBLEU sentence BLEU of
    /// each generation against the others) and embedding entropy (all-MiniLM-L6-v2), raw and
    /// `log_` forms, on every member of the group.
    Diversity(diversity::DiversityArgs),
}

/// Runs `label`.
pub fn run(a: &LabelArgs) -> Result<()> {
    match &a.label {
        Label::Diversity(d) => diversity::run(d),
    }
}
