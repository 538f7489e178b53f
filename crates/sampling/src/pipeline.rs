//! Pipelines: named, weighted chains of stages, loaded from (and saved to) the ASN YAML format.
//! A pipeline is itself a [`Stage`], so pipelines nest (the `pipeline` stage of a file).

use std::path::Path;

use crate::error::{Result, SamplingError};
use crate::rng;
use crate::row::Row;
use crate::spec::{PipelineFile, PipelineSpec, StageSpec};
use crate::stage::{state_mismatch, Context, Stage, StageState};
use crate::stages::build_stage_at_depth;

/// A chain of stages applied in order to a logits row.
#[derive(Debug, Clone)]
pub struct Pipeline {
    spec: PipelineSpec,
    stages: Vec<Box<dyn Stage>>,
}

impl Pipeline {
    /// Builds and checks every stage of `spec`; errors name the pipeline, stage and parameter.
    pub fn from_spec(spec: PipelineSpec) -> Result<Self> {
        Self::from_spec_at_depth(spec, 0)
    }

    /// [`Pipeline::from_spec`] for a pipeline nested `depth` deep in others.
    pub(crate) fn from_spec_at_depth(spec: PipelineSpec, depth: usize) -> Result<Self> {
        if !spec.weight.is_finite() || spec.weight < 0.0 {
            return Err(SamplingError::PipelineFile {
                source_name: None,
                message: format!(
                    "pipeline `{}`: weight {} must be finite and ≥ 0",
                    spec.name, spec.weight
                ),
            });
        }
        let stages = spec
            .processors
            .iter()
            .enumerate()
            .map(|(i, s)| build_stage_at_depth(s, &spec.name, i, depth))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { spec, stages })
    }

    /// `first`'s stages followed by `then`'s, as one pipeline called `name` (weight 1): the
    /// built stages are moved, not rebuilt (a stage that shares state between clones, such as
    /// a learned sampler's weights, keeps sharing it), and the spec is the two lists joined.
    pub fn chain(name: &str, first: Pipeline, then: Pipeline) -> Pipeline {
        let mut processors = first.spec.processors;
        processors.extend(then.spec.processors);
        let mut stages = first.stages;
        stages.extend(then.stages);
        Pipeline {
            spec: PipelineSpec {
                name: name.to_string(),
                weight: 1.0,
                processors,
            },
            stages,
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its weight for random choice.
    pub fn weight(&self) -> f64 {
        self.spec.weight
    }

    /// The spec it was built from (serialises back to the same YAML).
    pub fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    /// The stages, in order.
    pub fn stages(&self) -> &[Box<dyn Stage>] {
        &self.stages
    }

    /// Applies every stage in order.
    pub fn apply(&mut self, row: &mut Row, ctx: &Context<'_>) -> Result<()> {
        for s in &mut self.stages {
            s.apply(row, ctx)?;
        }
        Ok(())
    }

    /// Tells every stage which token was sampled.
    pub fn accept(&mut self, token: u32) {
        for s in &mut self.stages {
            s.accept(token);
        }
    }

    /// Resets every stage for a new sequence.
    pub fn reset(&mut self) {
        for s in &mut self.stages {
            s.reset();
        }
    }

    /// Every stage's state ([`StageState::Pipeline`], one entry per stage, in order).
    pub fn snapshot(&self) -> StageState {
        StageState::Pipeline(self.stages.iter().map(|s| s.snapshot()).collect())
    }

    /// Returns every stage to a state saved by [`Pipeline::snapshot`] of this pipeline (or a
    /// clone). All or nothing: on error (a state of another pipeline) nothing changes.
    pub fn restore(&mut self, state: &StageState) -> Result<()> {
        let StageState::Pipeline(states) = state else {
            return Err(state_mismatch(self.name(), "pipeline", state));
        };
        if states.len() != self.stages.len() {
            return Err(SamplingError::StateMismatch {
                stage: self.name().to_string(),
                reason: format!(
                    "the state holds {} stages, the pipeline {}",
                    states.len(),
                    self.stages.len()
                ),
            });
        }
        let before = self.snapshot();
        let result = self
            .stages
            .iter_mut()
            .zip(states)
            .try_for_each(|(s, st)| s.restore(st));
        if result.is_err() {
            // Stages check a state's kind before changing anything, so `before` fits.
            if let StageState::Pipeline(before) = before {
                for (s, st) in self.stages.iter_mut().zip(&before) {
                    let _ = s.restore(st);
                }
            }
        }
        result
    }

    /// Applies the pipeline to a raw logits row (validated: no NaN or `+inf`) and writes the dense
    /// result (`-inf` = removed). Errors also when the result holds a NaN or `+inf` (a stage
    /// overflowed) or no token at all.
    pub fn apply_dense(
        &mut self,
        logits: &[f32],
        row_index: usize,
        ctx: &Context<'_>,
        row: &mut Row,
        out: &mut [f32],
    ) -> Result<()> {
        if out.len() != logits.len() {
            return Err(SamplingError::VocabMismatch {
                row: row_index,
                expected: logits.len(),
                got: out.len(),
            });
        }
        row.load(logits, row_index)?;
        self.apply(row, ctx)?;
        row.check_output().map_err(|e| match e {
            SamplingError::AllMasked { row } => SamplingError::NothingLeft {
                row,
                pipeline: self.name().to_string(),
            },
            other => other,
        })?;
        row.write_dense(out);
        Ok(())
    }
}

/// Resolves relative paths in the path parameters of external stages against `base`, in nested
/// pipelines too.
fn resolve_path_params(stages: &mut [StageSpec], base: &Path) {
    for stage in stages {
        if stage.name == crate::stages::PIPELINE_STAGE {
            let Some(v) = stage.params.get_mut("processors") else {
                continue;
            };
            // A malformed list is reported when the stage is built.
            if let Ok(mut inner) = serde_yaml_ng::from_value::<Vec<StageSpec>>(v.clone()) {
                resolve_path_params(&mut inner, base);
                if let Ok(resolved) = serde_yaml_ng::to_value(inner) {
                    *v = resolved;
                }
            }
            continue;
        }
        let Some(ext) = crate::stages::external_stage(&stage.name) else {
            continue;
        };
        for key in ext.path_params {
            if let Some(crate::spec::Value::String(s)) = stage.params.get_mut(*key) {
                let p = Path::new(s.as_str());
                if p.is_relative() && !base.as_os_str().is_empty() {
                    *s = base.join(p).display().to_string();
                }
            }
        }
    }
}

/// A pipeline used as one stage of another (nesting): applies its stages in order.
impl Stage for Pipeline {
    fn name(&self) -> &'static str {
        crate::stages::PIPELINE_STAGE
    }
    fn apply(&mut self, row: &mut Row, ctx: &Context<'_>) -> Result<()> {
        Pipeline::apply(self, row, ctx)
    }
    fn accept(&mut self, token: u32) {
        Pipeline::accept(self, token)
    }
    fn reset(&mut self) {
        Pipeline::reset(self)
    }
    fn snapshot(&self) -> StageState {
        Pipeline::snapshot(self)
    }
    fn restore(&mut self, state: &StageState) -> Result<()> {
        Pipeline::restore(self, state)
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

/// All pipelines of one file, in file order.
#[derive(Debug, Clone)]
pub struct PipelineSet {
    pipelines: Vec<Pipeline>,
}

impl PipelineSet {
    /// Builds every pipeline of a parsed file; names must be unique and non-empty.
    pub fn from_file(file: PipelineFile, source_name: Option<&str>) -> Result<Self> {
        let err = |message: String| SamplingError::PipelineFile {
            source_name: source_name.map(str::to_string),
            message,
        };
        if file.pipelines.is_empty() {
            return Err(err("the file holds no pipelines".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &file.pipelines {
            if p.name.trim().is_empty() {
                return Err(err("a pipeline has an empty name".into()));
            }
            if !seen.insert(p.name.clone()) {
                return Err(err(format!("pipeline name `{}` appears twice", p.name)));
            }
        }
        let pipelines = file
            .pipelines
            .into_iter()
            .map(Pipeline::from_spec)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| match e {
                SamplingError::PipelineFile { message, .. } => err(message),
                other => other,
            })?;
        Ok(Self { pipelines })
    }

    /// Parses and builds a pipeline file's YAML text.
    pub fn from_yaml(text: &str, source_name: Option<&str>) -> Result<Self> {
        Self::from_file(PipelineFile::from_yaml(text, source_name)?, source_name)
    }

    /// Reads and builds a pipeline file. Relative paths in the path parameters of external
    /// stages ([`crate::stages::ExternalStage::path_params`], e.g. a learned stage's
    /// `checkpoint`) are resolved against the file's directory and stored resolved in the spec.
    pub fn from_path(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SamplingError::PipelineFile {
            source_name: Some(name.clone()),
            message: e.to_string(),
        })?;
        let mut file = PipelineFile::from_yaml(&text, Some(&name))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in &mut file.pipelines {
            resolve_path_params(&mut p.processors, base);
        }
        Self::from_file(file, Some(&name))
    }

    /// A set of already-built pipelines.
    pub fn from_pipelines(pipelines: Vec<Pipeline>) -> Self {
        Self { pipelines }
    }

    /// The pipelines.
    pub fn pipelines(&self) -> &[Pipeline] {
        &self.pipelines
    }

    /// The file these pipelines serialise to.
    pub fn to_file(&self) -> PipelineFile {
        PipelineFile {
            pipelines: self.pipelines.iter().map(|p| p.spec.clone()).collect(),
        }
    }

    /// YAML text of [`PipelineSet::to_file`].
    pub fn to_yaml(&self) -> String {
        self.to_file().to_yaml()
    }

    /// The pipelines' names, comma-separated (for error messages).
    fn names(&self) -> String {
        self.pipelines
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The pipeline called `name`.
    pub fn get(&self, name: &str) -> Result<&Pipeline> {
        self.pipelines
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| SamplingError::NoSuchPipeline {
                name: name.to_string(),
                available: self.names(),
            })
    }

    /// The only pipeline, the one called `name`, or an error saying which names exist.
    pub fn select(&self, name: Option<&str>) -> Result<&Pipeline> {
        match name {
            Some(n) => self.get(n),
            None if self.pipelines.len() == 1 => Ok(&self.pipelines[0]),
            None => Err(SamplingError::NoSuchPipeline {
                name: "(none given; the file holds several, pass a name)".into(),
                available: self.names(),
            }),
        }
    }

    /// A pipeline picked at random with probability proportional to its weight, reproducibly for
    /// `seed`. Errors if every weight is 0.
    pub fn choose(&self, seed: u64) -> Result<&Pipeline> {
        let total: f64 = self.pipelines.iter().map(|p| p.weight()).sum();
        if total <= 0.0 {
            return Err(SamplingError::PipelineFile {
                source_name: None,
                message: "every pipeline weight is 0: nothing to choose".into(),
            });
        }
        let target = rng::uniform(&mut rng::seeded(seed, u64::MAX)) * total;
        let mut cum = 0.0;
        for p in &self.pipelines {
            cum += p.weight();
            if target < cum && p.weight() > 0.0 {
                return Ok(p);
            }
        }
        Ok(self
            .pipelines
            .iter()
            .rev()
            .find(|p| p.weight() > 0.0)
            .unwrap_or(&self.pipelines[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_stages_and_specs_in_order() {
        let a = Pipeline::from_spec(PipelineSpec {
            name: "a".into(),
            weight: 3.0,
            processors: vec![StageSpec::new("logit_bias", &[])],
        })
        .unwrap();
        let b = Pipeline::from_spec(PipelineSpec {
            name: "b".into(),
            weight: 1.0,
            processors: vec![
                StageSpec::new("top_k", &[("top_k", 2.0)]),
                StageSpec::new("temperature", &[("temperature", 0.5)]),
            ],
        })
        .unwrap();
        let c = Pipeline::chain("ab", a, b);
        assert_eq!(c.name(), "ab");
        assert_eq!(c.weight(), 1.0);
        let names: Vec<&str> = c.stages().iter().map(|s| s.name()).collect();
        assert_eq!(names, ["logit_bias", "top_k", "temperature"]);
        let spec_names: Vec<&str> = c
            .spec()
            .processors
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(spec_names, names);
        // The joined spec builds the same pipeline again.
        let again = Pipeline::from_spec(c.spec().clone()).unwrap();
        assert_eq!(again.stages().len(), 3);
    }
}
