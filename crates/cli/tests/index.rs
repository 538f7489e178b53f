//! `adasamp index build / info / count`, `adasamp label overlap` and `adasamp bench-index` end
//! to end, with a word-level tokenizer.json (no model needed).

mod common;

use common::{adasamp, stderr, stdout, tmpdir};

fn word_tokenizer(dir: &std::path::Path) -> std::path::PathBuf {
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..40).map(|i| (format!("w{i}"), i.into())).collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    let p = dir.join("tokenizer.json");
    std::fs::write(&p, json.to_string()).unwrap();
    p
}

fn record(prompt: &str, seed: u64, generation: &str) -> String {
    serde_json::json!({
        "id": format!("{prompt}/p/s{seed}"), "prompt": "q", "system_prompt": null,
        "generation": generation,
        "sampler_info": {"name": "p", "config": {"name": "p", "weight": 1.0, "processors": []}},
        "seed": seed, "prompt_id": prompt
    })
    .to_string()
        + "\n"
}

#[test]
fn index_build_count_and_label_overlap() {
    let d = tmpdir("index");
    let tok = word_tokenizer(&d);
    let corpus = d.join("c.jsonl");
    std::fs::write(
        &corpus,
        "{\"text\": \"w1 w2 w3 w4\"}\n{\"text\": \"w5 w6\"}\n",
    )
    .unwrap();
    let idx = d.join("idx");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let o = adasamp(&[
        "index",
        "build",
        "--corpus",
        &s(&corpus),
        "--tokenizer",
        &s(&tok),
        "--out",
        &s(&idx),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("6 tokens in 2 documents"),
        "{}",
        stdout(&o)
    );

    let o = adasamp(&["index", "info", "--index", &s(&idx)]);
    let info: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(info["tokens"], 6);
    assert_eq!(info["token_width"], "u16");

    let o = adasamp(&["index", "count", "--index", &s(&idx), "w2 w3 w9"]);
    let c: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (c["count"].as_u64(), c["longest_prefix"].as_u64()),
        (Some(0), Some(2))
    );

    let input = d.join("in.jsonl");
    std::fs::write(
        &input,
        record("a", 0, "w1 w2 w3 w4 w9 w5 w6 w9") + &record("a", 1, "w9 w9"),
    )
    .unwrap();
    let output = d.join("out.jsonl");
    let args = [
        "label",
        "overlap",
        "--index",
        &s(&idx),
        "--input",
        &s(&input),
        "--output",
        &s(&output),
    ];
    let o = adasamp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("read 2, wrote 2"), "{}", stdout(&o));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["overlap_matched_tokens"], 6);
    assert_eq!(lines[0]["overlap_coverage"], 0.75);
    assert_eq!(lines[0]["overlap_breaks"], 2);
    assert_eq!(lines[1]["overlap_matched_tokens"], 0);
    let o = adasamp(&args);
    assert!(
        stdout(&o).contains("wrote 0") && stdout(&o).contains("2 already there"),
        "{}",
        stdout(&o)
    );

    // A damaged index is refused with the file named.
    let t = idx.join("tokens.bin");
    let bytes = std::fs::read(&t).unwrap();
    std::fs::write(&t, &bytes[..bytes.len() - 2]).unwrap();
    let o = adasamp(&args);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("tokens.bin") && stderr(&o).contains("truncated"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bench_index_prints_one_table() {
    let d = tmpdir("bench-index");
    let o = adasamp(&[
        "bench-index",
        "--tokens",
        "30000",
        "--vocab",
        "500",
        "--doc-len",
        "100",
        "--queries",
        "200",
        "--dir",
        d.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("synthetic Zipf(s=1.1)") && out.contains("| 30000 | 300 | U16 |"),
        "{out}"
    );
    assert!(out.contains("libsais, published"), "{out}");
}
