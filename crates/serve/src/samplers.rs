//! The samplers an operator installs at start-up (`--samplers DIR`), by name: every pipeline of
//! every pipeline YAML file in the directory, and every learned-sampler checkpoint directory in
//! it (wrapped as a one-stage pipeline with the `learned` stage, named after the directory).
//!
//! Each pipeline is built once, here; a request gets a clone, which shares a learned stage's
//! weights (`Arc`) — nothing is read from disk after start-up. A request can name only what is
//! installed: names are looked up in a map, never interpreted as paths or YAML.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use adasamp_sampling::{Pipeline, PipelineSet, PipelineSpec, StageSpec};
use serde::Serialize;

use crate::error::ServeError;

/// Where an installed sampler came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// A pipeline of a pipeline YAML file.
    Pipeline,
    /// A learned-sampler checkpoint directory.
    Learned,
}

/// One installed sampler.
#[derive(Debug, Clone)]
pub struct InstalledSampler {
    /// Its kind.
    pub kind: SamplerKind,
    /// The file or directory it came from.
    pub source: PathBuf,
    /// The built pipeline (cloned per request).
    pub pipeline: Pipeline,
}

impl InstalledSampler {
    /// The pipeline's stages and parameters as a client may see them — so it can check that the
    /// sampler it names is the pipeline it means — or `None` for a learned sampler and for any
    /// pipeline with a text parameter (a checkpoint path stays private).
    pub fn public_config(&self) -> Option<&PipelineSpec> {
        let spec = self.pipeline.spec();
        let private = self.kind == SamplerKind::Learned
            || spec
                .processors
                .iter()
                .any(|s| s.params.values().any(holds_text));
        (!private).then_some(spec)
    }
}

/// Whether a parameter value holds a string anywhere (nested stages included).
fn holds_text(v: &adasamp_sampling::spec::Value) -> bool {
    use adasamp_sampling::spec::Value;
    match v {
        Value::String(_) => true,
        Value::Sequence(s) => s.iter().any(holds_text),
        Value::Mapping(m) => m.iter().any(|(k, v)| holds_text(k) || holds_text(v)),
        Value::Tagged(t) => holds_text(&t.value),
        _ => false,
    }
}

/// The installed samplers by name.
#[derive(Debug, Clone, Default)]
pub struct SamplerRegistry {
    by_name: BTreeMap<String, InstalledSampler>,
}

/// Whether `dir` looks like a learned-sampler checkpoint directory (it holds `config.json`).
fn is_checkpoint_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join("config.json").is_file()
}

impl SamplerRegistry {
    /// Loads every pipeline file (`*.yaml`, `*.yml`) and checkpoint directory directly inside
    /// `dir`, in name order. Errors: an unreadable directory, a file or checkpoint that does not
    /// build, a name installed twice.
    pub fn load_dir(dir: &Path) -> Result<Self, ServeError> {
        adasamp_nets::register_learned_stage();
        let io = |e: std::io::Error| ServeError::Io {
            context: format!("reading the samplers directory {}", dir.display()),
            source: e,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        paths.sort();
        let mut reg = Self::default();
        for path in paths {
            let yaml = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
            if yaml && path.is_file() {
                let set = PipelineSet::from_path(&path).map_err(|e| ServeError::Sampler {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                for p in set.pipelines() {
                    reg.insert(
                        p.name().to_string(),
                        SamplerKind::Pipeline,
                        &path,
                        p.clone(),
                    )?;
                }
            } else if is_checkpoint_dir(&path) {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(|| ServeError::Sampler {
                        path: path.clone(),
                        reason: "the directory name is not UTF-8".into(),
                    })?
                    .to_string();
                let pipeline = learned_pipeline(&name, &path)?;
                reg.insert(name, SamplerKind::Learned, &path, pipeline)?;
            }
        }
        Ok(reg)
    }

    fn insert(
        &mut self,
        name: String,
        kind: SamplerKind,
        source: &Path,
        pipeline: Pipeline,
    ) -> Result<(), ServeError> {
        if let Some(prev) = self.by_name.get(&name) {
            return Err(ServeError::DuplicateSampler {
                name,
                first: prev.source.clone(),
                second: source.to_path_buf(),
            });
        }
        self.by_name.insert(
            name,
            InstalledSampler {
                kind,
                source: source.to_path_buf(),
                pipeline,
            },
        );
        Ok(())
    }

    /// The sampler called `name`, if installed.
    pub fn get(&self, name: &str) -> Option<&InstalledSampler> {
        self.by_name.get(name)
    }

    /// The installed samplers, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &InstalledSampler)> {
        self.by_name.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many samplers are installed.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether none is installed.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The one-stage pipeline `[learned {checkpoint: dir}]` called `name` (the checkpoint is loaded
/// here, once).
fn learned_pipeline(name: &str, dir: &Path) -> Result<Pipeline, ServeError> {
    let dir_abs = std::fs::canonicalize(dir).map_err(|e| ServeError::Io {
        context: format!("resolving {}", dir.display()),
        source: e,
    })?;
    let checkpoint = dir_abs.to_str().ok_or_else(|| ServeError::Sampler {
        path: dir.to_path_buf(),
        reason: "the path is not UTF-8".into(),
    })?;
    let stage = StageSpec::new(adasamp_nets::learned_stage::LEARNED_STAGE, &[]).with(
        "checkpoint",
        adasamp_sampling::spec::Value::String(checkpoint.to_string()),
    );
    Pipeline::from_spec(PipelineSpec {
        name: name.to_string(),
        weight: 1.0,
        processors: vec![stage],
    })
    .map_err(|e| ServeError::Sampler {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_samplers() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samplers")
    }

    #[test]
    fn loads_pipeline_files_and_checkpoints_by_name() {
        let tmp = std::env::temp_dir().join(format!("adasamp-serve-reg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(
            tmp.join("a.yaml"),
            "pipelines:\n  - name: cool\n    processors:\n      - {name: temperature, params: {temperature: 0.5}}\n  - name: narrow\n    processors:\n      - {name: top_k, params: {top_k: 3}}\n",
        )
        .unwrap();
        std::fs::write(tmp.join("notes.txt"), "ignored").unwrap();
        let ck = repo_samplers().join("sampling_network_t08_minp01");
        if ck.exists() {
            let dst = tmp.join("learned_ref");
            std::fs::create_dir_all(&dst).unwrap();
            for f in ["config.json", "model.safetensors"] {
                std::fs::copy(ck.join(f), dst.join(f)).unwrap();
            }
        }
        let reg = SamplerRegistry::load_dir(&tmp).unwrap();
        assert_eq!(reg.get("cool").unwrap().kind, SamplerKind::Pipeline);
        assert_eq!(reg.get("narrow").unwrap().pipeline.stages().len(), 1);
        let cool = reg.get("cool").unwrap().public_config().unwrap();
        assert_eq!(cool.processors[0].name, "temperature");
        assert!(reg.get("a.yaml").is_none() && reg.get("../a.yaml").is_none());
        if ck.exists() {
            let l = reg.get("learned_ref").unwrap();
            assert_eq!(l.kind, SamplerKind::Learned);
            assert_eq!(l.pipeline.stages()[0].name(), "learned");
            assert!(
                l.public_config().is_none(),
                "a checkpoint path stays private"
            );
        }
        // A second file installing the same name is refused, naming it.
        std::fs::write(
            tmp.join("b.yml"),
            "pipelines:\n  - name: cool\n    processors: []\n",
        )
        .unwrap();
        let err = SamplerRegistry::load_dir(&tmp).unwrap_err().to_string();
        assert!(err.contains("`cool`") && err.contains("b.yml"), "{err}");
        // A broken file is refused, naming the file.
        std::fs::write(
            tmp.join("b.yml"),
            "pipelines: [{name: x, processors: [{name: nope}]}]\n",
        )
        .unwrap();
        let err = SamplerRegistry::load_dir(&tmp).unwrap_err().to_string();
        assert!(err.contains("b.yml") && err.contains("nope"), "{err}");
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
