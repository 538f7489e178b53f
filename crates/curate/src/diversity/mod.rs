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
//! Every group is labelled by default, whatever its prompt's checks: self-BLEU is cheap
//! (thousands of records per CPU-second), the embeddings are nearly all the cost (about 4 to
//! 17 records per CPU-second for 240 to 70 tokens; `examples/diversity_throughput.rs`), and
//! `score` reads the labels only where the prompt's checks include `diversity`. [`DiversityOptions::only_checked`]
//! labels only those groups. A group of fewer than two generations cannot be scored: its
//! records are written without the labels and the report says which groups they were.
//!
//! Resumable per group: a rerun skips the records already in the output; a group an interrupted
//! run wrote in part gets the rest of its records with the labels of its members already
//! written (so a group's members agree, up to a float's last bit through JSON); a group not
//! started is computed whole before any of its records is written.

pub mod bleu;
pub mod embed;
pub mod entropy;
pub mod tokenizer_13a;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use adasamp_engine::record::CandidateRecord;
use serde_json::{Map, Value};

use crate::error::{CurateError, Result};
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

    /// The four label fields: [`labels::SELF_BLEU`], [`labels::LOG_SELF_BLEU`],
    /// [`labels::EMBEDDING_ENTROPY`], [`labels::LOG_EMBEDDING_ENTROPY`].
    pub fn labels(&self) -> Map<String, Value> {
        [
            self.self_bleu,
            log_floored(self.self_bleu),
            self.embedding_entropy,
            log_floored(self.embedding_entropy),
        ]
        .into_iter()
        .zip(LABELS)
        .map(|(v, k)| (k.to_string(), Value::from(v)))
        .collect()
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

/// The four diversity labels, in the order they are written.
const LABELS: [&str; 4] = [
    labels::SELF_BLEU,
    labels::LOG_SELF_BLEU,
    labels::EMBEDDING_ENTROPY,
    labels::LOG_EMBEDDING_ENTROPY,
];

/// How the records a group still needs get their labels.
enum Plan {
    /// Computed now from the whole group.
    Compute,
    /// Copied from a member an interrupted run already wrote (or, when that member has none,
    /// left out), so a group's members agree (not recomputed with other batch padding).
    Copy(Map<String, Value>),
    /// Not labelled: fewer than two generations, or not asked for.
    Unlabelled,
}

/// A group with records left to write.
struct Pending<'a> {
    group: &'a Group,
    todo: Vec<usize>,
    plan: Plan,
}

impl Pending<'_> {
    /// Texts this group adds to an embedding batch.
    fn texts(&self) -> usize {
        match self.plan {
            Plan::Compute => self.group.members.len(),
            _ => 0,
        }
    }
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
    if options.batch_size == 0 {
        return Err(CurateError::BadParameter {
            name: "batch_size".into(),
            value: "0".into(),
            message: "texts per embedding batch must be at least 1".into(),
        });
    }
    let records = stage::read_records(input)?;
    let mut report = StageReport::new("label diversity", output);
    report.read = records.len();
    let groups = group_records(&records, &mut report)?;
    let reopened = stage::reopen_output(output)?;
    let mut out = reopened.output;
    let mut done: HashMap<CandidateKey, &CandidateRecord> = HashMap::new();
    for r in &reopened.done {
        done.insert(CandidateKey::of(r)?, r);
    }
    report.already_done = reopened.done.len();
    if reopened.dropped_torn_line {
        report.note("cut a half-written last line left by an interrupted run");
    }

    let mut small = Vec::new();
    let mut unchecked = 0usize;
    let mut pending: Vec<Pending> = Vec::new();
    for g in &groups {
        let mut todo = Vec::new();
        let mut written = None;
        for &i in &g.members {
            match done.get(&CandidateKey::of(&records[i])?) {
                Some(r) => written = written.or(Some(*r)),
                None => todo.push(i),
            }
        }
        if todo.is_empty() {
            continue;
        }
        let plan = if let Some(r) = written {
            let kept = LABELS
                .iter()
                .filter_map(|&k| Some((k.to_string(), r.extra.get(k)?.clone())))
                .collect();
            Plan::Copy(kept)
        } else if g.members.len() < 2 {
            small.push(format!("{}/{}", g.prompt_id, g.pipeline));
            Plan::Unlabelled
        } else if options.only_checked
            && !g.members.iter().any(|&i| asks_for_diversity(&records[i]))
        {
            unchecked += 1;
            Plan::Unlabelled
        } else {
            Plan::Compute
        };
        pending.push(Pending {
            group: g,
            todo,
            plan,
        });
    }

    let embedder = if pending.iter().any(|p| p.texts() > 0) {
        let dir = match &options.embedder {
            Some(d) => d.clone(),
            None => embed::ensure_default_embedder(log)?,
        };
        log(&format!("loading the embedder from {}", dir.display()));
        Some(Embedder::load(&dir)?)
    } else {
        None
    };

    let bar = stage::progress(pending.iter().map(|p| p.todo.len()).sum(), "records");
    // Groups in chunks of about two batches of texts, embedded together (similar lengths
    // share a batch).
    let chunk_texts = options.batch_size * 2;
    let mut rest = &pending[..];
    while !rest.is_empty() {
        let mut end = 0;
        let mut n = 0;
        while end < rest.len() && (n == 0 || n + rest[end].texts() <= chunk_texts) {
            n += rest[end].texts();
            end += 1;
        }
        let (chunk, next) = rest.split_at(end);
        rest = next;
        let texts: Vec<&str> = chunk
            .iter()
            .filter(|p| p.texts() > 0)
            .flat_map(|p| {
                p.group
                    .members
                    .iter()
                    .map(|&i| records[i].generation.as_str())
            })
            .collect();
        let mut embeddings = match &embedder {
            Some(e) if !texts.is_empty() => e.embed(&texts, options.batch_size)?,
            _ => Vec::new(),
        }
        .into_iter();
        for p in chunk {
            let values = match &p.plan {
                Plan::Compute => {
                    let texts: Vec<&str> = p
                        .group
                        .members
                        .iter()
                        .map(|&i| records[i].generation.as_str())
                        .collect();
                    let emb: Vec<Vec<f32>> = embeddings.by_ref().take(texts.len()).collect();
                    GroupDiversity::of(&texts, &emb).map(|d| d.labels())
                }
                Plan::Copy(m) => Some(m.clone()),
                Plan::Unlabelled => None,
            };
            for &i in &p.todo {
                let mut r = records[i].clone();
                for k in LABELS {
                    r.extra.remove(k);
                }
                if let Some(v) = &values {
                    r.extra.extend(v.clone());
                }
                out.append(&r)?;
                bar.inc(1);
            }
        }
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
