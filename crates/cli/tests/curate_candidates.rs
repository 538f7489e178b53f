//! `adasamp candidates` and `adasamp verify` with the default model on a tiny set (2 prompts × 2
//! pipelines × 2 seeds): a clean run; a run killed (SIGKILL) mid-way and left with a torn
//! last line, then resumed — every key exactly once, the records those of the clean run; and the
//! `openai` backend against real `adasamp serve` processes: the same records, a pipeline a
//! server cannot run refused up front, a server killed mid-run (its work goes to the other one;
//! with no other, the run fails clearly and a rerun on a new server completes it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};

use adasamp_engine::record::{read_jsonl, CandidateRecord};

const PROMPTS: &str = r#"{"id": "hi", "prompt": "Say hi in one short sentence.", "source": "test", "checks": ["diversity"]}
{"id": "count", "prompt": "Count from one to five.", "system_prompt": "Be terse."}
"#;

/// Two grid-style pipelines (temperature first), as `adasamp grid` writes them.
const GRID: &str = "pipelines:
  - name: temp0.7
    processors:
      - {name: temperature, params: {temperature: 0.7}}
  - name: temp0.8_top_p0.9
    processors:
      - {name: temperature, params: {temperature: 0.8}}
      - {name: top_p, params: {top_p: 0.9}}
";

const SEEDS: &str = "2";
const MAX_NEW_TOKENS: &str = "12";

/// A directory holding the prompt file and the grid.
fn inputs(name: &str) -> PathBuf {
    let d = common::tmpdir(name);
    std::fs::write(d.join("prompts.jsonl"), PROMPTS).unwrap();
    std::fs::create_dir_all(d.join("samplers")).unwrap();
    std::fs::write(d.join("samplers/grid.yaml"), GRID).unwrap();
    d
}

/// `candidates` arguments for the inputs in `dir`, writing `out`, plus `extra`.
fn candidates_args(dir: &Path, out: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "candidates",
        "--prompts",
        "prompts.jsonl",
        "--grid",
        "samplers/grid.yaml",
        "--seeds",
        SEEDS,
        "--max-new-tokens",
        MAX_NEW_TOKENS,
        "--output",
        out,
        "--max-seq-len",
        "512",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    let _ = dir;
    a
}

fn run_in(dir: &Path, args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_adasamp"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run adasamp")
}

/// The records of a file by id; panics on a duplicate id.
fn by_id(path: &Path) -> BTreeMap<String, CandidateRecord> {
    let mut m = BTreeMap::new();
    for r in read_jsonl(path).unwrap() {
        let id = r.record.id.clone().unwrap();
        assert!(
            m.insert(id.clone(), r.record).is_none(),
            "{}: {id} twice",
            path.display()
        );
    }
    m
}

/// The records of one clean local run (computed once per test binary).
fn clean_run() -> &'static BTreeMap<String, CandidateRecord> {
    static CLEAN: OnceLock<BTreeMap<String, CandidateRecord>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    CLEAN.get_or_init(|| {
        let dir = inputs("cand-clean");
        let o = run_in(&dir, &candidates_args(&dir, "clean.jsonl", &[]));
        assert!(o.status.success(), "{}", common::stderr(&o));
        let err = common::stderr(&o);
        assert!(
            err.contains("candidates: read 8, wrote 8") && err.contains("records/s"),
            "{err}"
        );
        by_id(&dir.join("clean.jsonl"))
    })
}

/// Runs `adasamp ARGS` in `dir`, waits until `out` holds `n` complete lines (or the run ended),
/// then hands the process to `meanwhile` and waits for it.
fn run_interrupted(
    dir: &Path,
    args: &[String],
    out: &Path,
    n: usize,
    meanwhile: impl FnOnce(&mut Child),
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_adasamp"));
    cmd.args(args).current_dir(dir);
    let mut child = common::spawn_until_lines(&mut cmd, out, n);
    meanwhile(&mut child);
    child.wait_with_output().unwrap()
}

#[test]
fn candidates_resume_after_a_kill_and_verify_keeps_complete_prompts() {
    if !common::default_model_present("the candidates tests") {
        return;
    }
    let clean = clean_run();
    assert_eq!(clean.len(), 2 * 2 * 2);
    let r = &clean["count/temp0.8_top_p0.9/s1"];
    assert_eq!(r.system_prompt.as_deref(), Some("Be terse."));
    assert_eq!(r.extra["prompt_id"], "count");
    assert!(r.generation_tokens.as_ref().is_some_and(|t| !t.is_empty()));
    let r = &clean["hi/temp0.7/s0"];
    assert_eq!(
        r.system_prompt.as_deref(),
        Some("You are a helpful assistant.")
    );
    assert_eq!(r.extra["source"], "test");
    assert_eq!(r.sampler_info.config.processors[0].name, "temperature");

    // A run killed after its first records (one sequence at a time, so they come one by one),
    // then a torn last line as a kill mid-write leaves it.
    let dir = inputs("cand-kill");
    let out = dir.join("out.jsonl");
    let args = candidates_args(&dir, "out.jsonl", &["--batch-size", "1"]);
    run_interrupted(&dir, &args, &out, 2, |c| {
        let _ = c.kill();
    });
    let bytes = std::fs::read(&out).unwrap();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let whole = bytes[..complete].iter().filter(|&&b| b == b'\n').count();
    assert!(
        (1..8).contains(&whole),
        "the kill came mid-run: {whole} records"
    );
    // Cut the last record in half (bytes: possibly inside a character), as a kill mid-write
    // would: it is cut off and generated again.
    let start = bytes[..complete - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let cut = start + (complete - start) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&out)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    let whole = whole - 1;

    let o = run_in(&dir, &candidates_args(&dir, "out.jsonl", &[]));
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("({whole} already there")) && err.contains("incomplete last line"),
        "{err}"
    );
    assert_eq!(&by_id(&out), clean, "the resumed file is the clean run's");

    // A rerun has nothing left to do.
    let o = run_in(&dir, &candidates_args(&dir, "out.jsonl", &[]));
    assert!(
        common::stderr(&o).contains("wrote 0") && o.status.success(),
        "{}",
        common::stderr(&o)
    );

    // verify: complete as it is; drop one record and that prompt goes.
    let verify = |input: &str| {
        let a: Vec<String> = [
            "verify",
            "--seeds",
            SEEDS,
            "--grid",
            "samplers/grid.yaml",
            "--input",
            input,
            "--output",
            "clean.jsonl",
            "--prompts",
            "prompts.jsonl",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        run_in(&dir, &a)
    };
    let o = verify("out.jsonl");
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(by_id(&dir.join("clean.jsonl")).len(), 8);
    let lines: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"id\":\"hi/temp0.7/s1\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("holey.jsonl"), lines.concat()).unwrap();
    let o = verify("holey.jsonl");
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("3 × prompt hi incomplete: missing 1 of 4: temp0.7/s1")
            && err.contains("1 of 2 prompt(s) complete"),
        "{err}"
    );
    let kept = by_id(&dir.join("clean.jsonl"));
    assert_eq!(kept.len(), 4);
    assert!(kept.keys().all(|k| k.starts_with("count/")));
}

/// An `adasamp serve` process on a free port, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(samplers: Option<&Path>) -> Server {
        let mut args = vec!["--max-seq-len", "512"];
        if let Some(s) = samplers {
            args.push("--samplers");
            args.push(s.to_str().unwrap());
        }
        let (child, addr) = common::start_server(&args);
        Server {
            child,
            url: format!("http://{addr}"),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `candidates --backend openai` arguments for `endpoints`, plus `extra`.
fn openai_args(dir: &Path, out: &str, endpoints: &[&str], extra: &[&str]) -> Vec<String> {
    let mut a = candidates_args(dir, out, &["--backend", "openai", "--attempts", "3"]);
    for e in endpoints {
        a.push("--endpoint".into());
        a.push(e.to_string());
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// `args` with the grid file replaced by `grid`.
fn with_grid(mut args: Vec<String>, grid: &str) -> Vec<String> {
    let g = args.iter().position(|x| x == "samplers/grid.yaml").unwrap();
    args[g] = grid.into();
    args
}

/// The generation and how it ended, per id (what a server reports; the token ids it does not).
fn generations(
    m: &BTreeMap<String, CandidateRecord>,
) -> BTreeMap<String, (String, Option<String>, Option<usize>)> {
    m.iter()
        .map(|(id, r)| {
            (
                id.clone(),
                (
                    r.generation.clone(),
                    r.finish_reason.map(|f| format!("{f:?}")),
                    r.usage.map(|u| u.completion_tokens),
                ),
            )
        })
        .collect()
}

#[test]
fn openai_backend_against_adasamp_serve() {
    if !common::default_model_present("the candidates tests") {
        return;
    }
    let clean = clean_run();
    let dir = inputs("cand-openai");
    let samplers = dir.join("samplers");
    let mut a = Server::start(Some(&samplers));
    let mut b = Server::start(Some(&samplers));
    let bare = Server::start(None);

    // Refused up front: the grid's `temp0.8_top_p0.9` is not installed on `bare`, and llama.cpp's
    // order (adasamp's flat fields) applies temperature last.
    let o = run_in(&dir, &openai_args(&dir, "refused.jsonl", &[&bare.url], &[]));
    let err = common::stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("pipeline `temp0.8_top_p0.9`, stage `temperature`")
            && err.contains("not installed")
            && err.contains("nothing was sent"),
        "{err}"
    );
    assert!(
        !err.contains("`temp0.7`"),
        "temperature alone is flat: {err}"
    );
    let refused = dir.join("refused.jsonl");
    assert!(!refused.exists() || std::fs::read_to_string(&refused).unwrap().is_empty());
    // … and a generic server has no epsilon.
    std::fs::write(
        dir.join("eps.yaml"),
        "pipelines:\n  - name: eps\n    processors: [{name: temperature, params: {temperature: 0.7}}, {name: epsilon, params: {epsilon: 0.001}}]\n",
    )
    .unwrap();
    let args = openai_args(&dir, "refused.jsonl", &[&a.url], &["--remote", "generic"]);
    let o = run_in(&dir, &with_grid(args, "eps.yaml"));
    let err = common::stderr(&o);
    assert!(
        !o.status.success()
            && err.contains("pipeline `eps`, stage `epsilon`")
            && err.contains("vLLM"),
        "{err}"
    );

    // A pipeline not installed but flat goes as sampling fields, with the local run's result.
    std::fs::write(
        dir.join("flat.yaml"),
        &GRID[..GRID.find("  - name: temp0.8").unwrap()],
    )
    .unwrap();
    let args = openai_args(&dir, "flat.jsonl", &[&bare.url], &[]);
    let o = run_in(&dir, &with_grid(args, "flat.yaml"));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let flat = generations(&by_id(&dir.join("flat.jsonl")));
    let mut want = generations(clean);
    want.retain(|id, _| id.contains("/temp0.7/"));
    assert_eq!((flat.len(), flat), (4, want));

    // Two servers with the grid installed; one dies after the first records: the other
    // finishes its work, and the records are the local run's.
    let two = dir.join("two.jsonl");
    let args = openai_args(
        &dir,
        "two.jsonl",
        &[&a.url, &b.url],
        &["--max-concurrency", "1"],
    );
    let o = run_interrupted(&dir, &args, &two, 1, |_| b.kill());
    let err = common::stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}/: taken out of the rotation", b.url)),
        "{err}"
    );
    assert_eq!(generations(&by_id(&two)), generations(clean));

    // One server only, killed mid-run: a clear failure; a rerun on a new server completes it.
    let one = dir.join("one.jsonl");
    let args = openai_args(&dir, "one.jsonl", &[&a.url], &["--max-concurrency", "2"]);
    let o = run_interrupted(&dir, &args, &one, 1, |_| a.kill());
    let err = common::stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("no endpoint is left in the rotation") && err.contains("rerun to resume"),
        "{err}"
    );
    let c = Server::start(Some(&samplers));
    let o = run_in(&dir, &openai_args(&dir, "one.jsonl", &[&c.url], &[]));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let resumed = by_id(&one);
    assert_eq!(generations(&resumed), generations(clean));
    assert!(resumed.values().all(|r| r.generation_tokens.is_none()));
    drop(bare);
}
