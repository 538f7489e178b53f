//! The PyTorch reference of `bench-gpu`'s learned-sampler rows: runs
//! `benches/reference/gpu_sampler.py` (fp32 eager and bf16 `torch.compile`, forward and a
//! training step) in the same process tree as the fused measurements, reads the one JSON object
//! it prints, and turns it into table rows that compare the fused kernels with each PyTorch mode.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::BenchRow;

/// The script's path relative to the repository root (what `--pytorch-reference auto` looks for
/// under the current directory).
pub const DEFAULT_SCRIPT: &str = "benches/reference/gpu_sampler.py";

/// A PyTorch mode of the script, in the order its rows are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// bfloat16 `torch.compile` (the training step: f32 master weights under bf16 autocast).
    Bf16Compiled,
    /// float32 eager PyTorch.
    Fp32Eager,
}

impl Mode {
    /// Both modes, in table order.
    pub const ALL: [Mode; 2] = [Mode::Bf16Compiled, Mode::Fp32Eager];

    /// The key of the mode in the script's JSON.
    pub fn key(self) -> &'static str {
        match self {
            Mode::Bf16Compiled => "bf16_compiled",
            Mode::Fp32Eager => "fp32_eager",
        }
    }

    /// The mode's name in the table.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Bf16Compiled => "PyTorch bf16 torch.compile",
            Mode::Fp32Eager => "PyTorch fp32 eager",
        }
    }
}

/// What the fused rows measured, which the script must measure too.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceSetup {
    /// The sampler configuration as the script's `--config-json`.
    pub config_json: String,
    /// Vocabulary of the forward measurements.
    pub forward_vocab: usize,
    /// Batch sizes of the forward measurements.
    pub batches: Vec<usize>,
    /// Vocabulary of the training step.
    pub train_vocab: usize,
    /// Positions per training step.
    pub train_positions: usize,
    /// Timed repetitions per measurement.
    pub iters: usize,
}

impl ReferenceSetup {
    /// The script's command-line arguments for this setup.
    pub fn script_args(&self) -> Vec<String> {
        let batches: Vec<String> = self.batches.iter().map(|b| b.to_string()).collect();
        vec![
            "--config-json".into(),
            self.config_json.clone(),
            "--forward-vocab".into(),
            self.forward_vocab.to_string(),
            "--batches".into(),
            batches.join(","),
            "--train-vocab".into(),
            self.train_vocab.to_string(),
            "--train-positions".into(),
            self.train_positions.to_string(),
            "--iters".into(),
            self.iters.to_string(),
        ]
    }
}

/// The script's measurements (its stdout JSON).
#[derive(Clone, Debug, PartialEq)]
pub struct PytorchReference {
    /// The CUDA device PyTorch ran on, by name.
    pub device: String,
    /// PyTorch's version.
    pub torch: String,
    /// Forward time in ms per mode and batch size.
    pub forward_ms: BTreeMap<Mode, BTreeMap<usize, f64>>,
    /// Training positions per second per mode (forward, loss, backward and AdamW per step).
    pub train_positions_per_s: BTreeMap<Mode, f64>,
}

/// Why the PyTorch reference gave no measurements.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// The interpreter could not be started.
    #[error("PyTorch reference `{command}`: could not start: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The script ended with a failure status (its stderr went to this command's stderr).
    #[error("PyTorch reference `{command}`: exited with {status} (its messages are above)")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// Its stdout is not one JSON object.
    #[error(
        "PyTorch reference `{command}`: stdout is not a JSON object: {reason}; stdout: {stdout:?}"
    )]
    Malformed {
        /// The command line.
        command: String,
        /// What is wrong.
        reason: String,
        /// The start of its stdout.
        stdout: String,
    },
    /// A key of the schema is missing.
    #[error("PyTorch reference `{command}`: key `{key}` is missing from its JSON")]
    MissingKey {
        /// The command line.
        command: String,
        /// The dotted key path, e.g. `forward_ms.bf16_compiled.16`.
        key: String,
    },
    /// A key holds a value of the wrong type, a non-positive or non-finite figure, or a setup
    /// other than the one asked for.
    #[error("PyTorch reference `{command}`: `{key}` = {value}: {reason}")]
    BadValue {
        /// The command line.
        command: String,
        /// The dotted key path.
        key: String,
        /// The value found.
        value: String,
        /// What was expected.
        reason: String,
    },
}

/// How to run the script: the interpreter and the script's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceCommand {
    /// The interpreter (`python3`).
    pub python: String,
    /// The script.
    pub script: PathBuf,
}

impl fmt::Display for ReferenceCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.python, self.script.display())
    }
}

impl ReferenceCommand {
    /// Runs the script with `setup`'s arguments (its stderr goes to this process's stderr, as
    /// progress) and parses its stdout.
    pub fn run(&self, setup: &ReferenceSetup) -> Result<PytorchReference, ReferenceError> {
        let args = setup.script_args();
        let command = format!("{self} {}", shell_words(&args));
        let out = Command::new(&self.python)
            .arg(&self.script)
            .args(&args)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|source| ReferenceError::Spawn {
                command: command.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(ReferenceError::Failed {
                command,
                status: out.status,
            });
        }
        parse_reference(&String::from_utf8_lossy(&out.stdout), setup, &command)
    }
}

/// `args` joined by spaces, each quoted where it holds characters a shell would split on.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.,/:=".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses the script's stdout (the last non-empty line: one JSON object with `device`, `torch`,
/// `forward_vocab`, `forward_ms.{mode}.{batch}`, `train_vocab`, `train_positions` and
/// `train_positions_per_s.{mode}`) and checks that it measured `setup`. `command` names the
/// source in errors.
pub fn parse_reference(
    stdout: &str,
    setup: &ReferenceSetup,
    command: &str,
) -> Result<PytorchReference, ReferenceError> {
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let malformed = |reason: String| ReferenceError::Malformed {
        command: command.to_string(),
        reason,
        stdout: stdout.chars().take(400).collect(),
    };
    let line = line.ok_or_else(|| malformed("it is empty".into()))?;
    let json: Value = serde_json::from_str(line).map_err(|e| malformed(e.to_string()))?;
    if !json.is_object() {
        return Err(malformed("not an object".into()));
    }
    let fields = Fields {
        json: &json,
        command,
    };
    let device = fields.string("device")?;
    let torch = fields.string("torch")?;
    fields.expect_count("forward_vocab", setup.forward_vocab)?;
    fields.expect_count("train_vocab", setup.train_vocab)?;
    fields.expect_count("train_positions", setup.train_positions)?;
    let mut forward_ms = BTreeMap::new();
    let mut train_positions_per_s = BTreeMap::new();
    for mode in Mode::ALL {
        let per_batch = setup
            .batches
            .iter()
            .map(|&b| {
                let key = format!("forward_ms.{}.{b}", mode.key());
                Ok((b, fields.figure(&key)?))
            })
            .collect::<Result<BTreeMap<_, _>, ReferenceError>>()?;
        forward_ms.insert(mode, per_batch);
        let key = format!("train_positions_per_s.{}", mode.key());
        train_positions_per_s.insert(mode, fields.figure(&key)?);
    }
    Ok(PytorchReference {
        device,
        torch,
        forward_ms,
        train_positions_per_s,
    })
}

/// Typed access to the script's JSON by dotted key paths, with errors naming the path.
struct Fields<'a> {
    json: &'a Value,
    command: &'a str,
}

impl Fields<'_> {
    /// The value at the dotted `key`.
    fn get(&self, key: &str) -> Result<&Value, ReferenceError> {
        key.split('.')
            .try_fold(self.json, |v, part| v.get(part))
            .ok_or_else(|| ReferenceError::MissingKey {
                command: self.command.to_string(),
                key: key.to_string(),
            })
    }

    /// A `BadValue` error for `key`.
    fn bad(&self, key: &str, value: &Value, reason: &str) -> ReferenceError {
        ReferenceError::BadValue {
            command: self.command.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The string at `key`.
    fn string(&self, key: &str) -> Result<String, ReferenceError> {
        let v = self.get(key)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.bad(key, v, "expected a string"))
    }

    /// The finite positive number at `key` (a time or a rate).
    fn figure(&self, key: &str) -> Result<f64, ReferenceError> {
        let v = self.get(key)?;
        match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(self.bad(key, v, "expected a finite number above 0")),
        }
    }

    /// Checks that `key` holds the integer `expected`.
    fn expect_count(&self, key: &str, expected: usize) -> Result<(), ReferenceError> {
        let v = self.get(key)?;
        if v.as_u64() == Some(expected as u64) {
            Ok(())
        } else {
            Err(self.bad(key, v, &format!("expected {expected}, as the fused rows")))
        }
    }
}

/// One fused figure of the learned-sampler rows that has a PyTorch counterpart.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedFigure {
    /// The table's `measure` column of the fused row.
    pub measure: String,
    /// The table's `model` column of the fused row (the sampler and what is measured).
    pub model: String,
    /// What is compared: a forward at a batch size (ms) or a training rate (positions/s).
    pub kind: FusedKind,
    /// The fused kernels' figure.
    pub value: f64,
}

/// What a [`FusedFigure`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusedKind {
    /// Forward time in ms at this batch size (lower is better).
    ForwardMs(usize),
    /// Training positions per second at this many positions per step (higher is better).
    TrainPositionsPerS(usize),
}

/// For every fused figure, one row per PyTorch mode ([`Mode::ALL`] order) with the PyTorch figure
/// of the same measurement as the named reference; the ratio reads "the fused kernels are X×
/// faster" (reference ms ÷ fused ms for times, fused ÷ reference for rates). A forward batch the
/// reference did not measure is an error naming it.
pub fn pytorch_rows(
    fused: &[FusedFigure],
    reference: &PytorchReference,
) -> Result<Vec<BenchRow>, String> {
    let mut rows = Vec::new();
    for f in fused {
        for mode in Mode::ALL {
            let (reference_value, batch, what, lower_is_better) = match f.kind {
                FusedKind::ForwardMs(b) => {
                    let ms = reference
                        .forward_ms
                        .get(&mode)
                        .and_then(|m| m.get(&b))
                        .ok_or_else(|| {
                            format!(
                                "the PyTorch reference has no {} forward at batch {b}",
                                mode.key()
                            )
                        })?;
                    (*ms, b, "forward", true)
                }
                FusedKind::TrainPositionsPerS(p) => {
                    let rate = reference.train_positions_per_s.get(&mode).ok_or_else(|| {
                        format!("the PyTorch reference has no {} training step", mode.key())
                    })?;
                    (*rate, p, "step: forward + loss + backward + AdamW", false)
                }
            };
            rows.push(BenchRow {
                measure: f.measure.clone(),
                model: f.model.clone(),
                backend: "fused kernels".into(),
                batch,
                value: f.value,
                reference: format!("{} {what}, torch {}", mode.label(), reference.torch),
                reference_value,
                lower_is_better,
                sampling_share: None,
                copy_share: None,
            });
        }
    }
    Ok(rows)
}

/// The note under the table naming where the PyTorch rows come from.
pub fn source_note(command: &ReferenceCommand, reference: &PytorchReference) -> String {
    format!(
        "PyTorch reference: `{command}` in the same run, torch {} on {}; its training step runs \
         forward, loss, backward and AdamW on inputs already on the GPU.",
        reference.torch, reference.device
    )
}

/// What `--pytorch-reference` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReferenceChoice {
    /// [`DEFAULT_SCRIPT`] under the current directory, if present and the interpreter imports
    /// torch; otherwise a note saying why not.
    Auto,
    /// This script (an error if it is not a file).
    Script(PathBuf),
}

impl std::str::FromStr for ReferenceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" => Err("expected `auto` or the path of gpu_sampler.py".into()),
            "auto" => Ok(ReferenceChoice::Auto),
            p => Ok(ReferenceChoice::Script(PathBuf::from(p))),
        }
    }
}

/// An error unless `choice` is `auto` or an existing file.
pub fn check_script(choice: &ReferenceChoice) -> Result<(), String> {
    match choice {
        ReferenceChoice::Script(p) if !p.is_file() => Err(format!(
            "--pytorch-reference {}: no such file (expected gpu_sampler.py or `auto`)",
            p.display()
        )),
        _ => Ok(()),
    }
}

/// The command to run for `choice` with `python`, or a note saying why there is none (`auto`
/// only: without the script under `cwd` or without torch for `python`). An explicit script that
/// is not a file is an error.
pub fn resolve(
    choice: &ReferenceChoice,
    python: &str,
    cwd: &Path,
) -> Result<Result<ReferenceCommand, String>, String> {
    check_script(choice)?;
    match choice {
        ReferenceChoice::Script(p) => Ok(Ok(ReferenceCommand {
            python: python.to_string(),
            script: p.clone(),
        })),
        ReferenceChoice::Auto => {
            let script = cwd.join(DEFAULT_SCRIPT);
            if !script.is_file() {
                return Ok(Err(format!(
                    "PyTorch reference not run: --pytorch-reference auto found no {DEFAULT_SCRIPT} \
                     under {}",
                    cwd.display()
                )));
            }
            let probe = Command::new(python)
                .args(["-c", "import torch"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match probe {
                Ok(s) if s.success() => Ok(Ok(ReferenceCommand {
                    python: python.to_string(),
                    script,
                })),
                Ok(s) => Ok(Err(format!(
                    "PyTorch reference not run: `{python} -c \"import torch\"` exited with {s}"
                ))),
                Err(e) => Ok(Err(format!(
                    "PyTorch reference not run: could not start `{python}`: {e}"
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> ReferenceSetup {
        ReferenceSetup {
            config_json: r#"{"architecture":"sampling_network","d_model":32}"#.into(),
            forward_vocab: 128_256,
            batches: vec![1, 16],
            train_vocab: 49_152,
            train_positions: 32,
            iters: 5,
        }
    }

    const GOOD: &str = r#"{"device": "NVIDIA H100", "torch": "2.11.0", "config": {},
        "forward_vocab": 128256,
        "forward_ms": {"fp32_eager": {"1": 19.0, "16": 64.0}, "bf16_compiled": {"1": 3.0, "16": 12.0}},
        "train_vocab": 49152, "train_positions": 32,
        "train_positions_per_s": {"fp32_eager": 320.0, "bf16_compiled": 1000.0}}"#;

    fn one_line(json: &str) -> String {
        json.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn a_good_report_parses_after_other_stdout_lines() {
        let out = format!("compiling...\n{}\n\n", one_line(GOOD));
        let r = parse_reference(&out, &setup(), "cmd").unwrap();
        assert_eq!(r.device, "NVIDIA H100");
        assert_eq!(r.torch, "2.11.0");
        assert_eq!(r.forward_ms[&Mode::Fp32Eager][&16], 64.0);
        assert_eq!(r.forward_ms[&Mode::Bf16Compiled][&1], 3.0);
        assert_eq!(r.train_positions_per_s[&Mode::Bf16Compiled], 1000.0);
    }

    #[test]
    fn malformed_output_is_an_error_naming_the_command() {
        for out in [
            "",
            "  \n",
            "{\"device\": ",
            "[1, 2]",
            "Traceback (most recent call last)",
        ] {
            let e = parse_reference(out, &setup(), "python3 x.py").unwrap_err();
            assert!(
                matches!(e, ReferenceError::Malformed { .. }),
                "{out:?}: {e}"
            );
            assert!(e.to_string().contains("`python3 x.py`"), "{e}");
        }
    }

    #[test]
    fn a_missing_key_is_named() {
        for (drop, key) in [
            ("\"torch\": \"2.11.0\",", "torch"),
            ("\"16\": 12.0", "forward_ms.bf16_compiled.16"),
            ("\"train_positions\": 32,", "train_positions"),
            ("\"fp32_eager\": 320.0,", "train_positions_per_s.fp32_eager"),
        ] {
            let json = GOOD.replace(drop, "").replace(", }", "}");
            assert_ne!(json, GOOD, "{drop}");
            let e = parse_reference(&one_line(&json), &setup(), "cmd").unwrap_err();
            match &e {
                ReferenceError::MissingKey { key: k, .. } => assert_eq!(k, key),
                other => panic!("{drop}: {other}"),
            }
            assert!(e.to_string().contains(&format!("`{key}`")), "{e}");
        }
    }

    #[test]
    fn bad_values_and_other_setups_are_named() {
        for (from, to, key) in [
            ("\"1\": 3.0", "\"1\": -3.0", "forward_ms.bf16_compiled.1"),
            ("\"1\": 3.0", "\"1\": \"3\"", "forward_ms.bf16_compiled.1"),
            ("320.0", "0", "train_positions_per_s.fp32_eager"),
            (
                "\"forward_vocab\": 128256",
                "\"forward_vocab\": 32000",
                "forward_vocab",
            ),
            (
                "\"train_positions\": 32",
                "\"train_positions\": 16",
                "train_positions",
            ),
            ("\"torch\": \"2.11.0\"", "\"torch\": 2", "torch"),
        ] {
            let json = GOOD.replace(from, to);
            let e = parse_reference(&one_line(&json), &setup(), "cmd").unwrap_err();
            match &e {
                ReferenceError::BadValue { key: k, .. } => assert_eq!(k, key, "{e}"),
                other => panic!("{to}: {other}"),
            }
        }
    }

    #[test]
    fn script_args_carry_the_fused_setup() {
        let args = setup().script_args();
        let joined = shell_words(&args);
        assert_eq!(
            joined,
            "--config-json '{\"architecture\":\"sampling_network\",\"d_model\":32}' \
             --forward-vocab 128256 --batches 1,16 --train-vocab 49152 --train-positions 32 \
             --iters 5"
        );
    }

    fn reference() -> PytorchReference {
        parse_reference(&one_line(GOOD), &setup(), "cmd").unwrap()
    }

    #[test]
    fn rows_read_as_the_fused_speed_up_over_each_mode() {
        let fused = [
            FusedFigure {
                measure: "learned sampler, ms (lower is better)".into(),
                model: "sampling_network: forward (f16), batch 16".into(),
                kind: FusedKind::ForwardMs(16),
                value: 2.0,
            },
            FusedFigure {
                measure: "learned sampler, positions/s (higher is better)".into(),
                model: "sampling_network: training".into(),
                kind: FusedKind::TrainPositionsPerS(32),
                value: 5000.0,
            },
        ];
        let rows = pytorch_rows(&fused, &reference()).unwrap();
        let got: Vec<(usize, &str, f64)> = rows
            .iter()
            .map(|r| (r.batch, r.reference.as_str(), r.ratio()))
            .collect();
        assert_eq!(
            got,
            vec![
                (16, "PyTorch bf16 torch.compile forward, torch 2.11.0", 6.0),
                (16, "PyTorch fp32 eager forward, torch 2.11.0", 32.0),
                (
                    32,
                    "PyTorch bf16 torch.compile step: forward + loss + backward + AdamW, torch 2.11.0",
                    5.0
                ),
                (
                    32,
                    "PyTorch fp32 eager step: forward + loss + backward + AdamW, torch 2.11.0",
                    15.625
                ),
            ]
        );
        assert!(rows.iter().all(|r| r.backend == "fused kernels"));
        assert!(
            rows[0].markdown().contains(
                "| 2.00 | PyTorch bf16 torch.compile forward, torch 2.11.0 (12.00) | 6.00× |"
            ),
            "{}",
            rows[0].markdown()
        );
    }

    #[test]
    fn a_batch_the_reference_did_not_measure_is_named() {
        let fused = [FusedFigure {
            measure: "m".into(),
            model: "x".into(),
            kind: FusedKind::ForwardMs(64),
            value: 1.0,
        }];
        let e = pytorch_rows(&fused, &reference()).unwrap_err();
        assert!(e.contains("bf16_compiled forward at batch 64"), "{e}");
    }

    #[test]
    fn choices_parse_and_auto_without_the_script_is_a_note() {
        assert_eq!("auto".parse::<ReferenceChoice>(), Ok(ReferenceChoice::Auto));
        assert_eq!(
            "x/gpu_sampler.py".parse::<ReferenceChoice>(),
            Ok(ReferenceChoice::Script("x/gpu_sampler.py".into()))
        );
        assert!("".parse::<ReferenceChoice>().is_err());
        let empty = std::env::temp_dir();
        let note = resolve(&ReferenceChoice::Auto, "python3", &empty)
            .unwrap()
            .unwrap_err();
        assert!(
            note.contains("found no benches/reference/gpu_sampler.py"),
            "{note}"
        );
        let missing = ReferenceChoice::Script(empty.join("no-such-gpu_sampler.py"));
        let e = resolve(&missing, "python3", &empty).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
    }

    #[test]
    fn auto_with_an_interpreter_that_cannot_import_torch_is_a_note() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        // `false` ignores its arguments and fails, as an interpreter without torch would.
        let note = resolve(&ReferenceChoice::Auto, "false", &root)
            .unwrap()
            .unwrap_err();
        assert!(
            note.contains("`false -c \"import torch\"` exited"),
            "{note}"
        );
        let note = resolve(&ReferenceChoice::Auto, "/no/such/python", &root)
            .unwrap()
            .unwrap_err();
        assert!(note.contains("could not start `/no/such/python`"), "{note}");
        let cmd = resolve(&ReferenceChoice::Auto, "true", &root)
            .unwrap()
            .unwrap();
        assert_eq!(cmd.script, root.join(DEFAULT_SCRIPT));
    }

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pytorch_reference_fixture.sh")
    }

    #[test]
    fn the_command_runs_with_the_setup_and_its_json_is_read() {
        let cmd = ReferenceCommand {
            python: "sh".into(),
            script: fixture(),
        };
        let r = cmd.run(&setup()).unwrap();
        assert_eq!(r.device, "fixture (no GPU)");
        // The fixture derives its figures from the arguments it was given.
        assert_eq!(r.forward_ms[&Mode::Bf16Compiled][&16], 16.5);
        assert_eq!(r.forward_ms[&Mode::Fp32Eager][&1], 10.0);
        assert_eq!(r.train_positions_per_s[&Mode::Fp32Eager], 32.0);
    }

    #[test]
    fn a_failing_or_missing_command_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("adasamp-pyref-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let failing = dir.join("fails.sh");
        std::fs::write(&failing, "echo 'no CUDA device' >&2; exit 3\n").unwrap();
        let cmd = ReferenceCommand {
            python: "sh".into(),
            script: failing.clone(),
        };
        let e = cmd.run(&setup()).unwrap_err();
        assert!(matches!(e, ReferenceError::Failed { .. }), "{e}");
        assert!(
            e.to_string()
                .contains(&format!("`sh {}", failing.display())),
            "{e}"
        );
        assert!(e.to_string().contains("exit status: 3"), "{e}");
        let garbage = dir.join("garbage.sh");
        std::fs::write(&garbage, "echo '{\"device\": 1'\n").unwrap();
        let e = ReferenceCommand {
            python: "sh".into(),
            script: garbage,
        }
        .run(&setup())
        .unwrap_err();
        assert!(matches!(e, ReferenceError::Malformed { .. }), "{e}");
        let e = ReferenceCommand {
            python: "/no/such/python".into(),
            script: failing,
        }
        .run(&setup())
        .unwrap_err();
        assert!(matches!(e, ReferenceError::Spawn { .. }), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
