//! Generation: every contender on the same prompts with the same seeds, through curation's
//! `candidates` stage (one pipeline per contender, named after it; record ids
//! `<prompt>/<contender>/s<seed>`). Resumable as that stage is: a rerun generates only what is
//! missing, and refuses a file in which a contender's name stands for another pipeline.

use std::path::Path;

use adasamp_curate::candidates::{self, Backend, CandidateSet};
use adasamp_curate::prompt::PromptRecord;
use adasamp_curate::stage::StageReport;
use adasamp_sampling::PipelineSet;

use crate::contender::Contender;
use crate::error::{EvalError, Result};

/// The candidates file of a run directory.
pub const CANDIDATES: &str = "candidates.jsonl";

/// The generation set: every prompt × every contender's pipeline × seeds `0..seeds`.
pub fn candidate_set(
    prompts: Vec<PromptRecord>,
    contenders: &[Contender],
    seeds: u64,
    max_new_tokens: usize,
    system_prompt: Option<String>,
) -> Result<CandidateSet> {
    let pipelines =
        PipelineSet::from_pipelines(contenders.iter().map(|c| c.pipeline.clone()).collect());
    Ok(CandidateSet::new(
        prompts,
        pipelines,
        seeds,
        max_new_tokens,
        system_prompt,
    )?)
}

/// Generates what `output` lacks of `set` with `backend`; a generation that failed is an
/// [`EvalError::Incomplete`] (after everything else is written; a rerun retries it), since a
/// contender missing some generations would be compared on other prompts than the rest.
pub fn generate(
    set: &CandidateSet,
    backend: &mut Backend<'_>,
    output: &Path,
) -> Result<StageReport> {
    let report = candidates::run(set, backend, output)?;
    if let Some((reason, _)) = report.dropped.iter().next() {
        return Err(EvalError::Incomplete {
            stage: "generation".into(),
            failed: report.dropped_total(),
            first: reason.clone(),
        });
    }
    Ok(report)
}
