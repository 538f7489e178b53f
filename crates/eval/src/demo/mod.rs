//! `adasamp demo`: the whole loop on the default model in one run directory — prompts from
//! public data, candidates over a small filtered-grid subset, verify, the labels (verifiable,
//! diversity, judged quality), score, a learned sampler trained on the selected records, and
//! the scoreboard on held-out prompts: the learned sampler against the best single heuristic of
//! the grid and the `balanced` preset.
//!
//! - [`plan`]: the sizes of each variant (`fast`, `default`, `full`) and the prompt split.
//! - [`layout`]: the run directory's files and `stages.json` (completed stages).
//! - [`stages`]: each stage as a call into the library that owns it.
//! - [`best`]: how the best single heuristic is chosen from the scored training data.
//!
//! A rerun of the same directory skips the stages `stages.json` lists as complete and resumes
//! an interrupted one (each stage is itself resumable); a directory made with another plan is
//! refused rather than mixed.

pub mod best;
pub mod layout;
pub mod plan;
pub mod stages;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::{ContenderSource, EvalOptions, EvalReport, JudgeChoice};
pub use best::BestHeuristic;
pub use layout::{Layout, Progress, Stage, StageDone};
pub use plan::{Plan, Size};

/// What can go wrong in a demo run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A plan value is out of range (or a plan file was edited into one).
    #[error("demo plan: {field} = {value}: {message}")]
    BadPlan {
        /// The plan field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// The run directory holds a run of another plan.
    #[error(
        "{path}: this run directory was made with another plan ({message}); \
         use another directory or remove it"
    )]
    PlanChanged {
        /// The plan file found.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// A stage left work undone (failed generations); a rerun retries them.
    #[error("{stage}: {count} item(s) failed; rerun to retry them")]
    Incomplete {
        /// The stage.
        stage: &'static str,
        /// Items not done.
        count: usize,
    },
    /// Scoring kept no record: nothing to train on or to choose a heuristic from.
    #[error("score: no candidate could be scored, so there is nothing to train on")]
    NothingToScore,
    /// A run-directory file that cannot be read as expected.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A curation stage.
    #[error(transparent)]
    Curate(Box<adasamp_curate::CurateError>),
    /// Training.
    #[error(transparent)]
    Nets(Box<adasamp_nets::NetsError>),
    /// The engine (model loading, fetching the default model).
    #[error(transparent)]
    Engine(Box<adasamp_engine::EngineError>),
    /// Pipelines.
    #[error(transparent)]
    Sampling(#[from] adasamp_sampling::SamplingError),
    /// Atomic file writes.
    #[error(transparent)]
    File(#[from] adasamp_engine::files::FileError),
    /// The evaluation.
    #[error(transparent)]
    Eval(Box<crate::EvalError>),
}

/// `From` for the boxed variants of [`DemoError`] (boxed: the errors are large).
macro_rules! boxed_from {
    ($($variant:ident: $ty:ty),*) => {
        $(impl From<$ty> for DemoError {
            fn from(e: $ty) -> Self {
                DemoError::$variant(Box::new(e))
            }
        })*
    };
}
boxed_from!(
    Curate: adasamp_curate::CurateError,
    Nets: adasamp_nets::NetsError,
    Engine: adasamp_engine::EngineError,
    Eval: crate::EvalError
);

/// Where generations and judgements come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Source {
    /// The local model (`None`: the default model). Training always replays this model, so
    /// endpoints must serve the same one.
    pub model: Option<PathBuf>,
    /// OpenAI-compatible servers for the candidates (taken in turn) and the judge (the first);
    /// empty: everything runs on the local model.
    pub endpoints: Vec<String>,
    /// Bearer key sent to the endpoints (`None`: no `Authorization` header).
    pub api_key: Option<String>,
}

/// A demo run's options.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// The size.
    pub size: Size,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Model and endpoints.
    pub source: Source,
}

/// A stage as the run saw it: skipped (complete in an earlier run) or run now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageOutcome {
    /// The stage's record (seconds of the run that completed it).
    #[serde(flatten)]
    pub done: StageDone,
    /// Whether this run skipped it.
    pub skipped: bool,
}

/// What a demo run produced.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The plan.
    pub plan: Plan,
    /// Every stage, in order.
    pub stages: Vec<StageOutcome>,
    /// The best single heuristic and the table it was chosen from.
    pub best_heuristic: BestHeuristic,
    /// The evaluation's report.
    #[serde(skip)]
    pub eval: EvalReport,
    /// Every file of the run directory (relative paths, sorted; checkpoints and the replay
    /// cache summarised by their directory).
    pub files: Vec<String>,
}

impl DemoReport {
    /// Seconds of every stage together (as recorded by the runs that completed them).
    pub fn total_seconds(&self) -> f64 {
        self.stages.iter().map(|s| s.done.seconds).sum()
    }

    /// The stage timings as a Markdown table.
    pub fn timings_markdown(&self) -> String {
        let mut s = String::from("| stage | seconds | result |\n|---|---:|---|\n");
        for o in &self.stages {
            s.push_str(&format!(
                "| {} | {:.1}{} | {} |\n",
                o.done.stage.name(),
                o.done.seconds,
                if o.skipped { " (earlier run)" } else { "" },
                o.done.summary
            ));
        }
        s.push_str(&format!("| **total** | {:.1} | |\n", self.total_seconds()));
        s
    }
}

/// Writes `value` as pretty JSON, atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DemoError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| DemoError::BadFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    adasamp_engine::files::write_atomic(path, format!("{text}\n").as_bytes())?;
    Ok(())
}

/// Writes the plan into a new run directory, or checks that an existing one was made with the
/// same plan and source.
fn check_plan(layout: &Layout, plan: &Plan, source: &Source) -> Result<(), DemoError> {
    #[derive(Serialize, serde::Deserialize, PartialEq)]
    struct Saved {
        plan: Plan,
        model: Option<PathBuf>,
        endpoints: Vec<String>,
    }
    let want = Saved {
        plan: plan.clone(),
        model: source.model.clone(),
        endpoints: source.endpoints.clone(),
    };
    let path = layout.plan();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let got: Saved = serde_json::from_str(&text).map_err(|e| DemoError::BadFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            if got.plan != want.plan {
                return Err(DemoError::PlanChanged {
                    path,
                    message: format!(
                        "size {} there, {} asked for, or an edited plan",
                        got.plan.size, plan.size
                    ),
                });
            }
            if got.model != want.model || got.endpoints != want.endpoints {
                return Err(DemoError::PlanChanged {
                    path,
                    message: "another model or other endpoints".into(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_json(&path, &want),
        Err(e) => Err(DemoError::Io { path, source: e }),
    }
}

/// The files of the run directory, relative and sorted; the contents of `replay/` and of
/// `sampler/checkpoints/` are summarised by their directory.
pub fn run_files(root: &Path) -> Result<Vec<String>, DemoError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), DemoError> {
        let entries = std::fs::read_dir(dir).map_err(|e| DemoError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| DemoError::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if path.is_dir() {
                if rel == "replay" || rel.ends_with("checkpoints") {
                    out.push(format!("{rel}/"));
                } else {
                    walk(root, &path, out)?;
                }
            } else {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}

/// The evaluation's options for this run: on the held-out prompts, the learned sampler first
/// (the contender under test), then the best single heuristic, then `balanced`; the training
/// prompts and the training file declared, so the evaluation refuses any overlap and knows what
/// the learned sampler was trained on.
pub fn eval_options(
    plan: &Plan,
    layout: &Layout,
    source: &Source,
    best: &BestHeuristic,
    model: &Path,
) -> EvalOptions {
    let contenders = vec![
        ContenderSource::path(layout.sampler()).named(LEARNED),
        ContenderSource::path(layout.best_yaml()).named(&best.pipeline),
        ContenderSource::preset(BASELINE_PRESET),
    ];
    let mut o = EvalOptions::new(layout.held_out_prompts(), contenders, layout.eval());
    o.seeds = plan.eval_seeds;
    o.max_new_tokens = plan.max_new_tokens;
    o.model = Some(model.to_path_buf());
    o.judge = match source.endpoints.first() {
        Some(url) => JudgeChoice::parse(Some(url)),
        None => JudgeChoice::Local(Some(model.to_path_buf())),
    };
    o.endpoints = source.endpoints.clone();
    o.api_key = source.api_key.clone();
    o.train_prompts = vec![layout.train_prompts(), layout.train_data()];
    o.bootstrap = plan.eval_bootstrap;
    o.seed = plan.seed;
    o.batch_size = plan.batch_size;
    o.max_seq_len = plan.max_seq_len;
    // Every pair of the evaluation in a few judge calls: the local judge's prefix cache serves
    // a call's later comparisons from its earlier ones (same template, instructions, question).
    o.judge_batch = 4 * plan.batch_size;
    o
}

/// The learned sampler's contender name.
pub const LEARNED: &str = "learned";
/// The preset every demo compares with.
pub const BASELINE_PRESET: &str = "balanced";

/// Runs (or resumes) the demo: every stage in order, skipping those already complete; `log`
/// hears each stage's start, its report and its time. Writes `demo.json` at the end.
pub fn run(opts: &DemoOptions, log: &mut dyn FnMut(&str)) -> Result<DemoReport, DemoError> {
    let plan = Plan::for_size(opts.size);
    plan.validate()?;
    let layout = Layout::new(&opts.run_dir);
    std::fs::create_dir_all(&layout.root).map_err(|e| DemoError::Io {
        path: layout.root.clone(),
        source: e,
    })?;
    check_plan(&layout, &plan, &opts.source)?;
    let mut progress = Progress::read(&layout.stages())?;
    let mut outcomes = Vec::new();
    let mut eval_report = None;
    let total = Stage::ALL.len();
    for (i, stage) in Stage::ALL.into_iter().enumerate() {
        let head = format!("[{}/{total}] {}", i + 1, stage.name());
        if let Some(done) = progress.get(stage) {
            // The eval stage's report is read back from its files below.
            if stage != Stage::Eval || layout.eval().join("report.json").exists() {
                log(&format!(
                    "{head}: complete in an earlier run ({})",
                    done.summary
                ));
                outcomes.push(StageOutcome {
                    done: done.clone(),
                    skipped: true,
                });
                continue;
            }
        }
        log(&format!("{head} …"));
        let t0 = Instant::now();
        let summary = match stage {
            Stage::Prompts => stages::fetch_prompts(&plan, &layout, log)?,
            Stage::Candidates => stages::generate_candidates(&plan, &layout, &opts.source, log)?,
            Stage::Verify => stages::verify_candidates(&plan, &layout, log)?,
            Stage::LabelVerify => stages::label_verifiable(&layout, log)?,
            Stage::LabelDiversity => stages::label_diverse(&layout, log)?,
            Stage::LabelQuality => stages::label_judged(&plan, &layout, &opts.source, log)?,
            Stage::Score => stages::score_and_choose(&plan, &layout, log)?,
            Stage::Train => stages::train_sampler(&plan, &layout, &opts.source, log)?.0,
            Stage::Eval => {
                let best = read_best(&layout)?;
                let model = stages::model_path(&opts.source, log)?;
                let eo = eval_options(&plan, &layout, &opts.source, &best, &model);
                let report = crate::run_with_log(&eo, log)?;
                let line = eval_summary(&report);
                eval_report = Some(report);
                line
            }
        };
        let done = StageDone {
            stage,
            seconds: t0.elapsed().as_secs_f64(),
            summary,
        };
        log(&format!(
            "{head}: done in {:.1} s — {}",
            done.seconds, done.summary
        ));
        progress.complete(done.clone(), &layout.stages())?;
        outcomes.push(StageOutcome {
            done,
            skipped: false,
        });
    }
    let eval = match eval_report {
        Some(r) => r,
        None => EvalReport::read(&layout.eval().join(crate::report::REPORT_JSON))?,
    };
    let mut report = DemoReport {
        run_dir: layout.root.clone(),
        plan,
        stages: outcomes,
        best_heuristic: read_best(&layout)?,
        eval,
        files: Vec::new(),
    };
    write_json(&layout.summary(), &report)?;
    report.files = run_files(&layout.root)?;
    write_json(&layout.summary(), &report)?;
    Ok(report)
}

/// The eval stage's line: the contender under test against the best other one.
fn eval_summary(r: &EvalReport) -> String {
    let head = format!(
        "{} contenders on {} held-out prompts × {} seeds",
        r.contenders.len(),
        r.prompts,
        r.seeds
    );
    match r.against_best_other() {
        Some(c) => format!(
            "{head}; {} {} {} (rating difference {:+.2}, 95 % CI {:+.2} to {:+.2})",
            c.a,
            match c.outcome {
                crate::Outcome::Won => "won against",
                crate::Outcome::Tied => "tied with",
                crate::Outcome::Lost => "lost to",
            },
            c.b,
            c.rating_diff.value,
            c.rating_diff.lo,
            c.rating_diff.hi
        ),
        None => head,
    }
}

/// The best heuristic the score stage chose (`best-heuristic.json`).
fn read_best(layout: &Layout) -> Result<BestHeuristic, DemoError> {
    let path = layout.best_json();
    let text = std::fs::read_to_string(&path).map_err(|e| DemoError::Io {
        path: path.clone(),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| DemoError::BadFile {
        path,
        message: e.to_string(),
    })
}
