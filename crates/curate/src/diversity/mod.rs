//! `label diversity`: how different a pipeline's generations of one prompt are across seeds
//! (SPEC 4 "Diversity"). Per (prompt, pipeline) group:
//! * [`labels::SELF_BLEU`]: the mean sacreBLEU sentence BLEU of each generation against the
//!   others ([`bleu::self_bleu`], 0–100; high = alike),
//! * [`labels::EMBEDDING_ENTROPY`]: the entropy of the spectrum of the generations' cosine
//!   Gram matrix of sentence embeddings ([`entropy::embedding_entropy`], bits; high = spread),
//! * [`labels::LOG_SELF_BLEU`], [`labels::LOG_EMBEDDING_ENTROPY`]: `ln(max(x, 1e-9))` of each,
//!   the reference implementation's stored form,
//!
//! written on every member of the group.
//!
//! Every group is labelled by default, whatever its prompt's checks: self-BLEU is cheap, the
//! embeddings are most of the cost (see the README's throughput), and `score` reads the labels
//! only where the prompt's checks include `diversity`. [`DiversityOptions::only_checked`]
//! labels only those groups. A group of fewer than two generations cannot be scored: its
//! records are written without the labels and the report says which groups they were.
//!
//! Resumable per group: a rerun skips the records already in the output and writes the rest of
//! a group (recomputing its values, which are deterministic) only once the group is computed.

pub mod bleu;
pub mod embed;
pub mod entropy;
pub mod tokenizer_13a;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use adasamp_engine::record::CandidateRecord;
use serde_json::Value;

use crate::error::Result;
use crate::labels;
use crate::prompt::Check;
use crate::stage::{self, CandidateKey, StageReport};
use embed::Embedder;

/// The floor of the log forms: `ln(max(x, 1e-9))`.
pub const LOG_FLOOR: f64 = 1e-9;

/// `ln(max(x, 1e-9))`, the reference implementation's stored form of a diversity value.
pub fn log_floored(x: f64) -> f64 {
    x.max(LOG_FLOOR).ln()
}

/// The diversity of one (prompt, pipeline) group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupDiversity {
    /// Self-BLEU, 0–100.
    pub self_bleu: f64,
    /// Embedding entropy, bits.
    pub embedding_entropy: f64,
}

impl GroupDiversity {
    /// The group's values from its generations and their embeddings (same order); `None` for
    /// fewer than two generations.
    pub fn of(texts: &[&str], embeddings: &[Vec<f32>]) -> Option<Self> {
        Some(Self {
            self_bleu: bleu::self_bleu(texts)?,
            embedding_entropy: entropy::embedding_entropy(embeddings)?,
        })
    }

    /// Writes the four labels into a record's `extra`.
    pub fn write_to(&self, r: &mut CandidateRecord) {
        let mut put = |k: &str, v: f64| {
            r.extra.insert(k.into(), Value::from(v));
        };
        put(labels::SELF_BLEU, self.self_bleu);
        put(labels::LOG_SELF_BLEU, log_floored(self.self_bleu));
        put(labels::EMBEDDING_ENTROPY, self.embedding_entropy);
        put(
            labels::LOG_EMBEDDING_ENTROPY,
            log_floored(self.embedding_entropy),
        );
    }
}

/// Options of [`label_diversity`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiversityOptions {
    /// A sentence-transformers model directory; `None`: the default all-MiniLM-L6-v2, fetched
    /// into the cache when missing.
    pub embedder: Option<PathBuf>,
    /// Texts per embedding forward pass.
    pub batch_size: usize,
    /// Label only groups whose prompt's checks include `diversity`; the others are written
    /// unlabelled.
    pub only_checked: bool,
}

impl Default for DiversityOptions {
    fn default() -> Self {
        Self {
            embedder: None,
            batch_size: embed::DEFAULT_BATCH_SIZE,
            only_checked: false,
        }
    }
}

/// One (prompt, pipeline) group of the input: indices of its records, in input order.
struct Group {
    prompt_id: String,
    pipeline: String,
    members: Vec<usize>,
}

/// Whether a record's carried `checks` include `diversity`.
fn asks_for_diversity(r: &CandidateRecord) -> bool {
    match r.extra.get(labels::CHECKS) {
        Some(Value::Array(a)) => a.iter().any(|c| {
            serde_json::from_value::<Check>(c.clone()).is_ok_and(|c| c == Check::Diversity)
        }),
        _ => false,
    }
}

/// Groups of the input by (prompt, pipeline), in order of first appearance; a record whose
/// (prompt, pipeline, seed) was already seen is dropped and counted in `report`.
fn group_records(records: &[CandidateRecord], report: &mut StageReport) -> Result<Vec<Group>> {
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    let mut seen = HashSet::new();
    for (i, r) in records.iter().enumerate() {
        let key = CandidateKey::of(r)?;
        if !seen.insert(key.clone()) {
            report.drop(
                format!("duplicate {} (verify keeps one)", key.record_id()),
                1,
            );
            continue;
        }
        let g = *index
            .entry((key.prompt_id.clone(), key.pipeline.clone()))
            .or_insert_with(|| {
                groups.push(Group {
                    prompt_id: key.prompt_id.clone(),
                    pipeline: key.pipeline.clone(),
                    members: Vec::new(),
                });
                groups.len() - 1
            });
        groups[g].members.push(i);
    }
    Ok(groups)
}

/// At most this many group names are listed in a report note.
const NAMES_IN_NOTE: usize = 8;

fn name_list(names: &[String]) -> String {
    let mut s = names
        .iter()
        .take(NAMES_IN_NOTE)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_IN_NOTE {
        s.push_str(&format!(", … ({} more)", names.len() - NAMES_IN_NOTE));
    }
    s
}

/// Labels the records of `input` with their (prompt, pipeline) group's diversity and writes
/// them to `output` (resuming what an earlier run wrote there); `log` gets progress messages
/// (fetching and loading the embedder). Output order: group by group, in order of each
/// group's first record, members in input order.
pub fn label_diversity(
    input: &Path,
    output: &Path,
    options: &DiversityOptions,
    log: &mut dyn FnMut(&str),
) -> Result<StageReport> {
    let records = stage::read_records(input)?;
    let mut report = StageReport::new("label diversity", output);
    report.read = records.len();
    let groups = group_records(&records, &mut report)?;
    let reopened = stage::reopen_output(output)?;
    let mut out = reopened.output;
    let mut done = HashSet::new();
    for r in &reopened.done {
        done.insert(CandidateKey::of(r)?);
    }
    report.already_done = reopened.done.len();
    if reopened.dropped_torn_line {
        report.note("cut a half-written last line left by an interrupted run");
    }

    // What is left to write, per group, and whether it gets labels.
    let mut small = Vec::new();
    let mut unchecked = 0usize;
    let mut work: Vec<(&Group, Vec<usize>, bool)> = Vec::new();
    for g in &groups {
        let todo: Vec<usize> = g
            .members
            .iter()
            .copied()
            .filter(|&i| CandidateKey::of(&records[i]).is_ok_and(|k| !done.contains(&k)))
            .collect();
        if todo.is_empty() {
            continue;
        }
        let label = if g.members.len() < 2 {
            small.push(format!("{}/{}", g.prompt_id, g.pipeline));
            false
        } else if options.only_checked
            && !g.members.iter().any(|&i| asks_for_diversity(&records[i]))
        {
            unchecked += 1;
            false
        } else {
            true
        };
        work.push((g, todo, label));
    }

    let texts_to_embed: usize = work.iter().filter(|w| w.2).map(|w| w.0.members.len()).sum();
    let embedder = if texts_to_embed > 0 {
        let dir = match &options.embedder {
            Some(d) => d.clone(),
            None => embed::ensure_default_embedder(log)?,
        };
        log(&format!("loading the embedder from {}", dir.display()));
        Some(Embedder::load(&dir)?)
    } else {
        None
    };

    let bar = stage::progress(work.iter().map(|w| w.1.len()).sum(), "records");
    // Groups in chunks of about `batch_size` texts, embedded together.
    let chunk_texts = options.batch_size.max(1) * 2;
    let mut start = 0;
    while start < work.len() {
        let mut end = start;
        let mut n = 0;
        while end < work.len() && (n == 0 || n + work[end].0.members.len() <= chunk_texts) {
            if work[end].2 {
                n += work[end].0.members.len();
            }
            end += 1;
        }
        let chunk = &work[start..end];
        let texts: Vec<&str> = chunk
            .iter()
            .filter(|w| w.2)
            .flat_map(|w| w.0.members.iter().map(|&i| records[i].generation.as_str()))
            .collect();
        let mut embeddings = match (&embedder, texts.is_empty()) {
            (Some(e), false) => e.embed(&texts, options.batch_size)?,
            _ => Vec::new(),
        }
        .into_iter();
        for (g, todo, label) in chunk {
            let values = if *label {
                let texts: Vec<&str> = g
                    .members
                    .iter()
                    .map(|&i| records[i].generation.as_str())
                    .collect();
                let emb: Vec<Vec<f32>> = embeddings.by_ref().take(texts.len()).collect();
                GroupDiversity::of(&texts, &emb)
            } else {
                None
            };
            for &i in todo {
                let mut r = records[i].clone();
                if let Some(v) = &values {
                    v.write_to(&mut r);
                }
                out.append(&r)?;
                bar.inc(1);
            }
        }
        start = end;
    }
    bar.finish_and_clear();
    report.written = out.written();
    if !small.is_empty() {
        report.note(format!(
            "{} group(s) of a single generation written without diversity labels (self-BLEU and \
             embedding entropy need two or more seeds): {}",
            small.len(),
            name_list(&small)
        ));
    }
    if unchecked > 0 {
        report.note(format!(
            "{unchecked} group(s) whose prompt's checks do not include diversity written without \
             diversity labels"
        ));
    }
    Ok(report)
}
