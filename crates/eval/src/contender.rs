//! What a contender is and how it is resolved into a pipeline.
//!
//! A contender is written `NAME=SOURCE` or `SOURCE` (the name then derived from the source).
//! SOURCE is one of:
//! * a preset name: `creative`, `precise`, `balanced`, `deterministic` (named after itself);
//! * `FILE.yaml#PIPELINE`: one pipeline of a pipeline file (named `PIPELINE`);
//! * `FILE.yaml`: a pipeline file holding exactly one pipeline (named after it);
//! * a learned-sampler checkpoint directory (`config.json` + `model.safetensors`), or a training
//!   run directory whose `final/` is one: run as the pipeline `[learned(checkpoint)]` (named
//!   after the run directory, or the checkpoint directory outside a run).
//!
//! Names become pipeline names in the candidate records (`<prompt>/<name>/s<seed>`), so they
//! must be unique and may hold letters, digits, `_`, `-` and `.` only.

use std::path::{Path, PathBuf};

use adasamp_nets::learned_stage::LEARNED_STAGE;
use adasamp_sampling::spec::Value as YamlValue;
use adasamp_sampling::{Pipeline, PipelineSet, PipelineSpec, SamplingConfig, StageSpec};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// What kind of sampler a contender is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContenderKind {
    /// A learned sampler (checkpoint directory).
    Learned,
    /// A pipeline from a pipeline file.
    Pipeline,
    /// A preset.
    Preset,
}

impl ContenderKind {
    /// `learned`, `pipeline` or `preset`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContenderKind::Learned => "learned",
            ContenderKind::Pipeline => "pipeline",
            ContenderKind::Preset => "preset",
        }
    }
}

/// Where a contender's sampler comes from, before the file system is consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    /// A preset by name.
    Preset(String),
    /// One pipeline of a pipeline file, by name.
    PipelineIn {
        /// The pipeline file.
        file: PathBuf,
        /// The pipeline's name in it.
        name: String,
    },
    /// A path: a pipeline file with one pipeline, or a checkpoint / training-run directory.
    Path(PathBuf),
}

/// A contender as given: an optional explicit name and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContenderSource {
    /// The name given with `NAME=` (else derived on resolution).
    pub name: Option<String>,
    /// The source.
    pub source: SourceRef,
}

/// Whether `name` can name a contender (see the module doc).
fn check_name(item: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EvalError::BadContender {
            item: item.to_string(),
            message: format!(
                "name {name:?}: use letters, digits, `_`, `-` and `.` only (it becomes part of record ids)"
            ),
        })
    }
}

impl ContenderSource {
    /// A preset contender (`balanced`, …), named after the preset.
    pub fn preset(name: &str) -> Self {
        Self {
            name: None,
            source: SourceRef::Preset(name.to_string()),
        }
    }

    /// One pipeline of a pipeline file, named after the pipeline.
    pub fn pipeline_in(file: impl Into<PathBuf>, pipeline: &str) -> Self {
        Self {
            name: None,
            source: SourceRef::PipelineIn {
                file: file.into(),
                name: pipeline.to_string(),
            },
        }
    }

    /// A path: a pipeline file with one pipeline, or a learned-sampler checkpoint (or training
    /// run) directory.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Self {
            name: None,
            source: SourceRef::Path(path.into()),
        }
    }

    /// The same source under the name `name`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Parses one item, `NAME=SOURCE` or `SOURCE` (see the module doc); errors name the item.
    pub fn parse(item: &str) -> Result<Self> {
        let bad = |message: &str| EvalError::BadContender {
            item: item.to_string(),
            message: message.to_string(),
        };
        let text = item.trim();
        if text.is_empty() {
            return Err(bad("empty (expected NAME=SOURCE or SOURCE)"));
        }
        let (name, source) = match text.split_once('=') {
            Some((n, s)) => {
                let n = n.trim();
                check_name(item, n)?;
                (Some(n.to_string()), s.trim())
            }
            None => (None, text),
        };
        if source.is_empty() {
            return Err(bad(
                "no source after `=` (a preset, FILE.yaml[#PIPELINE] or a checkpoint directory)",
            ));
        }
        let source = if adasamp_sampling::PRESETS.contains(&source) {
            SourceRef::Preset(source.to_string())
        } else if let Some((file, pipeline)) = source.rsplit_once('#') {
            if file.is_empty() || pipeline.is_empty() {
                return Err(bad("expected FILE.yaml#PIPELINE with both parts"));
            }
            SourceRef::PipelineIn {
                file: PathBuf::from(file),
                name: pipeline.to_string(),
            }
        } else {
            SourceRef::Path(PathBuf::from(source))
        };
        Ok(Self { name, source })
    }

    /// Parses a comma-separated list of items ([`ContenderSource::parse`]).
    pub fn parse_list(list: &str) -> Result<Vec<Self>> {
        list.split(',').map(Self::parse).collect()
    }

    /// The source as text (as it would be written on a command line).
    pub fn source_text(&self) -> String {
        match &self.source {
            SourceRef::Preset(p) => p.clone(),
            SourceRef::PipelineIn { file, name } => format!("{}#{name}", file.display()),
            SourceRef::Path(p) => p.display().to_string(),
        }
    }

    /// The item as text: `NAME=SOURCE` or `SOURCE`.
    pub fn item_text(&self) -> String {
        match &self.name {
            Some(n) => format!("{n}={}", self.source_text()),
            None => self.source_text(),
        }
    }
}

impl std::str::FromStr for ContenderSource {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

/// A resolved contender: its name, kind, the pipeline it samples with and, for a learned
/// sampler, its checkpoint.
#[derive(Debug, Clone)]
pub struct Contender {
    /// Unique name (the pipeline's name in the candidate records).
    pub name: String,
    /// What kind of sampler it is.
    pub kind: ContenderKind,
    /// Where it came from, as text.
    pub source: String,
    /// The pipeline (named [`Contender::name`]).
    pub pipeline: Pipeline,
    /// The checkpoint directory of a learned sampler.
    pub checkpoint: Option<PathBuf>,
}

/// The checkpoint directory of `dir`: itself when it holds a checkpoint's `config.json`, else
/// its `final/` (a training run); `None` otherwise.
pub fn checkpoint_dir(dir: &Path) -> Option<PathBuf> {
    let config = adasamp_nets::checkpoint::CONFIG_FILE;
    if dir.join(config).is_file() {
        Some(dir.to_path_buf())
    } else if dir.join("final").join(config).is_file() {
        Some(dir.join("final"))
    } else {
        None
    }
}

/// The name a learned sampler gets from its checkpoint directory: the run's directory for
/// `RUN/final` and `RUN/checkpoints/step-N` (`RUN-step-N`), else the directory's own name.
fn learned_name(checkpoint: &Path) -> String {
    let file = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    let abs = std::path::absolute(checkpoint).unwrap_or_else(|_| checkpoint.to_path_buf());
    let own = file(&abs);
    let parent = abs.parent().map(file).unwrap_or_default();
    let name = if own == "final" && !parent.is_empty() {
        parent
    } else if own.starts_with("step-") && parent == "checkpoints" {
        let run = abs
            .parent()
            .and_then(Path::parent)
            .map(file)
            .unwrap_or_default();
        format!("{run}-{own}")
    } else {
        own
    };
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "learned".into()
    } else {
        clean
    }
}

/// The pipeline `[learned(checkpoint)]` named `name`.
pub fn learned_pipeline(name: &str, checkpoint: &Path) -> Result<Pipeline> {
    adasamp_nets::register_learned_stage();
    let abs = std::path::absolute(checkpoint).unwrap_or_else(|_| checkpoint.to_path_buf());
    let mut stage = StageSpec::new(LEARNED_STAGE, &[]);
    stage.params.insert(
        "checkpoint".into(),
        YamlValue::String(abs.display().to_string()),
    );
    Ok(Pipeline::from_spec(PipelineSpec {
        name: name.to_string(),
        weight: 1.0,
        processors: vec![stage],
    })?)
}

/// `pipeline` renamed `name`.
fn renamed(pipeline: &Pipeline, name: &str) -> Result<Pipeline> {
    let mut spec = pipeline.spec().clone();
    spec.name = name.to_string();
    Ok(Pipeline::from_spec(spec)?)
}

impl ContenderSource {
    /// Resolves the source: reads the pipeline file or checks the checkpoint. Errors name the
    /// item and what is wrong.
    pub fn resolve(&self) -> Result<Contender> {
        adasamp_nets::register_learned_stage();
        let item = self.item_text();
        let bad = |message: String| EvalError::BadContender {
            item: item.clone(),
            message,
        };
        let (derived, kind, pipeline, checkpoint) = match &self.source {
            SourceRef::Preset(p) => {
                let config = SamplingConfig::preset(p).map_err(|e| bad(e.to_string()))?;
                let pipe = config.to_pipeline(p).map_err(|e| bad(e.to_string()))?;
                (p.clone(), ContenderKind::Preset, pipe, None)
            }
            SourceRef::PipelineIn { file, name } => {
                let set = PipelineSet::from_path(file).map_err(|e| bad(e.to_string()))?;
                let pipe = set.get(name).map_err(|e| bad(e.to_string()))?.clone();
                (name.clone(), ContenderKind::Pipeline, pipe, None)
            }
            SourceRef::Path(path) if path.is_dir() => {
                let dir = checkpoint_dir(path).ok_or_else(|| {
                    bad(format!(
                        "{} is a directory but neither a learned-sampler checkpoint (no {}) nor a \
                         training run (no final/{})",
                        path.display(),
                        adasamp_nets::checkpoint::CONFIG_FILE,
                        adasamp_nets::checkpoint::CONFIG_FILE
                    ))
                })?;
                adasamp_nets::checkpoint::read_meta(&dir).map_err(|e| bad(e.to_string()))?;
                let name = learned_name(&dir);
                let pipe = learned_pipeline(&name, &dir).map_err(|e| bad(e.to_string()))?;
                (name, ContenderKind::Learned, pipe, Some(dir))
            }
            SourceRef::Path(path) if path.is_file() => {
                let set = PipelineSet::from_path(path).map_err(|e| bad(e.to_string()))?;
                let all = set.pipelines();
                if all.len() != 1 {
                    let names: Vec<&str> = all.iter().map(|p| p.name()).collect();
                    return Err(bad(format!(
                        "{} holds {} pipelines ({}): name one as FILE#PIPELINE",
                        path.display(),
                        all.len(),
                        names.join(", ")
                    )));
                }
                let pipe = all[0].clone();
                (pipe.name().to_string(), ContenderKind::Pipeline, pipe, None)
            }
            SourceRef::Path(path) => {
                return Err(bad(format!(
                    "{} is not a preset ({}), an existing pipeline file or a checkpoint directory",
                    path.display(),
                    adasamp_sampling::PRESETS.join(", ")
                )))
            }
        };
        let name = self.name.clone().unwrap_or(derived);
        check_name(&item, &name)?;
        let pipeline = renamed(&pipeline, &name).map_err(|e| bad(e.to_string()))?;
        Ok(Contender {
            name,
            kind,
            source: match &checkpoint {
                Some(dir) => dir.display().to_string(),
                None => self.source_text(),
            },
            pipeline,
            checkpoint,
        })
    }
}

/// Resolves every contender; at least two, with distinct names.
pub fn resolve_all(sources: &[ContenderSource]) -> Result<Vec<Contender>> {
    if sources.len() < 2 {
        return Err(EvalError::bad_parameter(
            "contenders",
            sources
                .iter()
                .map(ContenderSource::item_text)
                .collect::<Vec<_>>()
                .join(","),
            "at least two contenders are needed (the first is compared with the others)",
        ));
    }
    let contenders = sources
        .iter()
        .map(ContenderSource::resolve)
        .collect::<Result<Vec<_>>>()?;
    for (i, c) in contenders.iter().enumerate() {
        if let Some(j) = contenders[..i].iter().position(|d| d.name == c.name) {
            return Err(EvalError::BadContender {
                item: sources[i].item_text(),
                message: format!(
                    "name `{}` is also the name of `{}`; give one another name with NAME=SOURCE",
                    c.name,
                    sources[j].item_text()
                ),
            });
        }
    }
    Ok(contenders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_parse_into_sources() {
        let p = ContenderSource::parse("balanced").unwrap();
        assert_eq!(p, ContenderSource::preset("balanced"));
        let p = ContenderSource::parse(" mine = grid.yaml#t07 ").unwrap();
        assert_eq!(
            p,
            ContenderSource::pipeline_in("grid.yaml", "t07").named("mine")
        );
        let p = ContenderSource::parse("runs/sdat").unwrap();
        assert_eq!(p, ContenderSource::path("runs/sdat"));
        assert_eq!(p.item_text(), "runs/sdat");
        let list = ContenderSource::parse_list("learned=runs/a,balanced,g.yaml").unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[0].name.as_deref(), Some("learned"));
    }

    #[test]
    fn malformed_items_are_named() {
        for (item, want) in [
            ("", "empty"),
            ("  ", "empty"),
            ("x=", "no source"),
            ("=balanced", "name \"\""),
            ("a b=balanced", "name \"a b\""),
            ("a/b=balanced", "name \"a/b\""),
            ("g.yaml#", "both parts"),
            ("#t07", "both parts"),
        ] {
            let e = ContenderSource::parse(item).unwrap_err().to_string();
            assert!(e.contains(want), "{item:?}: {e}");
            assert!(e.contains(&format!("contender `{item}`")), "{e}");
        }
        let e = ContenderSource::parse_list("balanced,,precise")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
    }

    const GRID: &str = "pipelines:\n  - name: t07\n    processors: [{name: temperature, params: {temperature: 0.7}}]\n  - name: t10\n    processors: [{name: temperature, params: {temperature: 1.0}}]\n";

    #[test]
    fn resolution_reads_files_and_names_problems() {
        let dir = tempfile::tempdir().unwrap();
        let grid = dir.path().join("grid.yaml");
        std::fs::write(&grid, GRID).unwrap();
        let one = dir.path().join("one.yaml");
        std::fs::write(
            &one,
            "pipelines:\n  - name: solo\n    processors: [{name: top_k, params: {top_k: 5}}]\n",
        )
        .unwrap();
        let c = ContenderSource::pipeline_in(&grid, "t10")
            .resolve()
            .unwrap();
        assert_eq!((c.name.as_str(), c.kind), ("t10", ContenderKind::Pipeline));
        assert_eq!(c.pipeline.name(), "t10");
        let c = ContenderSource::path(&one).named("x").resolve().unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.pipeline.name(), "x");
        assert_eq!(c.pipeline.spec().processors[0].name, "top_k");
        let c = ContenderSource::preset("precise").resolve().unwrap();
        assert_eq!(
            (c.name.as_str(), c.kind),
            ("precise", ContenderKind::Preset)
        );

        let e = ContenderSource::path(&grid)
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("2 pipelines (t07, t10)") && e.contains("FILE#PIPELINE"),
            "{e}"
        );
        let e = ContenderSource::pipeline_in(&grid, "nope")
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
        let e = ContenderSource::path(dir.path().join("missing.yaml"))
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing.yaml") && e.contains("not a preset"),
            "{e}"
        );
        let e = ContenderSource::path(dir.path())
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither a learned-sampler checkpoint"), "{e}");
    }

    #[test]
    fn a_learned_checkpoint_becomes_a_learned_pipeline() {
        use adasamp_nets::{LearnedSampler, SamplerConfig};
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("sdat-run");
        let config = SamplerConfig::from_yaml_str(
            "architecture: local_probability_transform\nhidden: 4\n",
            "test",
        )
        .unwrap();
        let s = LearnedSampler::seeded(
            &config,
            1,
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        std::fs::create_dir_all(&run).unwrap();
        s.save(&run.join("final")).unwrap();
        let c = ContenderSource::path(&run).resolve().unwrap();
        assert_eq!(c.kind, ContenderKind::Learned);
        assert_eq!(c.name, "sdat-run");
        assert_eq!(c.checkpoint.as_deref(), Some(run.join("final").as_path()));
        assert_eq!(c.pipeline.spec().processors[0].name, LEARNED_STAGE);
    }

    #[test]
    fn names_must_be_distinct_and_two_contenders_are_needed() {
        let e = resolve_all(&[ContenderSource::preset("balanced")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least two"), "{e}");
        let e = resolve_all(&[
            ContenderSource::preset("balanced"),
            ContenderSource::preset("precise").named("balanced"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("balanced=precise") && e.contains("also the name"),
            "{e}"
        );
        let ok = resolve_all(&[
            ContenderSource::preset("balanced"),
            ContenderSource::preset("balanced").named("again"),
        ])
        .unwrap();
        assert_eq!(ok[1].name, "again");
    }
}
