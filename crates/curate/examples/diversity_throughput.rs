//! Throughput of the diversity labels on this machine: self-BLEU (records/s, groups of 8),
//! sentence embeddings (records/s) and the whole `label diversity` stage (JSONL in and out) on
//! synthetic generations of about `--words` words.
//!
//! ```text
//! cargo run --release -p adasamp-curate --example diversity_throughput -- \
//!     [--groups G] [--words W] [--embed N] [--batch B]
//! ```
//! (Without a release build at hand, `cargo run --config
//! 'profile.dev.package.adasamp-curate.opt-level=3' …` gives nearly the same numbers: the
//! workspace's dev profile already optimises candle and tokenizers.) Each rate is printed per
//! wall-clock second and per CPU-second of the process's threads: on a shared machine the
//! second is the steadier one.
//! Needs the default embedder (`adasamp model fetch embedder`) for the embedding part.

use std::time::Instant;

use adasamp_curate::diversity::{bleu, embed, entropy, label_diversity, DiversityOptions};

const VOCAB: &[&str] = &[
    "the",
    "a",
    "sea",
    "boat",
    "storm",
    "harbour",
    "sailor",
    "ran",
    "drifted",
    "home",
    "calm",
    "slowly",
    "night",
    "light",
    "over",
    "under",
    "and",
    "but",
    "then",
    "with",
    "old",
    "new",
    "small",
    "wind",
    "rose",
    "fell",
    ",",
    ".",
    "!",
    "?",
    "1984",
    "3.5",
    "well-known",
    "it's",
];

/// A deterministic pseudo-random text of `words` words (a 64-bit LCG).
fn text(seed: u64, words: usize) -> String {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..words)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            VOCAB[(s >> 33) as usize % VOCAB.len()]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU seconds the live threads of this process have used (Linux `/proc/self/task/*/stat`,
/// USER_HZ = 100; 0 elsewhere). Wall-clock rates depend on what else the machine runs; rates
/// per CPU-second much less.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .map(|stat| {
            // After the command name (which ends with ')'), from the state: utime and stime
            // are the 12th and 13th fields.
            let rest = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
            (field(11) + field(12)) / 100.0
        })
        .sum()
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (t, c) = (Instant::now(), cpu_seconds());
    let out = f();
    (out, t.elapsed().as_secs_f64(), cpu_seconds() - c)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `what: N records in W s wall (R records/s), C CPU-s (Rc records per CPU-second)`.
fn rate(what: &str, n: usize, wall: f64, cpu: f64, detail: &str) {
    println!(
        "{what}: {n} records{detail} in {wall:.3} s = {:.1} records/s; {cpu:.2} CPU-s = {:.1} records/CPU-s",
        n as f64 / wall,
        n as f64 / cpu.max(0.01)
    );
}

fn main() {
    let groups = arg("--groups", 200);
    let words = arg("--words", 200);
    let batch = arg("--batch", embed::DEFAULT_BATCH_SIZE);
    let per_group = 8;
    let texts: Vec<Vec<String>> = (0..groups)
        .map(|g| {
            (0..per_group)
                .map(|s| text((g * per_group + s) as u64, words))
                .collect()
        })
        .collect();
    let records = groups * per_group;

    let (mean, wall, cpu) = timed(|| {
        let total: f64 = texts
            .iter()
            .map(|g| {
                let refs: Vec<&str> = g.iter().map(String::as_str).collect();
                bleu::self_bleu(&refs).unwrap_or(0.0)
            })
            .sum();
        total / groups as f64
    });
    let detail = format!(" ({groups} groups of {per_group}, {words} words, mean {mean:.2})");
    rate("self-BLEU", records, wall, cpu, &detail);

    let e = match embed::Embedder::load(&embed::default_embedder_dir()) {
        Ok(e) => e,
        Err(err) => {
            println!("embeddings: skipped ({err}); run `adasamp model fetch embedder`");
            return;
        }
    };
    let n = records.min(arg("--embed", 256));
    let flat: Vec<&str> = texts.iter().flatten().take(n).map(String::as_str).collect();
    let tokens: usize = flat
        .iter()
        .map(|t| e.token_ids(t).map(|t| t.len()).unwrap_or(0))
        .sum();
    let (emb, wall, cpu) = timed(|| e.embed(&flat, batch).expect("embedding"));
    let detail = format!(
        " ({:.0} tokens each after truncation, batch {batch})",
        tokens as f64 / n as f64
    );
    rate("embeddings", n, wall, cpu, &detail);
    let (h, wall, cpu) = timed(|| {
        emb.chunks(per_group)
            .map(|g| entropy::embedding_entropy(g).unwrap_or(0.0))
            .sum::<f64>()
    });
    let detail = format!(
        " ({} groups, mean {:.3} bits)",
        n / per_group,
        h / (n / per_group).max(1) as f64
    );
    rate("entropy", n, wall, cpu, &detail);

    // The whole stage on the same records: read, group, label, write.
    let dir = std::env::temp_dir().join(format!("adasamp-div-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    let lines: String = texts
        .iter()
        .enumerate()
        .flat_map(|(g, group)| {
            group.iter().enumerate().map(move |(s, t)| {
                serde_json::json!({
                    "id": format!("q{g}/p/s{s}"), "prompt": "Tell a story.", "system_prompt": null,
                    "generation": t, "seed": s, "prompt_id": format!("q{g}"),
                    "sampler_info": {"name": "p", "config": {"name": "p", "processors": []}},
                })
                .to_string()
                    + "\n"
            })
        })
        .take(n)
        .collect();
    std::fs::write(&input, lines).expect("write input");
    let options = DiversityOptions {
        embedder: Some(embed::default_embedder_dir()),
        batch_size: batch,
        only_checked: false,
    };
    let (report, wall, cpu) =
        timed(|| label_diversity(&input, &output, &options, &mut |_| {}).expect("stage"));
    rate("label diversity stage", report.written, wall, cpu, "");
    let _ = std::fs::remove_dir_all(&dir);
}
