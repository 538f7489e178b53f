//! Command-line options of speculative decoding (`generate --draft PATH | --draft-layers K |
//! --draft-ngram N [--draft-tokens G]`): which drafter, how many tokens it drafts per round, and
//! the `speculative` field records carry.

use std::path::PathBuf;

use adasamp_engine::speculative::Drafter;
use adasamp_engine::LoadedModel;
use adasamp_sampling::speculative::SpeculationStats;
use clap::Args;

/// Options of speculative decoding.
#[derive(Debug, Args, Clone)]
pub struct DraftArgs {
    /// Speculative decoding with a draft model (a .gguf file or a Hugging Face directory) that
    /// shares the target's vocabulary.
    #[arg(
        long,
        value_name = "PATH",
        group = "drafter",
        conflicts_with = "teacher"
    )]
    pub draft: Option<PathBuf>,
    /// Self-speculative decoding: drafts from the target's first K blocks (+ final norm and LM
    /// head; candle backend).
    #[arg(long, value_name = "K", group = "drafter", conflicts_with = "teacher")]
    pub draft_layers: Option<usize>,
    /// Prompt-lookup speculative decoding: drafts continue the longest earlier match of the last
    /// ≤ N tokens of prompt + generation.
    #[arg(long, value_name = "N", group = "drafter", conflicts_with = "teacher")]
    pub draft_ngram: Option<usize>,
    /// Tokens drafted per round (G).
    #[arg(long, value_name = "G", default_value_t = 4)]
    pub draft_tokens: usize,
}

impl DraftArgs {
    /// Whether speculative decoding was asked for.
    pub fn enabled(&self) -> bool {
        self.draft.is_some() || self.draft_layers.is_some() || self.draft_ngram.is_some()
    }

    /// The drafter these options describe; `draft` is the loaded `--draft` model.
    pub fn drafter<'a>(&self, draft: Option<&'a mut LoadedModel>) -> Option<Drafter<'a>> {
        if let Some(m) = draft {
            return Some(Drafter::Model(m.model.as_mut()));
        }
        if let Some(layers) = self.draft_layers {
            return Some(Drafter::EarlyExit { layers });
        }
        self.draft_ngram.map(|n| Drafter::Ngram { n })
    }

    /// The record's `speculative` field: the drafter, G and the run's counts and rates.
    pub fn record_extra(&self, stats: &SpeculationStats) -> serde_json::Value {
        serde_json::json!({
            "draft": self.draft.as_ref().map(|p| p.display().to_string()),
            "draft_layers": self.draft_layers,
            "draft_ngram": self.draft_ngram,
            "draft_tokens": self.draft_tokens,
            "drafted": stats.drafted,
            "accepted": stats.accepted,
            "target_forwards": stats.target_forwards,
            "generated": stats.generated,
            "acceptance_rate": stats.acceptance_rate(),
            "tokens_per_forward": stats.tokens_per_forward(),
        })
    }
}

/// One line for stderr: acceptance rate and tokens per target forward.
pub fn summary_line(stats: &SpeculationStats) -> String {
    format!(
        "[speculative: {} of {} drafted tokens accepted ({:.1} %), {:.2} tokens per target forward ({} tokens, {} forwards)]",
        stats.accepted,
        stats.drafted,
        100.0 * stats.acceptance_rate(),
        stats.tokens_per_forward(),
        stats.generated,
        stats.target_forwards
    )
}
