//! The evaluation scoreboard: does a sampler (a learned one, typically) beat the others?
//!
//! Every contender — a pipeline, a preset or a learned sampler ([`contender`]) — generates on
//! the same held-out prompts with the same seeds ([`generate`], through curation's
//! `candidates`); the generations are measured with the curation stages:
//!
//! * a pairwise judge on every pair of contenders per (prompt, seed), both orders, and
//!   Bradley–Terry ratings among the contenders ([`rating`]);
//! * verifiable accuracy where prompts carry answers (`label verify`);
//! * self-BLEU and embedding entropy across seeds (`label diversity`), mean length;
//! * for learned samplers, KL to and truncated mass against the pipeline they imitate
//!   ([`imitation`]);
//!
//! with 95 % bootstrap intervals over prompts ([`bootstrap`]) for the rating and the accuracy,
//! into [`EvalReport`] ([`report`]: `report.json`, `report.md`, a verdict sentence). The eval
//! prompts must be disjoint from the training prompts ([`overlap`]). Every stage writes into
//! the run directory and resumes after a kill ([`run`]); docs/evaluation.md explains each
//! metric, its formula and its source.

pub mod bootstrap;
pub mod contender;
pub mod demo;
pub mod error;
pub mod generate;
pub mod imitation;
pub mod jsonl;
pub mod metrics;
pub mod overlap;
pub mod rating;
pub mod report;
pub mod run;

pub use bootstrap::Interval;
pub use contender::{Contender, ContenderKind, ContenderSource};
pub use error::{EvalError, OverlapHit, OverlapKind, Result};
pub use report::{Accuracy, Comparison, ContenderResult, EvalReport, Outcome, ReportFiles};
pub use run::{run, run_with_log, EvalOptions, JudgeChoice};
