//! Throughput of the diversity labels on this machine: self-BLEU (records/s, groups of 8) and
//! sentence embeddings (records/s) on synthetic generations of about `--words` words.
//!
//! ```text
//! cargo run --release -p adasamp-curate --example diversity_throughput -- [--groups G] [--words W] [--batch B]
//! ```
//! Needs the default embedder (`adasamp model fetch embedder`) for the embedding part.

use std::time::Instant;

use adasamp_curate::diversity::{bleu, embed, entropy};

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

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

    let t = Instant::now();
    let mut checksum = 0.0;
    for g in &texts {
        let refs: Vec<&str> = g.iter().map(String::as_str).collect();
        checksum += bleu::self_bleu(&refs).unwrap_or(0.0);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "self-BLEU: {records} records ({groups} groups of {per_group}, {words} words) in {secs:.3} s = {:.0} records/s (mean {:.2})",
        records as f64 / secs,
        checksum / groups as f64
    );

    let dir = embed::default_embedder_dir();
    let e = match embed::Embedder::load(&dir) {
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
    let t = Instant::now();
    let emb = e.embed(&flat, batch).expect("embedding");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "embeddings: {n} records ({:.0} tokens each after truncation, batch {batch}) in {secs:.3} s = {:.1} records/s",
        tokens as f64 / n as f64,
        n as f64 / secs
    );
    let t = Instant::now();
    let mut h = 0.0;
    for g in emb.chunks(per_group) {
        h += entropy::embedding_entropy(g).unwrap_or(0.0);
    }
    println!(
        "entropy: {} groups in {:.4} s (mean {:.3} bits)",
        n / per_group,
        t.elapsed().as_secs_f64(),
        h / (n / per_group).max(1) as f64
    );
}
