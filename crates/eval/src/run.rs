//! One evaluation from end to end, every step's file in the run directory:
//!
//! ```text
//! contenders.yaml    the contenders' pipelines
//! candidates.jsonl   prompts × contenders × seeds            (curation `candidates`)
//! diversity.jsonl    + self-BLEU, embedding entropy per (prompt, contender)   (`label diversity`)
//! verified.jsonl     + verified 0/1 where prompts carry answers               (`label verify`)
//! judgements.jsonl   the judge's verdict on every pair of contenders per (prompt, seed)
//! imitation.json     learned contenders: KL / truncated mass against the imitated pipeline
//! report.json, report.md
//! ```
//!
//! Each step resumes what an earlier, interrupted run left (kill -9 and rerun: nothing is done
//! twice), so a rerun with the same options only recomputes the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adasamp_curate::candidates::{
    Backend, LocalBackend, RemoteBackend, RemoteConfig, DEFAULT_SYSTEM_PROMPT,
};
use adasamp_curate::diversity::{label_diversity, DiversityOptions};
use adasamp_curate::prompt::read_prompts;
use adasamp_curate::quality::{EndpointJudge, HttpOptions, LocalJudge};
use adasamp_curate::stage::read_records;
use adasamp_curate::verifiable::label::label_verified;
use adasamp_engine::files::write_atomic;
use adasamp_engine::record::NumberedRecord;
use adasamp_engine::{BackendChoice, LoadOptions, LoadedModel};
use adasamp_nets::train::{ReplaySettings, RowPrecision};
use adasamp_sampling::PipelineSet;

use crate::bootstrap::{bootstrap, weighted_mean, Interval};
use crate::contender::{resolve_all, Contender, ContenderKind, ContenderSource};
use crate::error::{EvalError, Result};
use crate::generate::{candidate_set, generate, missing, CANDIDATES};
use crate::imitation::{self, Imitation, IMITATION};
use crate::metrics::PromptTable;
use crate::overlap::check_disjoint;
use crate::rating::{self, JUDGEMENTS};
use crate::report::{Accuracy, Comparison, ContenderResult, EvalReport, Outcome, ReportFiles};

/// The contenders' pipelines file of a run directory.
pub const CONTENDERS: &str = "contenders.yaml";
/// The candidates with diversity labels.
pub const DIVERSITY: &str = "diversity.jsonl";
/// The candidates with diversity and verifiable labels.
pub const VERIFIED: &str = "verified.jsonl";

/// Who judges the pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JudgeChoice {
    /// A model run on this machine (`None`: the default model).
    Local(Option<PathBuf>),
    /// An OpenAI-compatible server (`http://host:port`, `…/v1` or the chat-completions URL),
    /// with the model name to send (`None`: the first it lists).
    Endpoint {
        /// The server's URL.
        url: String,
        /// The model name sent.
        model: Option<String>,
    },
}

impl JudgeChoice {
    /// A URL (`http://`, `https://`) is an endpoint, anything else a local model path; `None`
    /// is the default model.
    pub fn parse(text: Option<&str>) -> Self {
        match text {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                JudgeChoice::Endpoint {
                    url: u.to_string(),
                    model: None,
                }
            }
            Some(p) => JudgeChoice::Local(Some(PathBuf::from(p))),
            None => JudgeChoice::Local(None),
        }
    }

    /// The judge for reports: the model file, or the URL (and model name).
    pub fn describe(&self) -> String {
        match self {
            JudgeChoice::Local(Some(p)) => format!("{} (local)", p.display()),
            JudgeChoice::Local(None) => format!(
                "{} (local, the default model)",
                adasamp_engine::fetch::cached_path(&adasamp_engine::fetch::DEFAULT_MODEL).display()
            ),
            JudgeChoice::Endpoint { url, model } => match model {
                Some(m) => format!("{url} (model {m})"),
                None => url.clone(),
            },
        }
    }
}

/// Everything an evaluation needs. [`EvalOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The held-out prompt file (curation's prompt format).
    pub prompts: PathBuf,
    /// The contenders; the first is the one under test.
    pub contenders: Vec<ContenderSource>,
    /// Seeds per (prompt, contender): `0..seeds` (default 2).
    pub seeds: u64,
    /// Token limit of each generation (default 64).
    pub max_new_tokens: usize,
    /// The generating (and replaying) base model (`None`: the default model).
    pub model: Option<PathBuf>,
    /// The engine backend of local models.
    pub backend: BackendChoice,
    /// Who judges (default: the default model, locally).
    pub judge: JudgeChoice,
    /// Files of the prompts the contenders were trained on (prompt files or candidate /
    /// scored record files); any overlap with the eval prompts is refused. A learned
    /// contender's training data among them tells which pipeline it imitates.
    pub train_prompts: Vec<PathBuf>,
    /// The run directory.
    pub out_dir: PathBuf,
    /// Bootstrap resamples (default 1000).
    pub bootstrap: usize,
    /// Seed of the bootstrap (default 0).
    pub seed: u64,
    /// Sequences decoded together, generating and judging (default 16).
    pub batch_size: usize,
    /// Cap on prompt + generation tokens of local models (default 2048).
    pub max_seq_len: usize,
    /// The system prompt of prompts without their own (`None`: no system message).
    pub system_prompt: Option<String>,
    /// The sentence embedder's directory (`None`: the default all-MiniLM-L6-v2).
    pub embedder: Option<PathBuf>,
    /// OpenAI-compatible servers to generate on instead of the local model (empty: local).
    /// Learned contenders always generate on the local model.
    pub endpoints: Vec<String>,
    /// Bearer key sent to the endpoints (generating and judging), as curation's clients send
    /// it (`Authorization: Bearer KEY`; `None`: no header).
    pub api_key: Option<String>,
    /// Pairs per judge call (default 8: a call's 16 comparisons fill the default batch of 16
    /// sequences; a kill loses at most one call).
    pub judge_batch: usize,
}

impl EvalOptions {
    /// The defaults for `prompts`, `contenders` and the run directory `out_dir`.
    pub fn new(
        prompts: impl Into<PathBuf>,
        contenders: Vec<ContenderSource>,
        out_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            prompts: prompts.into(),
            contenders,
            seeds: 2,
            max_new_tokens: 64,
            model: None,
            backend: BackendChoice::Auto,
            judge: JudgeChoice::Local(None),
            train_prompts: Vec::new(),
            out_dir: out_dir.into(),
            bootstrap: 1000,
            seed: 0,
            batch_size: 16,
            max_seq_len: 2048,
            system_prompt: Some(DEFAULT_SYSTEM_PROMPT.to_string()),
            embedder: None,
            endpoints: Vec::new(),
            api_key: None,
            judge_batch: 8,
        }
    }

    /// Checks the ranges: seeds, max_new_tokens, bootstrap, batch sizes and max_seq_len at
    /// least 1.
    pub fn validate(&self) -> Result<()> {
        let at_least_one = [
            ("seeds", self.seeds as usize),
            ("max_new_tokens", self.max_new_tokens),
            ("bootstrap", self.bootstrap),
            ("batch_size", self.batch_size),
            ("max_seq_len", self.max_seq_len),
            ("judge_batch", self.judge_batch),
        ];
        for (name, v) in at_least_one {
            if v == 0 {
                return Err(EvalError::bad_parameter(name, 0, "must be at least 1"));
            }
        }
        Ok(())
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            max_seq_len: Some(self.max_seq_len),
            max_sequences: Some(self.batch_size),
            ..Default::default()
        }
    }
}

/// Runs the evaluation (see the module doc), progress messages on standard error.
pub fn run(opts: &EvalOptions) -> Result<EvalReport> {
    run_with_log(opts, &mut |m| eprintln!("{m}"))
}

/// Loads a local model.
fn load(path: Option<&Path>, opts: &EvalOptions, log: &mut dyn FnMut(&str)) -> Result<LoadedModel> {
    Ok(adasamp_engine::load(
        path,
        opts.backend,
        opts.load_options(),
        log,
    )?)
}

/// `<stage>: <seconds> s`, for the log.
fn took(stage: &str, since: Instant) -> String {
    format!("{stage}: {:.1} s", since.elapsed().as_secs_f64())
}

/// [`run`], with progress messages going to `log`.
pub fn run_with_log(opts: &EvalOptions, log: &mut dyn FnMut(&str)) -> Result<EvalReport> {
    opts.validate()?;
    let prompts = read_prompts(&opts.prompts)?;
    if prompts.is_empty() {
        return Err(EvalError::bad_parameter(
            "prompts",
            opts.prompts.display(),
            "the file holds no prompt",
        ));
    }
    check_disjoint(&prompts, &opts.train_prompts)?;
    let contenders = resolve_all(&opts.contenders)?;
    let out = &opts.out_dir;
    std::fs::create_dir_all(out).map_err(EvalError::io(out))?;
    let set = PipelineSet::from_pipelines(contenders.iter().map(|c| c.pipeline.clone()).collect());
    write_atomic(&out.join(CONTENDERS), set.to_yaml().as_bytes())?;
    let prompt_ids: Vec<String> = prompts.iter().map(|p| p.id.clone()).collect();
    let names: Vec<String> = contenders.iter().map(|c| c.name.clone()).collect();

    // 1. Generation.
    log(&format!(
        "eval: {} prompts × {} contenders ({}) × {} seeds → {}",
        prompts.len(),
        contenders.len(),
        names.join(", "),
        opts.seeds,
        out.display()
    ));
    let set = candidate_set(
        prompts,
        &contenders,
        opts.seeds,
        opts.max_new_tokens,
        opts.system_prompt.clone(),
    )?;
    let candidates = out.join(CANDIDATES);
    let mut lm: Option<LoadedModel> = None;
    let started = Instant::now();
    let left = missing(&set, &candidates)?;
    if left == 0 {
        log(&format!(
            "candidates: all {} generations already in {}",
            set.jobs().count(),
            candidates.display()
        ));
    } else {
        // A learned sampler runs only here (no server runs its network): with endpoints, the
        // learned contenders generate on the local model and the others on the servers, into
        // the same file (each run skips what is there).
        let (here, remote): (Vec<Contender>, Vec<Contender>) = if opts.endpoints.is_empty() {
            (contenders.clone(), Vec::new())
        } else {
            contenders
                .iter()
                .cloned()
                .partition(|c| c.kind == ContenderKind::Learned)
        };
        let subset = |cs: &[Contender]| {
            candidate_set(
                set.prompts.clone(),
                cs,
                opts.seeds,
                opts.max_new_tokens,
                opts.system_prompt.clone(),
            )
        };
        if !here.is_empty() {
            let model = lm.insert(load(opts.model.as_deref(), opts, log)?);
            let mut backend = Backend::Local(LocalBackend::new(model, opts.batch_size));
            log(&generate(&subset(&here)?, &mut backend, &candidates)?.to_string());
        }
        if !remote.is_empty() {
            let config = RemoteConfig {
                api_key: opts.api_key.clone(),
                ..RemoteConfig::new(opts.endpoints.clone())
            };
            let mut backend = Backend::Remote(RemoteBackend::new(config)?);
            log(&generate(&subset(&remote)?, &mut backend, &candidates)?.to_string());
        }
        log(&took("generation", started));
    }

    // 2. Diversity across seeds, then verifiable answers.
    let mut notes = Vec::new();
    let diversity_input = if opts.seeds >= 2 {
        let diversity = out.join(DIVERSITY);
        let options = DiversityOptions {
            embedder: opts.embedder.clone(),
            ..Default::default()
        };
        let started = Instant::now();
        let report = label_diversity(&candidates, &diversity, &options, log)?;
        log(&report.to_string());
        log(&took("diversity", started));
        diversity
    } else {
        notes.push("one seed per prompt: self-BLEU and embedding entropy need two".to_string());
        candidates.clone()
    };
    let verified = out.join(VERIFIED);
    log(&label_verified(&diversity_input, &verified)?.to_string());
    let records = read_records(&verified)?;

    // 3. The judge on every pair of contenders per (prompt, seed).
    let judgements = out.join(JUDGEMENTS);
    let todo = rating::matches(&records, &prompt_ids, &names, opts.seeds)?;
    let left = rating::missing(&todo, &judgements)?;
    let verdicts = if left == 0 {
        rating::read_verdicts(&judgements)?
    } else {
        log(&format!(
            "judging {left} pairs (both orders) with {}",
            opts.judge.describe()
        ));
        let started = Instant::now();
        let verdicts = match &opts.judge {
            JudgeChoice::Endpoint { url, model } => {
                let mut judge = EndpointJudge::connect(
                    url,
                    model.as_deref(),
                    opts.batch_size,
                    HttpOptions::default(),
                    opts.api_key.as_deref(),
                )?;
                rating::judge_all(&todo, &mut judge, &judgements, opts.judge_batch)?
            }
            JudgeChoice::Local(path) => {
                // The generating model judges too when they are the same file: loaded once.
                let shared = path.as_deref() == opts.model.as_deref();
                let model = match lm.take() {
                    Some(m) if shared => m,
                    other => {
                        lm = other;
                        load(path.as_deref(), opts, log)?
                    }
                };
                let mut judge = LocalJudge::new(model);
                let verdicts = rating::judge_all(&todo, &mut judge, &judgements, opts.judge_batch);
                if shared {
                    lm = Some(judge.into_model());
                }
                verdicts?
            }
        };
        log(&took("judging", started));
        verdicts
    };

    // 4. Learned contenders against the pipeline they imitate.
    let imitation_path = out.join(IMITATION);
    let mut imitations = imitation::read_results(&imitation_path)?;
    for c in contenders
        .iter()
        .filter(|c| c.kind == ContenderKind::Learned)
    {
        let Some(checkpoint) = &c.checkpoint else {
            continue;
        };
        let result = match imitation::imitated_pipeline(checkpoint, &opts.train_prompts)? {
            Err(why) => Imitation::absent(checkpoint, why),
            Ok(target) => {
                let known = imitations.get(&c.name).filter(|m| {
                    m.checkpoint == checkpoint.display().to_string()
                        && m.imitated.as_deref() == Some(target.describe().as_str())
                });
                match known {
                    Some(m) => m.clone(),
                    None => {
                        log(&format!(
                            "measuring `{}` against {}",
                            c.name,
                            target.describe()
                        ));
                        let started = Instant::now();
                        let m = match &target {
                            imitation::Target::Pipeline(spec) => {
                                let mut own: Vec<NumberedRecord> = records
                                    .iter()
                                    .enumerate()
                                    .filter(|(_, r)| r.sampler_info.name == c.name)
                                    .map(|(i, r)| NumberedRecord {
                                        line: i + 1,
                                        record: r.clone(),
                                    })
                                    .collect();
                                // In id order, not file order: a resumed run writes its records
                                // in another order, and the means must not depend on it.
                                own.sort_by(|a, b| a.record.id.cmp(&b.record.id));
                                let model = match lm.as_mut() {
                                    Some(m) => m,
                                    None => lm.insert(load(opts.model.as_deref(), opts, log)?),
                                };
                                imitation::measure(model, checkpoint, spec, &own, opts.max_seq_len)?
                            }
                            imitation::Target::HeldOutRecords { .. } => {
                                let settings = ReplaySettings {
                                    model: opts.model.clone(),
                                    backend: BackendChoice::Auto,
                                    cache_root: adasamp_engine::fetch::home().join("replay"),
                                    precision: RowPrecision::F16,
                                    max_seq_len: Some(opts.max_seq_len),
                                    device: adasamp_engine::ComputeDevice::Cpu,
                                };
                                imitation::measure_held_out(checkpoint, &target, &settings, log)?
                            }
                        };
                        log(&took("imitation", started));
                        m
                    }
                }
            }
        };
        imitations.insert(c.name.clone(), result);
        imitation::write_results(&imitation_path, &imitations)?;
    }

    // 5. The scoreboard.
    let table = PromptTable::from_records(&records, &prompt_ids, &names)?;
    let per_prompt = rating::observations(&verdicts, &prompt_ids, &names);
    let files = ReportFiles {
        candidates: CANDIDATES.into(),
        diversity: if opts.seeds >= 2 {
            DIVERSITY.into()
        } else {
            String::new()
        },
        verified: VERIFIED.into(),
        judgements: JUDGEMENTS.into(),
        imitation: if imitations.is_empty() {
            String::new()
        } else {
            IMITATION.into()
        },
        plots: Vec::new(),
    };
    let mut report = scoreboard(
        &Scoreboard {
            contenders: &contenders,
            seeds: opts.seeds,
            table: &table,
            per_prompt: &per_prompt,
            imitations: &imitations,
            resamples: opts.bootstrap,
            seed: opts.seed,
            judge: opts.judge.describe(),
        },
        files,
    );
    report.notes.splice(0..0, notes);
    report.write(out)?;
    Ok(report)
}

/// Below this many prompts the report says the intervals are coarse.
pub const SMALL_SAMPLE: usize = 10;

/// What the scoreboard is computed from.
#[derive(Debug)]
pub struct Scoreboard<'a> {
    /// The contenders, the one under test first.
    pub contenders: &'a [Contender],
    /// Seeds per prompt.
    pub seeds: u64,
    /// Per-prompt values.
    pub table: &'a PromptTable,
    /// The judge's verdicts as observations, per prompt.
    pub per_prompt: &'a [Vec<adasamp_curate::quality::swiss::Observation>],
    /// Learned contenders' imitation measurements, by name.
    pub imitations: &'a BTreeMap<String, Imitation>,
    /// Bootstrap resamples.
    pub resamples: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// The judge, for the report.
    pub judge: String,
}

/// The report from the per-prompt values and verdicts: ratings and accuracies with their
/// bootstrap intervals, the first contender's comparisons, the verdict sentence.
pub fn scoreboard(s: &Scoreboard<'_>, files: ReportFiles) -> EvalReport {
    let n = s.contenders.len();
    let prompts = s.per_prompt.len();
    let accuracy: Vec<Vec<Option<f64>>> = (0..n).map(|c| s.table.accuracy_column(c)).collect();
    let with_answers = s.table.prompts_with_answers();
    // Statistics: ratings (n), rating differences first − other (n − 1), accuracies (n),
    // accuracy differences (n − 1).
    let intervals = bootstrap(prompts, s.resamples, s.seed, |counts| {
        let fit = rating::fit(n, s.per_prompt, counts);
        let any = counts
            .iter()
            .zip(s.per_prompt)
            .any(|(&c, o)| c > 0 && !o.is_empty());
        let r = |i: usize| any.then(|| fit.ratings[i]);
        let acc: Vec<Option<f64>> = accuracy.iter().map(|a| weighted_mean(a, counts)).collect();
        let mut out: Vec<Option<f64>> = (0..n).map(r).collect();
        out.extend((1..n).map(|j| Some(r(0)? - r(j)?)));
        out.extend(acc.iter().copied());
        out.extend((1..n).map(|j| Some(acc[0]? - acc[j]?)));
        out
    });
    let zero = Interval {
        value: 0.0,
        lo: 0.0,
        hi: 0.0,
    };
    let at = |k: usize| intervals.get(k).copied().flatten();
    let mut notes = Vec::new();
    if prompts < SMALL_SAMPLE {
        notes.push(format!(
            "only {prompts} prompts: a bootstrap over so few prompts gives coarse intervals"
        ));
    }
    let full = rating::fit(n, s.per_prompt, &vec![1; prompts]);
    if s.per_prompt.iter().all(Vec::is_empty) {
        notes.push("no pair was judged: every rating is 0".to_string());
    } else if !full.identified {
        notes.push(
            "a contender won or lost every judged pair outright: its Bradley–Terry rating is \
             bounded only by the fit's tolerance (about ±21), read it as 'beyond measure'"
                .to_string(),
        );
    }
    let results: Vec<ContenderResult> = s
        .contenders
        .iter()
        .enumerate()
        .map(|(c, contender)| {
            let imitation = s.imitations.get(&contender.name);
            let mean_length = s.table.mean_length(c);
            if mean_length.is_none() {
                notes.push(format!(
                    "`{}`: no generation reports its token count: mean length 0",
                    contender.name
                ));
            }
            ContenderResult {
                name: contender.name.clone(),
                kind: contender.kind,
                source: contender.source.clone(),
                rating: at(c).unwrap_or(zero),
                accuracy: at(2 * n - 1 + c).map(|i| Accuracy::new(i, with_answers)),
                self_bleu: PromptTable::mean(&PromptTable::column(&s.table.self_bleu, c)),
                embedding_entropy: PromptTable::mean(&PromptTable::column(
                    &s.table.embedding_entropy,
                    c,
                )),
                mean_length: mean_length.unwrap_or(0.0),
                kl_to_imitated: imitation.and_then(|m| m.kl),
                truncated_mass: imitation.and_then(|m| m.truncated_mass),
                identity_kl: imitation.and_then(|m| m.identity_kl),
                identity_truncated_mass: imitation.and_then(|m| m.identity_truncated_mass),
                imitated: imitation.and_then(|m| m.imitated.clone()),
                imitation_absent: imitation.and_then(|m| m.absent.clone()),
            }
        })
        .collect();
    let comparisons: Vec<Comparison> = (1..n)
        .map(|j| {
            let diff = at(n - 1 + j).unwrap_or(zero);
            Comparison {
                a: s.contenders[0].name.clone(),
                b: s.contenders[j].name.clone(),
                rating_diff: diff,
                accuracy_diff: at(3 * n - 1 + j - 1),
                outcome: Outcome::of(&diff),
            }
        })
        .collect();
    let mut report = EvalReport {
        prompts,
        seeds: s.seeds,
        judge: s.judge.clone(),
        bootstrap: s.resamples,
        contenders: results,
        comparisons,
        verdict: String::new(),
        notes,
        files,
    };
    report.verdict = report.verdict();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rating::{observations, Verdict};
    use adasamp_curate::quality::outcome::LetterProbs;

    fn contender(name: &str) -> Contender {
        ContenderSource::preset("balanced")
            .named(name)
            .resolve()
            .unwrap()
    }

    #[test]
    fn options_out_of_range_are_named() {
        let mut o = EvalOptions::new("p.jsonl", vec![], "out");
        o.validate().unwrap();
        o.seeds = 0;
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("seeds = 0"), "{e}");
        let mut o = EvalOptions::new("p.jsonl", vec![], "out");
        o.bootstrap = 0;
        assert!(o.validate().unwrap_err().to_string().contains("bootstrap"));
    }

    #[test]
    fn judge_choice_parses_urls_and_paths() {
        assert_eq!(JudgeChoice::parse(None), JudgeChoice::Local(None));
        assert_eq!(
            JudgeChoice::parse(Some("m.gguf")),
            JudgeChoice::Local(Some("m.gguf".into()))
        );
        assert!(matches!(
            JudgeChoice::parse(Some("http://h:1/v1")),
            JudgeChoice::Endpoint { .. }
        ));
    }

    /// 12 prompts on which `x` beats `y` (0.8) and `z` (0.9) and y ties z; x answers 9 of 12
    /// prompts right, y 6: x wins both comparisons, with intervals from the bootstrap.
    #[test]
    fn the_scoreboard_from_hand_made_verdicts() {
        let contenders = vec![contender("x"), contender("y"), contender("z")];
        let names: Vec<String> = contenders.iter().map(|c| c.name.clone()).collect();
        let prompts: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
        let mut verdicts = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            // a little noise per prompt so the bootstrap has something to resample
            let e = 0.02 * (i % 3) as f64;
            let v = |a: &str, b: &str, s: f64| {
                Verdict::new(
                    p,
                    0,
                    a,
                    b,
                    LetterProbs { a: s, b: 1.0 - s },
                    LetterProbs { a: 1.0 - s, b: s },
                )
            };
            verdicts.push(v("x", "y", 0.8 - e));
            verdicts.push(v("x", "z", 0.9 - e));
            verdicts.push(v("y", "z", 0.5 + e));
        }
        let per_prompt = observations(&verdicts, &prompts, &names);
        let table = PromptTable {
            accuracy: (0..12)
                .map(|i| {
                    vec![
                        Some(f64::from(u8::from(i % 4 != 0))),
                        Some(f64::from(u8::from(i % 2 == 0))),
                        Some(0.5),
                    ]
                })
                .collect(),
            self_bleu: vec![vec![Some(10.0), Some(20.0), None]; 12],
            embedding_entropy: vec![vec![Some(1.0), Some(2.0), None]; 12],
            lengths: vec![vec![vec![4, 6], vec![10], vec![]]; 12],
        };
        let imitations = BTreeMap::new();
        let board = Scoreboard {
            contenders: &contenders,
            seeds: 1,
            table: &table,
            per_prompt: &per_prompt,
            imitations: &imitations,
            resamples: 500,
            seed: 7,
            judge: "hand".into(),
        };
        let r = scoreboard(&board, ReportFiles::default());
        assert_eq!(r.prompts, 12);
        let x = &r.contenders[0];
        assert!(x.rating.value > 0.5 && x.rating.lo > 0.0, "{x:?}");
        assert!(
            r.contenders
                .iter()
                .map(|c| c.rating.value)
                .sum::<f64>()
                .abs()
                < 1e-9
        );
        let acc = x.accuracy.unwrap();
        assert_eq!((acc.value, acc.n), (0.75, 12));
        assert!(acc.lo < 0.75 && acc.hi > 0.75 && acc.hi <= 1.0, "{acc:?}");
        assert_eq!(r.contenders[1].accuracy.unwrap().value, 0.5);
        assert_eq!(x.self_bleu, Some(10.0));
        assert_eq!(r.contenders[2].self_bleu, None);
        assert_eq!(x.mean_length, 5.0);
        assert_eq!(r.comparisons.len(), 2);
        let c = &r.comparisons[0];
        assert_eq!((c.a.as_str(), c.b.as_str()), ("x", "y"));
        assert_eq!(c.outcome, Outcome::Won);
        assert!(
            (c.rating_diff.value - (x.rating.value - r.contenders[1].rating.value)).abs() < 1e-12
        );
        let d = c.accuracy_diff.unwrap();
        assert!((d.value - 0.25).abs() < 1e-12, "{d:?}");
        assert!(
            r.verdict.starts_with("`x` won against `y`"),
            "{}",
            r.verdict
        );
        assert!(
            r.notes.iter().any(|n| n.contains("`z`: no generation")),
            "{:?}",
            r.notes
        );
        // the same seed gives the same report
        assert_eq!(scoreboard(&board, ReportFiles::default()), r);
    }

    #[test]
    fn no_verdict_means_no_rating_and_a_tie() {
        let contenders = vec![contender("x"), contender("y")];
        let table = PromptTable {
            accuracy: vec![vec![None, None]; 3],
            self_bleu: vec![vec![None, None]; 3],
            embedding_entropy: vec![vec![None, None]; 3],
            lengths: vec![vec![vec![1], vec![1]]; 3],
        };
        let per_prompt = vec![Vec::new(); 3];
        let imitations = BTreeMap::new();
        let r = scoreboard(
            &Scoreboard {
                contenders: &contenders,
                seeds: 2,
                table: &table,
                per_prompt: &per_prompt,
                imitations: &imitations,
                resamples: 10,
                seed: 0,
                judge: "j".into(),
            },
            ReportFiles::default(),
        );
        assert_eq!(r.comparisons[0].outcome, Outcome::Tied);
        assert!(r.contenders[0].accuracy.is_none());
        assert!(r.comparisons[0].accuracy_diff.is_none());
        assert!(r.notes.iter().any(|n| n.contains("no pair was judged")));
    }
}
