//! `score`: from labelled candidates to the training file (SPEC 4, "Scoring"): z-normalised
//! quality and diversity and the verifiable reward combined into one score per generation,
//! then the top k of each (prompt, seed) kept.
//!
//! ```text
//! q = z(quality)              over every row with a quality label
//! d = z(±diversity)           over the rows whose checks include diversity (oriented so that
//!                             higher = more diverse: self-BLEU enters negated)
//! v = verified ∈ {0, 1}       on the rows whose checks include verifiable
//! score = (b·q + a·d·[div] + c·v·[verif]) / (b + a·[div] + c·[verif])
//! ```
//!
//! With verifiable filtering (the default) a verifiable row that is not correct is dropped
//! (so a (prompt, seed) group with verifiable rewards keeps only correct items) and `v` is 1 on
//! every row left; with it off, incorrect rows stay and `v` is their actual reward — never a
//! constant added whatever the correctness (the reference implementation's bug).
//!
//! Weights come from the grid a ∈ {.1,.3,.5,.7,.9} (diversity), b ∈ {.5,.6,.7,.8,.9} (quality),
//! c ∈ {.1,.3,.5,.7,.9} (verifiable); a weight outside its grid is an error (the reference
//! scored every row −999 and kept input order). The reference default is a .1, b .9, c .9,
//! top 1.
//!
//! Output: the kept records (input order, with [`labels::SCORE`] added) — the JSONL training
//! file `train` reads — written atomically. [`score_grid`] instead writes one training file per
//! grid point (125) into a directory, so samplers trained on each weighting can be compared:
//! which weighting is best is a downstream question the grid exists to answer.
//!
//! A row lacking a label its score needs (quality; diversity when its checks ask for it;
//! `verified` when verifiable) is dropped and counted in the report, never scored with a
//! stand-in number.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use adasamp_engine::files::write_atomic_with;
use adasamp_engine::record::{write_record, CandidateRecord};
use serde_json::Value;

use crate::error::{CurateError, Result};
use crate::labels;
use crate::prompt::Check;
use crate::stage::{progress, read_records, record_name, CandidateKey, StageReport};

/// The diversity weights `a` may take.
pub const A_GRID: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];
/// The quality weights `b` may take.
pub const B_GRID: [f64; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];
/// The verifiable weights `c` may take.
pub const C_GRID: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];

/// The weights of the score: `a` diversity, `b` quality, `c` verifiable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Diversity weight.
    pub a: f64,
    /// Quality weight.
    pub b: f64,
    /// Verifiable weight.
    pub c: f64,
}

impl Weights {
    /// The reference implementation's default: a .1, b .9, c .9.
    pub const REFERENCE: Weights = Weights {
        a: 0.1,
        b: 0.9,
        c: 0.9,
    };

    /// Weights on the grid; a weight outside its grid is an error naming it and the grid.
    pub fn on_grid(a: f64, b: f64, c: f64) -> Result<Self> {
        for (name, v, grid) in [("a", a, &A_GRID), ("b", b, &B_GRID), ("c", c, &C_GRID)] {
            if !grid.iter().any(|g| (g - v).abs() < 1e-9) {
                return Err(CurateError::BadParameter {
                    name: format!("weight {name}"),
                    value: v.to_string(),
                    message: format!("not on the weight grid {grid:?}"),
                });
            }
        }
        Ok(Self { a, b, c })
    }

    /// Every grid point, a slowest then b then c.
    pub fn grid() -> impl Iterator<Item = Weights> {
        A_GRID.into_iter().flat_map(|a| {
            B_GRID
                .into_iter()
                .flat_map(move |b| C_GRID.into_iter().map(move |c| Weights { a, b, c }))
        })
    }

    /// `a0.1_b0.9_c0.9`: the grid point's name (file names of [`score_grid`]).
    pub fn key(&self) -> String {
        format!("a{}_b{}_c{}", self.a, self.b, self.c)
    }
}

impl std::str::FromStr for Weights {
    type Err = CurateError;

    /// `a,b,c` (e.g. `0.1,0.9,0.9`), each on its grid.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |message: String| CurateError::BadParameter {
            name: "weights".into(),
            value: s.to_string(),
            message,
        };
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [a, b, c] = parts.as_slice() else {
            return Err(bad(format!(
                "expected three numbers a,b,c (diversity, quality, verifiable), got {}",
                parts.len()
            )));
        };
        let num = |name: &str, t: &str| {
            t.parse::<f64>()
                .map_err(|e| bad(format!("weight {name} = {t:?}: {e}")))
        };
        Self::on_grid(num("a", a)?, num("b", b)?, num("c", c)?)
    }
}

/// Which diversity label `d` is read from (all oriented so that higher = more diverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diversity {
    /// `−self_bleu`.
    SelfBleu,
    /// `−log_self_bleu`.
    LogSelfBleu,
    /// `embedding_entropy`.
    EmbeddingEntropy,
    /// `log_embedding_entropy` (the default: the reference stores the log forms, and embedding
    /// entropy measures meaning rather than shared n-grams).
    LogEmbeddingEntropy,
}

impl Diversity {
    /// Every measure with its name.
    pub const ALL: [(&'static str, Diversity); 4] = [
        ("self-bleu", Diversity::SelfBleu),
        ("log-self-bleu", Diversity::LogSelfBleu),
        ("embedding-entropy", Diversity::EmbeddingEntropy),
        ("log-embedding-entropy", Diversity::LogEmbeddingEntropy),
    ];

    /// The record field it reads.
    pub fn label(self) -> &'static str {
        match self {
            Diversity::SelfBleu => labels::SELF_BLEU,
            Diversity::LogSelfBleu => labels::LOG_SELF_BLEU,
            Diversity::EmbeddingEntropy => labels::EMBEDDING_ENTROPY,
            Diversity::LogEmbeddingEntropy => labels::LOG_EMBEDDING_ENTROPY,
        }
    }

    /// +1 when a higher value means more diverse, −1 when less (self-BLEU: overlap).
    pub fn orientation(self) -> f64 {
        match self {
            Diversity::SelfBleu | Diversity::LogSelfBleu => -1.0,
            Diversity::EmbeddingEntropy | Diversity::LogEmbeddingEntropy => 1.0,
        }
    }
}

impl std::str::FromStr for Diversity {
    type Err = CurateError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|&(_, d)| d)
            .ok_or_else(|| CurateError::BadParameter {
                name: "diversity measure".into(),
                value: s.into(),
                message: format!("unknown; one of {}", Self::ALL.map(|(n, _)| n).join(", ")),
            })
    }
}

/// Which label `q` is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quality {
    /// The tournament's Bradley–Terry rating, [`labels::QUALITY`].
    Rating,
    /// The reward endpoint's score, [`labels::REWARD`].
    Reward,
}

impl Quality {
    /// The record field it reads.
    pub fn label(self) -> &'static str {
        match self {
            Quality::Rating => labels::QUALITY,
            Quality::Reward => labels::REWARD,
        }
    }
}

impl std::str::FromStr for Quality {
    type Err = CurateError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rating" => Ok(Quality::Rating),
            "reward" => Ok(Quality::Reward),
            other => Err(CurateError::BadParameter {
                name: "quality label".into(),
                value: other.into(),
                message: "unknown; one of rating, reward".into(),
            }),
        }
    }
}

/// How rows are scored and kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOptions {
    /// Generations kept per (prompt, seed).
    pub top_k: usize,
    /// The diversity label.
    pub diversity: Diversity,
    /// The quality label.
    pub quality: Quality,
    /// Drop verifiable rows that are not correct (else score them with their reward).
    pub verifiable_filter: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            top_k: 1,
            diversity: Diversity::LogEmbeddingEntropy,
            quality: Quality::Rating,
            verifiable_filter: true,
        }
    }
}

/// A row ready to score: its z-normalised terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Index of the record in the input.
    pub index: usize,
    /// Its key.
    pub key: CandidateKey,
    /// z-normalised quality.
    pub q: f64,
    /// z-normalised, oriented diversity, when its checks ask for diversity.
    pub d: Option<f64>,
    /// Its verifiable reward, when its checks include verifiable.
    pub v: Option<f64>,
}

impl Row {
    /// `(b·q + a·d·[div] + c·v·[verif]) / (b + a·[div] + c·[verif])`.
    pub fn score(&self, w: &Weights) -> f64 {
        let (mut num, mut den) = (w.b * self.q, w.b);
        if let Some(d) = self.d {
            num += w.a * d;
            den += w.a;
        }
        if let Some(v) = self.v {
            num += w.c * v;
            den += w.c;
        }
        num / den
    }
}

/// The rows that can be scored, and how many records were dropped before scoring, by reason.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prepared {
    /// The rows, in input order.
    pub rows: Vec<Row>,
    /// Dropped records by reason.
    pub dropped: Vec<(String, usize)>,
    /// (prompt, seed) groups with verifiable rewards where no generation was correct.
    pub groups_without_correct: usize,
}

/// A number label of `r`: `None` when absent or `null`; an error when of another type.
fn number(r: &CandidateRecord, field: &str) -> Result<Option<f64>> {
    match r.extra.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::Bool(b)) if field == labels::VERIFIED => Ok(Some(f64::from(u8::from(*b)))),
        Some(other) => Err(CurateError::BadField {
            id: record_name(r),
            field: field.into(),
            message: format!("expected a number, got {other}"),
        }),
    }
}

/// The checks of `r` (none when absent).
fn checks(r: &CandidateRecord) -> Result<Vec<Check>> {
    match r.extra.get(labels::CHECKS) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| CurateError::BadField {
            id: record_name(r),
            field: labels::CHECKS.into(),
            message: format!("{e} (expected a list of \"diversity\" / \"verifiable\")"),
        }),
    }
}

/// `(x − mean) / std` over `values` (population standard deviation; 0 when all are equal).
pub fn z_normalise(values: &[f64]) -> Vec<f64> {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let std = var.sqrt();
    values
        .iter()
        .map(|x| if std > 0.0 { (x - mean) / std } else { 0.0 })
        .collect()
}

/// Reads the labels of `records`, drops the rows that cannot be scored (missing labels;
/// incorrect verifiable rows when filtering) and z-normalises quality and diversity.
pub fn prepare(records: &[CandidateRecord], opts: &ScoreOptions) -> Result<Prepared> {
    struct Raw {
        key: CandidateKey,
        q: Option<f64>,
        d: Option<Option<f64>>,
        v: Option<Option<f64>>,
    }
    let mut raws = Vec::with_capacity(records.len());
    for r in records {
        let cs = checks(r)?;
        let d = if cs.contains(&Check::Diversity) {
            Some(number(r, opts.diversity.label())?.map(|x| opts.diversity.orientation() * x))
        } else {
            None
        };
        let v = if cs.contains(&Check::Verifiable) {
            let v = number(r, labels::VERIFIED)?;
            if let Some(x) = v.filter(|x| !(0.0..=1.0).contains(x)) {
                return Err(CurateError::BadField {
                    id: record_name(r),
                    field: labels::VERIFIED.into(),
                    message: format!("{x} is not a reward in [0, 1]"),
                });
            }
            Some(v)
        } else {
            None
        };
        raws.push(Raw {
            key: CandidateKey::of(r)?,
            q: number(r, opts.quality.label())?,
            d,
            v,
        });
    }
    let q_label = opts.quality.label();
    if raws.iter().all(|r| r.q.is_none()) && !raws.is_empty() {
        let other = match opts.quality {
            Quality::Rating => Quality::Reward,
            Quality::Reward => Quality::Rating,
        };
        let hint = if records.iter().any(|r| r.extra.contains_key(other.label())) {
            format!(
                " (they carry `{}`: score by that label instead)",
                other.label()
            )
        } else {
            String::new()
        };
        return Err(CurateError::BadField {
            id: "(every record)".into(),
            field: q_label.into(),
            message: format!("no record has a quality label{hint}"),
        });
    }
    // z over every row that has the label
    let zq = z_normalise(&raws.iter().filter_map(|r| r.q).collect::<Vec<_>>());
    let zd = z_normalise(
        &raws
            .iter()
            .filter_map(|r| r.d.flatten())
            .collect::<Vec<_>>(),
    );
    let (mut zq, mut zd) = (zq.into_iter(), zd.into_iter());
    let mut prepared = Prepared::default();
    let mut dropped: HashMap<String, usize> = HashMap::new();
    let mut verifiable_groups: HashMap<(String, u64), bool> = HashMap::new();
    for (index, raw) in raws.into_iter().enumerate() {
        let q = raw.q.and_then(|_| zq.next());
        let d = raw.d.map(|d| d.and_then(|_| zd.next()));
        let reason = if q.is_none() {
            Some(format!("no `{q_label}` label"))
        } else if d == Some(None) {
            Some(format!(
                "checks ask for diversity but no `{}` label",
                opts.diversity.label()
            ))
        } else if raw.v == Some(None) {
            Some(format!("verifiable but no `{}` label", labels::VERIFIED))
        } else {
            None
        };
        if let Some(Some(v)) = raw.v {
            let any = verifiable_groups
                .entry((raw.key.prompt_id.clone(), raw.key.seed))
                .or_default();
            *any |= v >= 1.0;
        }
        let reason = reason.or_else(|| match raw.v {
            Some(Some(v)) if opts.verifiable_filter && v < 1.0 => {
                Some("verifiable and not correct".to_string())
            }
            _ => None,
        });
        if let Some(why) = reason {
            *dropped.entry(why).or_default() += 1;
            continue;
        }
        prepared.rows.push(Row {
            index,
            key: raw.key,
            q: q.unwrap_or(0.0),
            d: d.flatten(),
            v: raw.v.flatten(),
        });
    }
    prepared.groups_without_correct = verifiable_groups.values().filter(|&&any| !any).count();
    let mut dropped: Vec<_> = dropped.into_iter().collect();
    dropped.sort();
    prepared.dropped = dropped;
    Ok(prepared)
}

/// The rows kept under `w`: per (prompt, seed), the `top_k` best scores (ties: pipeline name);
/// returned as `(row, score)` in input order.
pub fn select(rows: &[Row], w: &Weights, top_k: usize) -> Vec<(usize, f64)> {
    let mut groups: HashMap<(&str, u64), Vec<(usize, f64)>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        groups
            .entry((r.key.prompt_id.as_str(), r.key.seed))
            .or_default()
            .push((i, r.score(w)));
    }
    let mut kept = Vec::new();
    for (_, mut members) in groups {
        members.sort_by(|x, y| {
            y.1.total_cmp(&x.1)
                .then_with(|| rows[x.0].key.pipeline.cmp(&rows[y.0].key.pipeline))
        });
        kept.extend(members.into_iter().take(top_k));
    }
    kept.sort_by_key(|k| k.0);
    kept
}

/// Writes the kept records with their score, atomically.
fn write_training_file(
    path: &Path,
    records: &[CandidateRecord],
    rows: &[Row],
    kept: &[(usize, f64)],
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    write_atomic_with(path, |f, tmp| -> Result<()> {
        let mut w = std::io::BufWriter::new(f);
        for &(i, s) in kept {
            let mut r = records[rows[i].index].clone();
            let score = serde_json::Number::from_f64(s).map_or(Value::Null, Value::Number);
            r.extra.insert(labels::SCORE.into(), score);
            write_record(&mut w, &r).map_err(CurateError::io(tmp))?;
            bar.inc(1);
        }
        w.flush().map_err(CurateError::io(tmp))
    })
}

/// Checks the options shared by both entry points.
fn check(opts: &ScoreOptions) -> Result<()> {
    if opts.top_k == 0 {
        return Err(CurateError::BadParameter {
            name: "top k".into(),
            value: "0".into(),
            message: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// The report's part shared by both entry points.
fn base_report(
    stage: &str,
    output: &Path,
    read: usize,
    p: &Prepared,
    opts: &ScoreOptions,
) -> StageReport {
    let mut report = StageReport::new(stage, output);
    report.read = read;
    for (why, n) in &p.dropped {
        report.drop(why.clone(), *n);
    }
    report.note(format!(
        "quality from `{}`, diversity from `{}`{}, verifiable filtering {}",
        opts.quality.label(),
        opts.diversity.label(),
        if opts.diversity.orientation() < 0.0 {
            " (negated)"
        } else {
            ""
        },
        if opts.verifiable_filter { "on" } else { "off" }
    ));
    if p.groups_without_correct > 0 {
        report.note(format!(
            "{} (prompt, seed) groups with verifiable rewards had no correct generation",
            p.groups_without_correct
        ));
    }
    report
}

/// Scores `input` with `weights` and writes the training file `output` (see the module doc).
pub fn score(
    input: &Path,
    output: &Path,
    weights: &Weights,
    opts: &ScoreOptions,
) -> Result<StageReport> {
    check(opts)?;
    let records = read_records(input)?;
    let p = prepare(&records, opts)?;
    let kept = select(&p.rows, weights, opts.top_k);
    let bar = progress(kept.len(), "records");
    write_training_file(output, &records, &p.rows, &kept, &bar)?;
    bar.finish_and_clear();
    let mut report = base_report("score", output, records.len(), &p, opts);
    report.drop(
        format!("not in the top {} of its (prompt, seed)", opts.top_k),
        p.rows.len() - kept.len(),
    );
    report.written = kept.len();
    report.note(format!("weights {}", weights.key()));
    if kept.is_empty() {
        report.note("nothing kept: training needs at least one record");
    }
    Ok(report)
}

/// The training file of grid point `w` inside `dir`: `score_<key>.jsonl`.
pub fn grid_file(dir: &Path, w: &Weights) -> PathBuf {
    dir.join(format!("score_{}.jsonl", w.key()))
}

/// Scores `input` at every grid point and writes one training file per point into `dir`
/// ([`grid_file`]); the report counts the records of one file (every file keeps the same number)
/// and says how many groups pick the same generations at every point.
pub fn score_grid(input: &Path, dir: &Path, opts: &ScoreOptions) -> Result<StageReport> {
    check(opts)?;
    let records = read_records(input)?;
    let p = prepare(&records, opts)?;
    std::fs::create_dir_all(dir).map_err(CurateError::io(dir))?;
    let points: Vec<Weights> = Weights::grid().collect();
    let bar = progress(points.len(), "grid points");
    let mut picks: HashMap<(&str, u64), Vec<Vec<usize>>> = HashMap::new();
    let mut per_file = 0;
    for w in &points {
        let kept = select(&p.rows, w, opts.top_k);
        let quiet = indicatif::ProgressBar::hidden();
        write_training_file(&grid_file(dir, w), &records, &p.rows, &kept, &quiet)?;
        per_file = kept.len();
        let mut by_group: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
        for &(i, _) in &kept {
            let k = &p.rows[i].key;
            by_group
                .entry((k.prompt_id.as_str(), k.seed))
                .or_default()
                .push(i);
        }
        for (g, v) in by_group {
            picks.entry(g).or_default().push(v);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut report = base_report("score --grid", dir, records.len(), &p, opts);
    report.drop(
        format!(
            "not in the top {} of its (prompt, seed) (per file)",
            opts.top_k
        ),
        p.rows.len() - per_file,
    );
    report.written = per_file;
    let stable = picks
        .values()
        .filter(|v| v.windows(2).all(|w| w[0] == w[1]))
        .count();
    report.note(format!(
        "{} grid points, one training file each (score_a*_b*_c*.jsonl), {per_file} records per file; \
         {stable} of {} (prompt, seed) groups keep the same generations at every grid point",
        points.len(),
        picks.len()
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::groups::tests::rec;
    use serde_json::json;

    fn labelled(
        p: &str,
        pipe: &str,
        seed: u64,
        q: f64,
        extra: &[(&str, Value)],
    ) -> CandidateRecord {
        let mut r = rec(p, pipe, seed, "g");
        r.extra.insert(labels::QUALITY.into(), json!(q));
        for (k, v) in extra {
            r.extra.insert((*k).into(), v.clone());
        }
        r
    }

    #[test]
    fn weights_must_be_on_the_grid() {
        let w: Weights = "0.1,0.9,0.9".parse().unwrap();
        assert_eq!(w, Weights::REFERENCE);
        assert_eq!(w.key(), "a0.1_b0.9_c0.9");
        for (bad, want) in [
            ("0.2,0.9,0.9", "weight a = 0.2"),
            ("0.1,0.4,0.9", "weight b = 0.4"),
            ("0.1,0.9,1", "weight c = 1"),
            ("0.1,0.9", "three numbers"),
            ("0.1,x,0.9", "weight b = \"x\""),
        ] {
            let e = bad.parse::<Weights>().unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
        assert_eq!(Weights::grid().count(), 125);
        assert!(Weights::grid().all(|w| Weights::on_grid(w.a, w.b, w.c).is_ok()));
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            "log-self-bleu".parse::<Diversity>().unwrap(),
            Diversity::LogSelfBleu
        );
        assert!("bleu"
            .parse::<Diversity>()
            .unwrap_err()
            .to_string()
            .contains("embedding-entropy"));
        assert_eq!("reward".parse::<Quality>().unwrap(), Quality::Reward);
        assert!("stars".parse::<Quality>().is_err());
    }

    #[test]
    fn z_scores() {
        let z = z_normalise(&[1.0, 2.0, 3.0]);
        let s = (2.0f64 / 3.0).sqrt();
        assert!(
            (z[0] + 1.0 / s).abs() < 1e-12 && z[1].abs() < 1e-12 && (z[2] - 1.0 / s).abs() < 1e-12
        );
        assert_eq!(z_normalise(&[4.0, 4.0]), [0.0, 0.0]);
        assert!(z_normalise(&[]).is_empty());
    }

    #[test]
    fn the_formula() {
        let key = CandidateKey {
            prompt_id: "p".into(),
            pipeline: "x".into(),
            seed: 0,
        };
        let w = Weights {
            a: 0.3,
            b: 0.6,
            c: 0.5,
        };
        let row = |d, v| Row {
            index: 0,
            key: key.clone(),
            q: 1.5,
            d,
            v,
        };
        assert!((row(None, None).score(&w) - 1.5).abs() < 1e-12);
        assert!((row(Some(-1.0), None).score(&w) - (0.6 * 1.5 - 0.3) / 0.9).abs() < 1e-12);
        assert!((row(None, Some(1.0)).score(&w) - (0.9 + 0.5) / 1.1).abs() < 1e-12);
        assert!((row(None, Some(0.0)).score(&w) - 0.9 / 1.1).abs() < 1e-12);
        assert!((row(Some(2.0), Some(1.0)).score(&w) - (0.9 + 0.6 + 0.5) / 1.4).abs() < 1e-12);
    }

    #[test]
    fn diversity_normalised_over_rows_that_ask_for_it_and_oriented() {
        let div = json!(["diversity"]);
        let recs = vec![
            labelled(
                "p",
                "x",
                0,
                1.0,
                &[
                    (labels::CHECKS, div.clone()),
                    (labels::SELF_BLEU, json!(10.0)),
                ],
            ),
            labelled(
                "p",
                "y",
                0,
                0.0,
                &[
                    (labels::CHECKS, div.clone()),
                    (labels::SELF_BLEU, json!(30.0)),
                ],
            ),
            // no diversity check: its self-BLEU is ignored
            labelled("o", "x", 0, 2.0, &[(labels::SELF_BLEU, json!(1000.0))]),
        ];
        let opts = ScoreOptions {
            diversity: Diversity::SelfBleu,
            ..Default::default()
        };
        let p = prepare(&recs, &opts).unwrap();
        assert_eq!(p.rows.len(), 3);
        // less self-BLEU = more diverse = higher d
        assert_eq!(p.rows[0].d, Some(1.0));
        assert_eq!(p.rows[1].d, Some(-1.0));
        assert_eq!(p.rows[2].d, None);
        // quality over all three rows
        let zq = z_normalise(&[1.0, 0.0, 2.0]);
        assert_eq!(p.rows.iter().map(|r| r.q).collect::<Vec<_>>(), zq);
    }

    #[test]
    fn verifiable_filtering_keeps_only_correct_items() {
        let ver = json!(["verifiable"]);
        let recs = vec![
            labelled(
                "m",
                "x",
                0,
                2.0,
                &[(labels::CHECKS, ver.clone()), (labels::VERIFIED, json!(0))],
            ),
            labelled(
                "m",
                "y",
                0,
                0.0,
                &[(labels::CHECKS, ver.clone()), (labels::VERIFIED, json!(1))],
            ),
            labelled(
                "m",
                "z",
                0,
                1.0,
                &[
                    (labels::CHECKS, ver.clone()),
                    (labels::VERIFIED, json!(true)),
                ],
            ),
            labelled(
                "m",
                "x",
                1,
                1.0,
                &[
                    (labels::CHECKS, ver.clone()),
                    (labels::VERIFIED, json!(0.0)),
                ],
            ),
        ];
        let p = prepare(&recs, &ScoreOptions::default()).unwrap();
        let kept: Vec<_> = p.rows.iter().map(|r| r.key.record_id()).collect();
        assert_eq!(kept, ["m/y/s0", "m/z/s0"]);
        assert_eq!(p.dropped, [("verifiable and not correct".to_string(), 2)]);
        assert_eq!(p.groups_without_correct, 1);
        let top = select(&p.rows, &Weights::REFERENCE, 1);
        // the best *correct* one wins, though the incorrect x had the highest quality
        assert_eq!(p.rows[top[0].0].key.pipeline, "z");
        // filtering off: the incorrect one is scored with v = 0, not a constant
        let off = ScoreOptions {
            verifiable_filter: false,
            ..Default::default()
        };
        let p = prepare(&recs, &off).unwrap();
        assert_eq!(p.rows.len(), 4);
        let w = Weights {
            a: 0.1,
            b: 0.5,
            c: 0.9,
        };
        let x = p
            .rows
            .iter()
            .find(|r| r.key.record_id() == "m/x/s0")
            .unwrap();
        let z = p
            .rows
            .iter()
            .find(|r| r.key.record_id() == "m/z/s0")
            .unwrap();
        assert_eq!((x.v, z.v), (Some(0.0), Some(1.0)));
        // x's quality lead is smaller than correctness's weight: z wins
        let top = select(&p.rows, &w, 1);
        let winners: Vec<_> = top
            .iter()
            .map(|&(i, _)| p.rows[i].key.record_id())
            .collect();
        assert_eq!(winners, ["m/z/s0", "m/x/s1"]);
    }

    #[test]
    fn rows_missing_labels_are_dropped_not_scored() {
        let recs = vec![
            labelled("p", "x", 0, 1.0, &[]),
            rec("p", "y", 0, "no quality"),
            labelled("p", "z", 0, 1.0, &[(labels::CHECKS, json!(["diversity"]))]),
            labelled(
                "p",
                "w",
                0,
                1.0,
                &[
                    (labels::CHECKS, json!(["verifiable"])),
                    (labels::VERIFIED, Value::Null),
                ],
            ),
        ];
        let p = prepare(&recs, &ScoreOptions::default()).unwrap();
        assert_eq!(p.rows.len(), 1);
        let reasons: Vec<_> = p.dropped.iter().map(|(r, n)| format!("{n} {r}")).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("no `quality` label")));
        assert!(reasons
            .iter()
            .any(|r| r.contains("no `log_embedding_entropy` label")));
        assert!(reasons.iter().any(|r| r.contains("no `verified` label")));
        // wrong types are errors naming record and field
        let mut bad = labelled("p", "x", 0, 1.0, &[]);
        bad.extra.insert(labels::QUALITY.into(), json!("high"));
        let e = prepare(&[bad], &ScoreOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("p/x/s0") && e.contains("quality"), "{e}");
        let bad = labelled(
            "p",
            "x",
            0,
            1.0,
            &[
                (labels::CHECKS, json!(["verifiable"])),
                (labels::VERIFIED, json!(3)),
            ],
        );
        assert!(prepare(&[bad], &ScoreOptions::default())
            .unwrap_err()
            .to_string()
            .contains("[0, 1]"));
        let bad = labelled("p", "x", 0, 1.0, &[(labels::CHECKS, json!(["fun"]))]);
        assert!(prepare(&[bad], &ScoreOptions::default())
            .unwrap_err()
            .to_string()
            .contains("checks"));
        // no quality label anywhere, but rewards: says so
        let mut r = rec("p", "x", 0, "g");
        r.extra.insert(labels::REWARD.into(), json!(0.3));
        let e = prepare(&[r.clone()], &ScoreOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("carry `reward`"), "{e}");
        let by_reward = ScoreOptions {
            quality: Quality::Reward,
            ..Default::default()
        };
        assert_eq!(prepare(&[r], &by_reward).unwrap().rows.len(), 1);
    }

    #[test]
    fn top_k_per_prompt_and_seed_with_ties_by_pipeline() {
        let recs = vec![
            labelled("p", "b", 0, 1.0, &[]),
            labelled("p", "a", 0, 1.0, &[]),
            labelled("p", "c", 0, 3.0, &[]),
            labelled("p", "a", 1, 0.0, &[]),
            labelled("q", "a", 0, -1.0, &[]),
        ];
        let p = prepare(&recs, &ScoreOptions::default()).unwrap();
        let ids = |k| {
            select(&p.rows, &Weights::REFERENCE, k)
                .into_iter()
                .map(|(i, _)| p.rows[i].key.record_id())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(1), ["p/c/s0", "p/a/s1", "q/a/s0"]);
        assert_eq!(ids(2), ["p/a/s0", "p/c/s0", "p/a/s1", "q/a/s0"]);
        assert_eq!(ids(9).len(), 5);
    }

    #[test]
    fn writes_the_training_file_and_the_grid() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("labelled.jsonl");
        let div = json!(["diversity"]);
        let mut text = Vec::new();
        for (pipe, q, e) in [("x", 2.0, 0.1), ("y", 1.0, 3.0), ("z", 0.0, 1.0)] {
            for seed in 0..2 {
                let r = labelled(
                    "p",
                    pipe,
                    seed,
                    q,
                    &[
                        (labels::CHECKS, div.clone()),
                        (labels::LOG_EMBEDDING_ENTROPY, json!(e)),
                    ],
                );
                write_record(&mut text, &r).unwrap();
            }
        }
        std::fs::write(&input, text).unwrap();
        let out = dir.path().join("train.jsonl");
        let r = score(&input, &out, &Weights::REFERENCE, &ScoreOptions::default()).unwrap();
        assert_eq!((r.read, r.written, r.dropped_total()), (6, 2, 4), "{r}");
        let back = read_records(&out).unwrap();
        assert!(back
            .iter()
            .all(|r| r.sampler_info.name == "x" && r.extra[labels::SCORE].is_number()));
        // the grid: 125 files with 2 records each; with the most diversity weight, y can win
        let grid = dir.path().join("grid");
        let r = score_grid(&input, &grid, &ScoreOptions::default()).unwrap();
        assert_eq!(r.written, 2);
        assert_eq!(std::fs::read_dir(&grid).unwrap().count(), 125);
        let pick = |w: &Weights| {
            read_records(&grid_file(&grid, w)).unwrap()[0]
                .sampler_info
                .name
                .clone()
        };
        assert_eq!(pick(&Weights::REFERENCE), "x");
        assert_eq!(
            pick(&Weights {
                a: 0.9,
                b: 0.5,
                c: 0.1
            }),
            "y"
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("0 of 2 (prompt, seed) groups keep the same")),
            "{r}"
        );
        // top-k 0 is an error
        let e = score(
            &input,
            &out,
            &Weights::REFERENCE,
            &ScoreOptions {
                top_k: 0,
                ..Default::default()
            },
        );
        assert!(e.unwrap_err().to_string().contains("top k"));
    }
}
