//! `adasamp prompts fetch NAME`: prompt files from public data (MT-Bench, HumanEval,
//! GSM-Symbolic, IFEval-style, or a mixture).

use std::collections::BTreeMap;
use std::path::PathBuf;

use adasamp_curate::prompt_sets::{self, FetchOptions, PromptSet};
use anyhow::Result;
use clap::{Args, Subcommand};

/// Options of `prompts`.
#[derive(Debug, Args)]
pub struct PromptsArgs {
    #[command(subcommand)]
    pub action: PromptsAction,
}

/// The `prompts` subcommands.
#[derive(Debug, Subcommand)]
pub enum PromptsAction {
    /// Build a prompt file (JSONL, source and licence per record) from a public set:
    /// mtbench, humaneval, gsm, ifeval, or mix (a fixed-seed mixture of the four).
    Fetch {
        /// The set: mtbench, humaneval, gsm, ifeval or mix.
        name: String,
        /// Output file (default: NAME.jsonl).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Most prompts to write (default: mtbench 80, humaneval 164, gsm 200, ifeval 36,
        /// mix 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Seed of the selection and of the GSM-Symbolic generators.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Runs `prompts`.
pub fn run(a: &PromptsArgs) -> Result<()> {
    match &a.action {
        PromptsAction::Fetch {
            name,
            out,
            limit,
            seed,
        } => {
            let set: PromptSet = name.parse()?;
            let out = out
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}.jsonl", set.name())));
            let records = prompt_sets::build(
                set,
                FetchOptions {
                    limit: *limit,
                    seed: *seed,
                },
                &mut |m: &str| eprintln!("{m}"),
            )?;
            prompt_sets::write_prompts(&out, &records)?;
            let mut licences: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &records {
                *licences
                    .entry(r.license.as_deref().unwrap_or("?"))
                    .or_default() += 1;
            }
            let licences: Vec<String> =
                licences.iter().map(|(l, n)| format!("{n} × {l}")).collect();
            eprintln!(
                "wrote {} prompts to {} (licences: {})",
                records.len(),
                out.display(),
                licences.join(", ")
            );
            Ok(())
        }
    }
}
