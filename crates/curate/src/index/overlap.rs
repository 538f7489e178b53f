//! `label overlap`: per record, the greedy longest-match coverage of its generation by the
//! indexed corpus ([`labels::OVERLAP_MATCHED`], [`labels::OVERLAP_COVERAGE`],
//! [`labels::OVERLAP_BREAKS`]). Resumable per record: a rerun after a kill skips the records
//! already in the output and writes every other one exactly once, in input order.

use std::collections::HashSet;
use std::path::Path;

use adasamp_engine::record::CandidateRecord;
use serde_json::Value;

use crate::error::{CurateError, Result};
use crate::index::coverage::{Coverage, DEFAULT_MAX_N};
use crate::index::tokenizer::{check_matches, LoadedTokenizer};
use crate::index::Index;
use crate::labels;
use crate::stage::{progress, read_records, reopen_output, CandidateKey, StageReport};

/// Options of [`label_overlap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlapOptions {
    /// The longest n-gram the greedy walk looks for (≥ 1).
    pub max_n: usize,
}

impl Default for OverlapOptions {
    fn default() -> Self {
        Self {
            max_n: DEFAULT_MAX_N,
        }
    }
}

/// Where a record's scored tokens came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Its `generation_tokens`, made by the index's tokenizer.
    GenerationTokens,
    /// Its `generation` text, tokenized with the index's tokenizer.
    Retokenized,
}

/// The tokens a record is scored on. Its `generation_tokens` when the record says they were made
/// by the index's tokenizer ([`labels::TOKENIZER_SHA256`] equal to the index's), less a final
/// end-of-generation token (EOS is no text; the text never contains it); otherwise its
/// `generation` text tokenized with the index's tokenizer (no BOS). Tokens of a stop string
/// are part of `generation_tokens` but not of the text.
pub fn scored_tokens(
    r: &CandidateRecord,
    tokenizer: &LoadedTokenizer,
) -> Result<(Vec<u32>, TokenOrigin)> {
    let same = matches!(
        r.extra.get(labels::TOKENIZER_SHA256),
        Some(Value::String(s)) if *s == tokenizer.info.sha256
    );
    if let (true, Some(tokens)) = (same, &r.generation_tokens) {
        let mut t = tokens.clone();
        if t.last()
            .is_some_and(|l| tokenizer.tokenizer.eos_ids().contains(l))
        {
            t.pop();
        }
        return Ok((t, TokenOrigin::GenerationTokens));
    }
    Ok((
        tokenizer.tokenizer.encode(&r.generation, false)?,
        TokenOrigin::Retokenized,
    ))
}

/// Writes the overlap labels of a coverage into a record.
pub fn write_labels(r: &mut CandidateRecord, c: &Coverage) {
    r.extra
        .insert(labels::OVERLAP_MATCHED.into(), Value::from(c.matched));
    r.extra
        .insert(labels::OVERLAP_COVERAGE.into(), Value::from(c.fraction()));
    r.extra
        .insert(labels::OVERLAP_BREAKS.into(), Value::from(c.breaks));
}

/// Labels every record of `input` with its overlap against `index`, appending to `output`
/// (resumed: records whose (prompt, pipeline, seed) is already there are skipped). `tokenizer`
/// must be the index's. A record whose key repeats an earlier input record's is dropped and
/// reported. A progress bar counts records.
pub fn label_overlap(
    index: &Index,
    tokenizer: &LoadedTokenizer,
    input: &Path,
    output: &Path,
    opts: &OverlapOptions,
) -> Result<StageReport> {
    if opts.max_n == 0 {
        return Err(CurateError::BadParameter {
            name: "max_n".into(),
            value: "0".into(),
            message: "the longest n-gram must be at least 1 token".into(),
        });
    }
    check_matches(&index.header().tokenizer, &tokenizer.info)?;
    let records = read_records(input)?;
    let reopened = reopen_output(output)?;
    let mut out = reopened.output;
    let mut done: HashSet<CandidateKey> = HashSet::with_capacity(reopened.done.len());
    for r in &reopened.done {
        done.insert(CandidateKey::of(r)?);
    }
    let mut report = StageReport::new("label overlap", output);
    report.read = records.len();
    if reopened.dropped_torn_line {
        report.note("cut the torn last line an interrupted run left in the output");
    }
    let bar = progress(records.len(), "records");
    let mut seen: HashSet<CandidateKey> = HashSet::with_capacity(records.len());
    let (mut from_tokens, mut retokenized) = (0usize, 0usize);
    let (mut matched, mut total) = (0usize, 0usize);
    for mut r in records {
        bar.inc(1);
        let key = CandidateKey::of(&r)?;
        if !seen.insert(key.clone()) {
            report.drop("repeats an earlier record's (prompt, pipeline, seed)", 1);
            continue;
        }
        if done.contains(&key) {
            report.already_done += 1;
            continue;
        }
        let (tokens, origin) = scored_tokens(&r, tokenizer)?;
        let c = index.coverage(&tokens, opts.max_n)?;
        match origin {
            TokenOrigin::GenerationTokens => from_tokens += 1,
            TokenOrigin::Retokenized => retokenized += 1,
        }
        matched += c.matched;
        total += c.tokens;
        write_labels(&mut r, &c);
        out.append(&r)?;
    }
    bar.finish_and_clear();
    report.written = out.written();
    if report.written > 0 {
        report.note(format!(
            "{from_tokens} scored on their generation_tokens, {retokenized} re-tokenized with the index's tokenizer; {matched} of {total} tokens matched ({:.1} %), n ≤ {}",
            100.0 * matched as f64 / total.max(1) as f64,
            opts.max_n
        ));
    }
    Ok(report)
}
