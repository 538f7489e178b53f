//! The demo's plan: how many prompts, which pipelines of the filtered grid, how many seeds and
//! tokens, how long the judge plays and the sampler trains — one fixed plan per size, so a run
//! is reproducible and a rerun can check it continues the same plan.

use std::fmt;

use adasamp_sampling::grid::{filtered_grid, Family};
use adasamp_sampling::PipelineFile;
use serde::{Deserialize, Serialize};

use super::DemoError;

/// How big a demo run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// A few minutes on 2 CPU cores: the whole loop on a handful of prompts (CI).
    Fast,
    /// Under 15 minutes on 2 CPU cores: a few dozen prompts, 8 pipelines.
    Default,
    /// Larger: for a GPU or a fleet of OpenAI-compatible servers.
    Full,
}

impl Size {
    /// The size's name (`fast`, `default`, `full`).
    pub fn name(self) -> &'static str {
        match self {
            Size::Fast => "fast",
            Size::Default => "default",
            Size::Full => "full",
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The eight grid pipelines of the default demo: temperatures 0.3–1.4, each family of
/// truncation once or twice (none, top-k, the Llama default top-p 0.9, min-p, top-p, ε).
const DEFAULT_PIPELINES: [&str; 8] = [
    "temp0.3",
    "temp0.5_top_k16",
    "temp0.7_llama_default",
    "temp0.7_min_p0.05",
    "temp1_top_p0.9",
    "temp1_epsilon0.002",
    "temp1.2_min_p0.1",
    "temp1.4_top_k64",
];

/// The four pipelines of `--fast`: low to high temperature.
const FAST_PIPELINES: [&str; 4] = [
    "temp0.3",
    "temp0.7_llama_default",
    "temp1_top_p0.9",
    "temp1.4_top_k64",
];

/// The four `--full` adds to the default eight.
const FULL_EXTRA_PIPELINES: [&str; 4] = [
    "temp0.5_top_p0.95",
    "temp0.8_epsilon0.001",
    "temp1.7_min_p0.05",
    "temp2.1_min_p0.1",
];

/// Everything that decides what a demo run computes (written to the run directory's
/// `plan.json`; a rerun must find the same plan).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The size this plan is for.
    pub size: Size,
    /// The prompt set fetched (`prompts fetch` name).
    pub prompt_set: String,
    /// Prompts fetched, training and held-out together.
    pub prompts: usize,
    /// Seed of the prompt selection.
    pub prompt_seed: u64,
    /// Every `held_out_every`-th prompt (1-based: positions k−1, 2k−1, …) is held out for the
    /// evaluation, the others are for training. The mixture interleaves its four sources, so
    /// with k = 3 both sides get every source.
    pub held_out_every: usize,
    /// Names of the grid pipelines (members of the filtered grid with the Llama defaults).
    pub pipelines: Vec<String>,
    /// Seeds per (prompt, pipeline) of the candidates.
    pub seeds: u64,
    /// Token limit of every generation (candidates and evaluation).
    pub max_new_tokens: usize,
    /// Context cap of the local model (prompt + generation; the judge's prompts are longer).
    pub max_seq_len: usize,
    /// Sequences decoded together by the local model (and judge prompts per forward).
    pub batch_size: usize,
    /// Swiss rounds beyond ⌈log₂ pipelines⌉ in each (prompt, seed) quality tournament.
    pub judge_extra_rounds: usize,
    /// Score weights a (diversity), b (quality), c (verifiable).
    pub weights: [f64; 3],
    /// The learned sampler's architecture (sampler YAML).
    pub sampler_yaml: String,
    /// Fraction of the training records held out from training (at least one record): the
    /// learned sampler's KL and truncated mass against each one's own target pipeline are
    /// measured on them.
    pub train_held_out: f64,
    /// Passes over the training positions.
    pub train_epochs: u64,
    /// Positions per training micro-batch.
    pub train_token_batch: usize,
    /// Peak learning rate.
    pub train_lr: f64,
    /// Warm-up steps of the learning-rate schedule.
    pub train_warmup: u64,
    /// Seeds per (prompt, contender) in the evaluation.
    pub eval_seeds: u64,
    /// Bootstrap resamples of the evaluation's intervals.
    pub eval_bootstrap: usize,
    /// Seed of everything else (tournaments, training, bootstrap).
    pub seed: u64,
}

/// SimpleDistributionAwareTransform with per-row (s, τ) (configs/samplers/simple_dynamic.yaml).
const SAMPLER_YAML: &str =
    "architecture: simple_distribution_aware_transform\nhidden: 64\ndynamic_truncation: true\n";

impl Plan {
    /// The fixed plan of `size`.
    pub fn for_size(size: Size) -> Self {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let base = Plan {
            size,
            prompt_set: "mix".into(),
            prompts: 24,
            prompt_seed: 0,
            held_out_every: 3,
            pipelines: names(&DEFAULT_PIPELINES),
            seeds: 2,
            max_new_tokens: 48,
            max_seq_len: 1024,
            batch_size: 16,
            judge_extra_rounds: 0,
            weights: [0.1, 0.9, 0.9],
            sampler_yaml: SAMPLER_YAML.into(),
            train_held_out: 0.15,
            train_epochs: 3,
            train_token_batch: 32,
            train_lr: 1e-3,
            train_warmup: 5,
            eval_seeds: 2,
            eval_bootstrap: 1000,
            seed: 0,
        };
        match size {
            Size::Default => base,
            Size::Fast => Plan {
                prompts: 6,
                pipelines: names(&FAST_PIPELINES),
                max_new_tokens: 16,
                train_epochs: 1,
                train_token_batch: 16,
                train_warmup: 1,
                eval_bootstrap: 200,
                ..base
            },
            Size::Full => Plan {
                prompts: 100,
                held_out_every: 4,
                pipelines: names(&DEFAULT_PIPELINES)
                    .into_iter()
                    .chain(names(&FULL_EXTRA_PIPELINES))
                    .collect(),
                seeds: 4,
                max_new_tokens: 256,
                max_seq_len: 2048,
                judge_extra_rounds: 1,
                train_warmup: 20,
                ..base
            },
        }
    }

    /// The plan's pipelines as a pipeline file, taken from the filtered grid (Llama family) by
    /// name, in the plan's order.
    pub fn grid(&self) -> Result<PipelineFile, DemoError> {
        let all = filtered_grid(Family::Llama);
        let pipelines = self
            .pipelines
            .iter()
            .map(|name| {
                all.pipelines
                    .iter()
                    .find(|p| &p.name == name)
                    .cloned()
                    .ok_or_else(|| DemoError::BadPlan {
                        field: "pipelines",
                        value: name.clone(),
                        message: "not a pipeline of the filtered grid (Llama family)".into(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PipelineFile { pipelines })
    }

    /// Whether the prompt at `index` (0-based, in the fetched order) is held out.
    pub fn is_held_out(&self, index: usize) -> bool {
        index % self.held_out_every == self.held_out_every - 1
    }

    /// Held-out prompts of the plan.
    pub fn held_out_count(&self) -> usize {
        (0..self.prompts).filter(|&i| self.is_held_out(i)).count()
    }

    /// Training prompts of the plan.
    pub fn train_count(&self) -> usize {
        self.prompts - self.held_out_count()
    }

    /// Candidates the plan generates: training prompts × pipelines × seeds.
    pub fn candidate_count(&self) -> usize {
        self.train_count() * self.pipelines.len() * self.seeds as usize
    }

    /// Checks the plan's numbers (a plan read back from a run directory may have been edited).
    pub fn validate(&self) -> Result<(), DemoError> {
        let bad = |field: &'static str, value: String, message: &str| {
            Err(DemoError::BadPlan {
                field,
                value,
                message: message.into(),
            })
        };
        if self.held_out_every < 2 {
            return bad(
                "held_out_every",
                self.held_out_every.to_string(),
                "must be ≥ 2 (some prompts must be left for training)",
            );
        }
        if self.prompts < self.held_out_every {
            return bad(
                "prompts",
                self.prompts.to_string(),
                "fewer prompts than held_out_every: nothing would be held out",
            );
        }
        if self.pipelines.len() < 2 {
            return bad(
                "pipelines",
                self.pipelines.len().to_string(),
                "a tournament needs at least two pipelines",
            );
        }
        if self.seeds == 0 || self.eval_seeds == 0 {
            return bad("seeds", "0".into(), "must be ≥ 1");
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens", "0".into(), "must be ≥ 1");
        }
        if !(0.0..0.5).contains(&self.train_held_out) {
            return bad(
                "train_held_out",
                self.train_held_out.to_string(),
                "must be in [0, 0.5): a fraction of the training records",
            );
        }
        self.grid().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plan_is_valid_and_its_pipelines_are_grid_members() {
        for size in [Size::Fast, Size::Default, Size::Full] {
            let p = Plan::for_size(size);
            p.validate().unwrap();
            let g = p.grid().unwrap();
            assert_eq!(g.pipelines.len(), p.pipelines.len());
            let names: std::collections::BTreeSet<_> =
                g.pipelines.iter().map(|p| p.name.clone()).collect();
            assert_eq!(names.len(), p.pipelines.len(), "{size}: duplicate pipeline");
        }
        assert_eq!(Plan::for_size(Size::Default).pipelines.len(), 8);
        assert_eq!(Plan::for_size(Size::Full).pipelines.len(), 12);
    }

    #[test]
    fn the_split_is_disjoint_and_covers_every_prompt() {
        let p = Plan::for_size(Size::Default);
        assert_eq!(p.held_out_count(), 8);
        assert_eq!(p.train_count(), 16);
        assert_eq!(p.candidate_count(), 16 * 8 * 2);
        let held: Vec<usize> = (0..p.prompts).filter(|&i| p.is_held_out(i)).collect();
        assert_eq!(held, vec![2, 5, 8, 11, 14, 17, 20, 23]);
        // The mixture interleaves 4 sources: both sides get every source.
        let mut held_per_source = [0; 4];
        let mut train_per_source = [0; 4];
        for i in 0..p.prompts {
            if p.is_held_out(i) {
                held_per_source[i % 4] += 1;
            } else {
                train_per_source[i % 4] += 1;
            }
        }
        assert_eq!(held_per_source, [2, 2, 2, 2]);
        assert_eq!(train_per_source, [4, 4, 4, 4]);
        let fast = Plan::for_size(Size::Fast);
        assert_eq!((fast.train_count(), fast.held_out_count()), (4, 2));
    }

    #[test]
    fn a_bad_plan_names_its_field() {
        let mut p = Plan::for_size(Size::Fast);
        p.pipelines.push("temp9_top_k1".into());
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("pipelines") && e.contains("temp9_top_k1"), "{e}");
        let mut p = Plan::for_size(Size::Fast);
        p.held_out_every = 1;
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("held_out_every"), "{e}");
        let mut p = Plan::for_size(Size::Fast);
        p.train_held_out = f64::NAN;
        let e = p.validate().unwrap_err().to_string();
        assert!(e.contains("train_held_out") && e.contains("NaN"), "{e}");
    }
}
