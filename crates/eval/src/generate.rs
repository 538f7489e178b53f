//! Generation: every contender on the same prompts with the same seeds, through curation's
//! `candidates` stage (one pipeline per contender, named after it; record ids
//! `<prompt>/<contender>/s<seed>`). Resumable as that stage is: a rerun generates only what is
//! missing, and refuses a file in which a contender's name stands for another pipeline.

use std::collections::HashSet;
use std::path::Path;

use adasamp_curate::candidates::{self, Backend, CandidateSet};
use adasamp_curate::prompt::PromptRecord;
use adasamp_curate::stage::{CandidateKey, StageReport};
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

/// How many generations of `set` `output` lacks (all of them when it does not exist; a torn
/// last line counts as missing).
pub fn missing(set: &CandidateSet, output: &Path) -> Result<usize> {
    if !output.exists() {
        return Ok(set.jobs().count());
    }
    // Only the complete lines count (the file is left as it is: `candidates` cuts a torn one).
    let bytes = std::fs::read(output).map_err(EvalError::io(output))?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&bytes[..complete]);
    let records = adasamp_engine::record::parse_jsonl(&text, &output.display().to_string())
        .map_err(adasamp_curate::CurateError::from)?;
    let done: HashSet<CandidateKey> = records
        .iter()
        .map(|n| CandidateKey::of(&n.record))
        .collect::<adasamp_curate::Result<_>>()?;
    Ok(set.jobs().filter(|&j| !done.contains(&set.key(j))).count())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contender::ContenderSource;
    use adasamp_curate::candidates::Outcome;
    use adasamp_curate::prompt::parse_prompts;

    #[test]
    fn missing_counts_the_generations_not_yet_in_the_file() {
        let prompts = parse_prompts(
            "{\"id\": \"a\", \"prompt\": \"x\"}\n{\"id\": \"b\", \"prompt\": \"y\"}\n",
            Path::new("p.jsonl"),
        )
        .unwrap();
        let contenders = crate::contender::resolve_all(&[
            ContenderSource::preset("balanced"),
            ContenderSource::preset("precise"),
        ])
        .unwrap();
        let set = candidate_set(prompts, &contenders, 2, 4, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(CANDIDATES);
        assert_eq!(missing(&set, &out).unwrap(), 8);
        let mut text = Vec::new();
        for job in set.jobs().take(5) {
            let r = set.record(
                job,
                Outcome {
                    text: "g".into(),
                    tokens: None,
                    finish_reason: None,
                    usage: None,
                },
            );
            adasamp_engine::record::write_record(&mut text, &r).unwrap();
        }
        // the fifth record torn by a kill: it counts as missing
        let cut = text.len() - 5;
        std::fs::write(&out, &text[..cut]).unwrap();
        assert_eq!(missing(&set, &out).unwrap(), 4);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            &text[..cut],
            "the file is left as it is"
        );
        assert_eq!(set.pipelines.pipelines()[1].name(), "precise");
    }
}
