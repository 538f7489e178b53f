//! Curation: the data that tells a learned sampler which heuristic was best where
//! (../shared/SPEC.md section 4, the Adaptive Sampling Networks workflow).
//!
//! The pipeline is a chain of stages over JSONL files of [`CandidateRecord`]s (the engine's
//! record type; labels are added fields and every field a stage does not know survives):
//!
//! ```text
//! prompts.jsonl ─ candidates ─▶ candidates.jsonl ─ verify ─▶ clean.jsonl
//!     ─ label quality / diversity / overlap / verify ─▶ labelled.jsonl ─ score ─▶ train.jsonl
//! ```
//!
//! * [`prompt`]: the prompt-file record (id, text, source, licence, which checks apply) and the
//!   fields a candidate carries over from its prompt.
//! * [`prompt_sets`]: prompt files built from public data (MT-Bench, HumanEval, GSM-Symbolic,
//!   IFEval-style), each record with source and licence.
//! * [`labels`]: the name of every field a stage adds, declared once.
//! * [`index`]: a suffix-array index over a token corpus, and the overlap label (greedy
//!   longest-match coverage) computed with it.
//! * [`stage`]: what every stage shares — resuming an output file after a kill (each record
//!   exactly once, no partial line), appending whole lines, a progress bar, and the end-of-run
//!   report of what was written and what was dropped and why.
//! * [`verifiable`]: the verifiable-reward checks (GSM8K, MATH, IFEval) and the `label verify`
//!   stage.
//! * [`candidates`]: every (prompt, pipeline, seed) generated once, on this machine or on a
//!   fleet of OpenAI-compatible servers.
//! * [`verify`]: keeps the prompts whose candidates are complete, reports the others.
//! * [`quality`]: `label quality` — Swiss tournaments judged pairwise (local model or
//!   OpenAI-compatible endpoint) and Bradley–Terry ratings, or rewards from a scorer endpoint.
//! * [`score`]: z-normalised labels combined by weights, top-k per (prompt, seed): the training
//!   file.
//!
//! Every stage is a library function here; `adasamp <stage>` in the CLI only parses arguments.
//!
//! [`CandidateRecord`]: adasamp_engine::record::CandidateRecord

pub mod candidates;
pub mod diversity;
pub mod error;
pub mod index;
pub mod labels;
pub mod prompt;
pub mod prompt_sets;
pub mod quality;
pub mod score;
pub mod stage;
pub mod verifiable;
pub mod verify;

pub use error::{CurateError, Refusal, Result};
