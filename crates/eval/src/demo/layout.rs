//! The run directory: where every stage's file goes, and `stages.json`, the record of the
//! stages already complete (a rerun skips them).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DemoError;

/// The stages of the demo, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Fetch the prompts and split them into training and held-out.
    Prompts,
    /// Generate every (training prompt, pipeline, seed) once.
    Candidates,
    /// Keep the prompts whose candidates are complete.
    Verify,
    /// Verifiable rewards.
    LabelVerify,
    /// Self-BLEU and embedding entropy across seeds.
    LabelDiversity,
    /// Judged Swiss tournaments and Bradley–Terry ratings.
    LabelQuality,
    /// The training file (top 1 per (prompt, seed)) and the best single heuristic.
    Score,
    /// The learned sampler.
    Train,
    /// The scoreboard on the held-out prompts.
    Eval,
}

impl Stage {
    /// Every stage, in the order they run.
    pub const ALL: [Stage; 9] = [
        Stage::Prompts,
        Stage::Candidates,
        Stage::Verify,
        Stage::LabelVerify,
        Stage::LabelDiversity,
        Stage::LabelQuality,
        Stage::Score,
        Stage::Train,
        Stage::Eval,
    ];

    /// The stage's name as the run prints it (the adasamp command it corresponds to).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prompts => "prompts fetch",
            Stage::Candidates => "candidates",
            Stage::Verify => "verify",
            Stage::LabelVerify => "label verify",
            Stage::LabelDiversity => "label diversity",
            Stage::LabelQuality => "label quality",
            Stage::Score => "score",
            Stage::Train => "train",
            Stage::Eval => "eval",
        }
    }
}

/// The paths of a run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The run directory.
    pub root: PathBuf,
}

impl Layout {
    /// The layout of `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The plan of the run (`plan.json`).
    pub fn plan(&self) -> PathBuf {
        self.file("plan.json")
    }
    /// Completed stages with their timings (`stages.json`).
    pub fn stages(&self) -> PathBuf {
        self.file("stages.json")
    }
    /// Every fetched prompt, in order (`prompts.jsonl`).
    pub fn prompts(&self) -> PathBuf {
        self.file("prompts.jsonl")
    }
    /// The training prompts (`prompts-train.jsonl`).
    pub fn train_prompts(&self) -> PathBuf {
        self.file("prompts-train.jsonl")
    }
    /// The held-out prompts (`prompts-held-out.jsonl`).
    pub fn held_out_prompts(&self) -> PathBuf {
        self.file("prompts-held-out.jsonl")
    }
    /// The grid subset (`grid.yaml`).
    pub fn grid(&self) -> PathBuf {
        self.file("grid.yaml")
    }
    /// The candidates (`candidates.jsonl`).
    pub fn candidates(&self) -> PathBuf {
        self.file("candidates.jsonl")
    }
    /// The complete prompts' candidates (`clean.jsonl`).
    pub fn clean(&self) -> PathBuf {
        self.file("clean.jsonl")
    }
    /// With verifiable rewards (`verified.jsonl`).
    pub fn verified(&self) -> PathBuf {
        self.file("verified.jsonl")
    }
    /// With diversity labels too (`diverse.jsonl`).
    pub fn diverse(&self) -> PathBuf {
        self.file("diverse.jsonl")
    }
    /// With quality labels too (`labelled.jsonl`).
    pub fn labelled(&self) -> PathBuf {
        self.file("labelled.jsonl")
    }
    /// The training file (`train.jsonl`).
    pub fn train_data(&self) -> PathBuf {
        self.file("train.jsonl")
    }
    /// The best single heuristic and the table it was chosen from (`best-heuristic.json`).
    pub fn best_json(&self) -> PathBuf {
        self.file("best-heuristic.json")
    }
    /// The best single heuristic as a one-pipeline file (`best-heuristic.yaml`).
    pub fn best_yaml(&self) -> PathBuf {
        self.file("best-heuristic.yaml")
    }
    /// The training run (`sampler/`: metrics.csv, checkpoints/, final/).
    pub fn sampler(&self) -> PathBuf {
        self.file("sampler")
    }
    /// The replay cache of the training run (`replay/`).
    pub fn replay(&self) -> PathBuf {
        self.file("replay")
    }
    /// The evaluation (`eval/`: report.md, report.json, plots).
    pub fn eval(&self) -> PathBuf {
        self.file("eval")
    }
    /// The demo's own summary (`demo.json`).
    pub fn summary(&self) -> PathBuf {
        self.file("demo.json")
    }
}

/// A completed stage: how long it took and what it wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageDone {
    /// The stage.
    pub stage: Stage,
    /// Wall-clock seconds of the run that completed it (an interrupted earlier part not
    /// counted).
    pub seconds: f64,
    /// What it wrote, in a line (records, files).
    pub summary: String,
}

/// `stages.json`: the stages completed so far.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Completed stages, in order.
    pub done: Vec<StageDone>,
}

impl Progress {
    /// Reads `stages.json` (empty when absent).
    pub fn read(path: &Path) -> Result<Self, DemoError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| DemoError::BadFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(DemoError::Io {
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    /// The record of `stage`, if complete.
    pub fn get(&self, stage: Stage) -> Option<&StageDone> {
        self.done.iter().find(|d| d.stage == stage)
    }

    /// Marks a stage complete and writes `stages.json` atomically.
    pub fn complete(&mut self, done: StageDone, path: &Path) -> Result<(), DemoError> {
        self.done.retain(|d| d.stage != done.stage);
        self.done.push(done);
        super::write_json(path, self)
    }
}
