//! The demo's stages up to the trained sampler, each a call into the library that owns it
//! (curate's stages, nets' training) with the plan's sizes and the run directory's paths.
//! Each returns a one-line summary of what it wrote.

use std::path::{Path, PathBuf};
use std::time::Duration;

use adasamp_curate::candidates::{
    self, Backend, CandidateSet, LocalBackend, RemoteBackend, RemoteConfig, DEFAULT_SYSTEM_PROMPT,
};
use adasamp_curate::diversity::{label_diversity, DiversityOptions};
use adasamp_curate::prompt::read_prompts;
use adasamp_curate::prompt_sets::{self, FetchOptions, PromptSet};
use adasamp_curate::quality::{
    label_quality, EndpointJudge, HttpOptions, LocalJudge, TournamentOptions,
};
use adasamp_curate::score::{score, ScoreOptions, Weights};
use adasamp_curate::stage::read_records;
use adasamp_curate::verify::{verify, Expected};
use adasamp_engine::files::write_atomic;
use adasamp_engine::{BackendChoice, LoadOptions, LoadedModel};
use adasamp_nets::train::{self, Engine, ReplaySettings, RowPrecision, TrainConfig};
use adasamp_nets::SamplerConfig;
use adasamp_sampling::{PipelineFile, PipelineSet};

use super::best::best_heuristic;
use super::layout::Layout;
use super::plan::Plan;
use super::{write_json, DemoError, Source};

/// The model file of `source` (the default model, fetched when missing, if none is named).
pub fn model_path(source: &Source, log: &mut dyn FnMut(&str)) -> Result<PathBuf, DemoError> {
    match &source.model {
        Some(p) => Ok(p.clone()),
        None => Ok(adasamp_engine::fetch::ensure_default_model(log)?),
    }
}

fn load_model(
    plan: &Plan,
    source: &Source,
    log: &mut dyn FnMut(&str),
) -> Result<LoadedModel, DemoError> {
    let path = model_path(source, log)?;
    let opts = LoadOptions {
        max_seq_len: Some(plan.max_seq_len),
        max_sequences: Some(plan.batch_size),
        ..Default::default()
    };
    Ok(adasamp_engine::load(
        Some(&path),
        BackendChoice::Auto,
        opts,
        log,
    )?)
}

/// `prompts fetch`: the plan's prompts, then the split (every `held_out_every`-th prompt held
/// out) into two disjoint files.
pub fn fetch_prompts(
    plan: &Plan,
    layout: &Layout,
    log: &mut dyn FnMut(&str),
) -> Result<String, DemoError> {
    let set: PromptSet = plan.prompt_set.parse()?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!(
        "fetching {} prompts of `{}`",
        plan.prompts,
        set.name()
    ));
    bar.enable_steady_tick(Duration::from_millis(200));
    let all = prompt_sets::build(
        set,
        FetchOptions {
            limit: Some(plan.prompts),
            seed: plan.prompt_seed,
        },
        &mut |m: &str| bar.println(m),
    );
    bar.finish_and_clear();
    let all = all?;
    if all.len() < plan.prompts {
        log(&format!(
            "note: the set gave {} prompts, fewer than the plan's {}",
            all.len(),
            plan.prompts
        ));
    }
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for (i, p) in all.iter().enumerate() {
        if plan.is_held_out(i) {
            held_out.push(p.clone());
        } else {
            train.push(p.clone());
        }
    }
    if train.is_empty() || held_out.is_empty() {
        return Err(DemoError::BadPlan {
            field: "prompts",
            value: all.len().to_string(),
            message: "too few prompts to split into training and held-out".into(),
        });
    }
    prompt_sets::write_prompts(&layout.prompts(), &all)?;
    prompt_sets::write_prompts(&layout.train_prompts(), &train)?;
    prompt_sets::write_prompts(&layout.held_out_prompts(), &held_out)?;
    Ok(format!(
        "{} prompts: {} for training, {} held out",
        all.len(),
        train.len(),
        held_out.len()
    ))
}

/// `candidates`: the grid subset written to `grid.yaml`, then every (training prompt,
/// pipeline, seed) generated once (resuming an interrupted file).
pub fn generate_candidates(
    plan: &Plan,
    layout: &Layout,
    source: &Source,
    log: &mut dyn FnMut(&str),
) -> Result<String, DemoError> {
    write_atomic(&layout.grid(), plan.grid()?.to_yaml().as_bytes())?;
    let prompts = read_prompts(&layout.train_prompts())?;
    let grid = PipelineSet::from_path(&layout.grid())?;
    let set = CandidateSet::new(
        prompts,
        grid,
        plan.seeds,
        plan.max_new_tokens,
        Some(DEFAULT_SYSTEM_PROMPT.into()),
    )?;
    log(&format!(
        "{} prompts × {} pipelines × {} seeds = {} candidates of ≤ {} tokens",
        set.prompts.len(),
        set.pipelines.pipelines().len(),
        set.seeds,
        set.jobs().count(),
        plan.max_new_tokens
    ));
    let report = if source.endpoints.is_empty() {
        let mut lm = load_model(plan, source, log)?;
        let mut backend = Backend::Local(LocalBackend::new(&mut lm, plan.batch_size));
        candidates::run(&set, &mut backend, &layout.candidates())?
    } else {
        let config = RemoteConfig {
            api_key: source.api_key.clone(),
            ..RemoteConfig::new(source.endpoints.clone())
        };
        let mut backend = Backend::Remote(RemoteBackend::new(config)?);
        candidates::run(&set, &mut backend, &layout.candidates())?
    };
    log(&report.to_string());
    let failed = report.dropped_total();
    if failed > 0 {
        return Err(DemoError::Incomplete {
            stage: "candidates",
            count: failed,
        });
    }
    Ok(format!(
        "{} candidates ({} from an earlier run)",
        report.written + report.already_done,
        report.already_done
    ))
}

/// `verify`: the complete prompts' candidates into `clean.jsonl`.
pub fn verify_candidates(
    plan: &Plan,
    layout: &Layout,
    log: &mut dyn FnMut(&str),
) -> Result<String, DemoError> {
    let expected = Expected {
        pipelines: plan.pipelines.clone(),
        seeds: plan.seeds,
    };
    let ids: Vec<String> = read_prompts(&layout.train_prompts())?
        .into_iter()
        .map(|p| p.id)
        .collect();
    let v = verify(&layout.candidates(), &layout.clean(), &expected, &ids)?;
    log(&v.report.to_string());
    let complete = v.prompts.iter().filter(|p| p.complete()).count();
    Ok(format!(
        "{} records of {complete}/{} complete prompts",
        v.report.written,
        ids.len()
    ))
}

/// `label verify`: verifiable rewards (GSM8K answers, IFEval instructions).
pub fn label_verifiable(layout: &Layout, log: &mut dyn FnMut(&str)) -> Result<String, DemoError> {
    let r = adasamp_curate::verifiable::label::label_verified(&layout.clean(), &layout.verified())?;
    log(&r.to_string());
    Ok(format!("{} records", r.written + r.already_done))
}

/// `label diversity`: self-BLEU and embedding entropy across seeds.
pub fn label_diverse(layout: &Layout, log: &mut dyn FnMut(&str)) -> Result<String, DemoError> {
    let r = label_diversity(
        &layout.verified(),
        &layout.diverse(),
        &DiversityOptions::default(),
        log,
    )?;
    log(&r.to_string());
    Ok(format!("{} records", r.written + r.already_done))
}

/// `label quality`: a Swiss tournament per (prompt, seed), judged by the local model (or the
/// first endpoint), Bradley–Terry ratings.
pub fn label_judged(
    plan: &Plan,
    layout: &Layout,
    source: &Source,
    log: &mut dyn FnMut(&str),
) -> Result<String, DemoError> {
    // Every tournament's round in one judge call (at most one comparison per candidate and
    // order: pipelines / 2 pairs × 2 orders per group): the local judge's prefix cache serves
    // most of each judging prompt (template, instructions, question) from the step before.
    let opts = TournamentOptions {
        extra_rounds: plan.judge_extra_rounds,
        seed: plan.seed,
        batch: plan.candidate_count().max(1),
    };
    let r = match source.endpoints.first() {
        Some(url) => {
            let mut judge = EndpointJudge::connect(
                url,
                None,
                8,
                HttpOptions::default(),
                source.api_key.as_deref(),
            )?;
            label_quality(&layout.diverse(), &layout.labelled(), &mut judge, &opts)?
        }
        None => {
            let mut judge = LocalJudge::new(load_model(plan, source, log)?);
            label_quality(&layout.diverse(), &layout.labelled(), &mut judge, &opts)?
        }
    };
    log(&r.to_string());
    Ok(format!("{} records", r.written + r.already_done))
}

/// `score`: the training file (top 1 per (prompt, seed)), and the best single heuristic of the
/// grid by mean score over every labelled candidate (`best-heuristic.json` with the table,
/// `best-heuristic.yaml` the pipeline).
pub fn score_and_choose(
    plan: &Plan,
    layout: &Layout,
    log: &mut dyn FnMut(&str),
) -> Result<String, DemoError> {
    let [a, b, c] = plan.weights;
    let weights = Weights::on_grid(a, b, c)?;
    let r = score(
        &layout.labelled(),
        &layout.train_data(),
        &weights,
        &ScoreOptions::default(),
    )?;
    log(&r.to_string());
    if r.written == 0 {
        return Err(DemoError::NothingToScore);
    }
    let records = read_records(&layout.labelled())?;
    let best = best_heuristic(&records, &weights)?;
    let spec = plan
        .grid()?
        .pipelines
        .into_iter()
        .find(|p| p.name == best.pipeline)
        .ok_or_else(|| DemoError::BadPlan {
            field: "pipelines",
            value: best.pipeline.clone(),
            message: "the labelled records name a pipeline outside the plan".into(),
        })?;
    let file = PipelineFile {
        pipelines: vec![spec],
    };
    write_atomic(&layout.best_yaml(), file.to_yaml().as_bytes())?;
    write_json(&layout.best_json(), &best)?;
    Ok(format!(
        "{} training records; best single heuristic {} (mean score {:.3})",
        r.written, best.pipeline, best.standings[0].mean_score
    ))
}

/// `train`: the plan's learned sampler on the training file's replayed rows, fast CPU engine;
/// an interrupted run continues from its last checkpoint. Returns the summary and the final
/// checkpoint directory.
pub fn train_sampler(
    plan: &Plan,
    layout: &Layout,
    source: &Source,
    log: &mut dyn FnMut(&str),
) -> Result<(String, PathBuf), DemoError> {
    let config = SamplerConfig::from_yaml_str(&plan.sampler_yaml, "the demo plan")?;
    let settings = ReplaySettings {
        model: Some(model_path(source, log)?),
        backend: BackendChoice::Auto,
        cache_root: layout.replay(),
        precision: RowPrecision::F16,
        max_seq_len: Some(plan.max_seq_len),
        device: adasamp_engine::ComputeDevice::Cpu,
    };
    let replay_bar = adasamp_curate::stage::progress(0, "records replayed");
    let replayed = train::replayed_dataset(&layout.train_data(), &settings, log, &mut |d, t| {
        replay_bar.set_length(t as u64);
        replay_bar.set_position(d as u64);
    })?;
    replay_bar.finish_and_clear();
    let ds = &replayed.dataset;
    if ds.num_rows() == 0 {
        return Err(DemoError::NothingToScore);
    }
    let cfg = TrainConfig {
        token_batch: plan.train_token_batch,
        lr: plan.train_lr,
        warmup_steps: plan.train_warmup,
        epochs: plan.train_epochs,
        save_every: 25,
        eval_every: 0,
        eval_fraction: plan.train_held_out,
        seed: plan.seed,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        engine: Engine::Fast,
        ..TrainConfig::default()
    };
    log(&format!(
        "training {config} on {} positions of {} records (fast CPU engine)",
        ds.num_rows(),
        ds.records().len()
    ));
    let mut bar = train::ProgressObserver {
        bar: adasamp_curate::stage::progress(0, "steps"),
    };
    let report = train::train(
        ds,
        &replayed.data_sha256,
        &config,
        &cfg,
        &candle_core::Device::Cpu,
        &layout.sampler(),
        true,
        &mut bar,
    )?;
    bar.bar.finish_and_clear();
    let last = report
        .last_step
        .as_ref()
        .map(|m| format!("; last loss {:.4}, KL {:.4}", m.loss, m.kl))
        .unwrap_or_default();
    Ok((
        format!(
            "{} steps on {} positions ({:.1} positions/s){last}",
            report.steps, report.train_rows, report.rows_per_s
        ),
        report.checkpoint,
    ))
}

/// The final checkpoint directory of a completed training stage.
pub fn final_checkpoint(layout: &Layout) -> PathBuf {
    layout.sampler().join("final")
}

/// Counts the records (non-empty lines) of a JSONL file.
pub fn count_lines(path: &Path) -> Result<usize, DemoError> {
    let text = std::fs::read_to_string(path).map_err(|e| DemoError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(text.lines().filter(|l| !l.trim().is_empty()).count())
}
