//! `adasamp label …`: the label stages of curation, one module each.

pub mod diversity;
pub mod overlap;
pub mod quality;
pub mod verify;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Options of `label`.
#[derive(Debug, Args)]
pub struct LabelArgs {
    /// Which label.
    #[command(subcommand)]
    pub label: Label,
}

/// The label stages.
#[derive(Debug, Subcommand)]
pub enum Label {
    /// Verifiable rewards: `verified` = 1 or 0 on records whose checks include `verifiable`
    /// (GSM8K last number, MATH boxed answer, IFEval instructions); others copied unchanged.
    Verify(verify::VerifyArgs),
    /// Greedy longest-match coverage of each generation by an indexed corpus (`adasamp index
    /// build`): matched tokens, their fraction, and match → no-match breaks.
    Overlap(overlap::OverlapArgs),
    /// Diversity across seeds per (prompt, pipeline): self-BLEU (sacreBLEU sentence BLEU of
    /// each generation against the others) and embedding entropy (all-MiniLM-L6-v2), raw and
    /// `log_` forms, on every member of the group.
    Diversity(diversity::DiversityArgs),
    /// Quality per (prompt, seed): a Swiss tournament judged pairwise (a local model or an
    /// OpenAI-compatible endpoint) and Bradley–Terry ratings, or a reward per generation from a
    /// scorer endpoint.
    Quality(Box<quality::QualityArgs>),
}

/// Runs `label`.
pub fn run(a: &LabelArgs) -> Result<()> {
    match &a.label {
        Label::Verify(v) => verify::run(v),
        Label::Overlap(o) => overlap::run(o),
        Label::Diversity(d) => diversity::run(d),
        Label::Quality(q) => quality::run(q),
    }
}
