//! `adasamp prompts fetch` (the shipped IFEval-style set: no network) and `adasamp label verify`
//! end to end through the binary: labels, pass-through, resume, and errors naming the record.

mod common;

use common::{adasamp, stderr, tmpdir};
use serde_json::{json, Value};

fn candidate(id: &str, generation: &str, extra: Value) -> String {
    let mut r = json!({
        "id": id, "prompt": "p", "generation": generation, "seed": 0,
        "sampler_info": {"name": "t1", "config": {"name": "t1", "processors": []}}
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    format!("{r}\n")
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn prompts_fetch_ifeval_writes_a_prompt_file() {
    let dir = tmpdir("prompts-fetch");
    let out = dir.join("p.jsonl");
    let o = adasamp(&[
        "prompts",
        "fetch",
        "ifeval",
        "--limit",
        "3",
        "--seed",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = lines(&out);
    assert_eq!(p.len(), 3);
    for r in &p {
        assert_eq!(r["license"], "Apache-2.0");
        assert_eq!(r["dataset"], "ifeval");
        assert_eq!(r["checks"], json!(["verifiable"]));
        assert!(r["ground_truth"]["instruction_id_list"].is_array());
    }
    assert!(stderr(&o).contains("wrote 3 prompts"), "{}", stderr(&o));
    let o = adasamp(&["prompts", "fetch", "wikipedia"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("wikipedia") && stderr(&o).contains("mtbench"));
}

#[test]
fn label_verify_labels_resumes_and_names_broken_records() {
    let dir = tmpdir("label-verify");
    let (input, output) = (dir.join("in.jsonl"), dir.join("out.jsonl"));
    let gsm = json!({"prompt_id": "g", "checks": ["verifiable"], "dataset": "gsm8k", "ground_truth": "1,234"});
    let math = json!({"prompt_id": "m", "checks": ["verifiable"], "dataset": "math", "ground_truth": "\\frac{1}{2}"});
    let text = [
        candidate("g/t1/s0", "The total is 1234.0.", gsm.clone()),
        candidate("g/t1/s1", "The total is 1243.", gsm),
        candidate("m/t1/s0", "So \\boxed{0.5}.", math),
        candidate(
            "c/t1/s0",
            "A poem.",
            json!({"prompt_id": "c", "checks": ["diversity"]}),
        ),
    ]
    .concat();
    std::fs::write(&input, &text).unwrap();
    let args = [
        "label",
        "verify",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ];
    let o = adasamp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Vec<Value> = lines(&output)
        .iter()
        .map(|r| r.get("verified").cloned().unwrap_or(Value::Null))
        .collect();
    assert_eq!(got, [json!(1), json!(0), json!(1), Value::Null]);
    assert!(
        stderr(&o).contains("gsm8k: 1 of 2 correct"),
        "{}",
        stderr(&o)
    );
    // A rerun finds everything done and writes nothing.
    let before = std::fs::read_to_string(&output).unwrap();
    let o = adasamp(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("wrote 0") && stderr(&o).contains("4 already there"));
    assert_eq!(std::fs::read_to_string(&output).unwrap(), before);
    // A record asking for the check with a broken ground truth: exit 1, named.
    std::fs::remove_file(&output).unwrap();
    let broken = candidate(
        "i/t1/s0",
        "x",
        json!({"prompt_id": "i", "checks": ["verifiable"], "dataset": "ifeval",
               "ground_truth": {"instruction_id_list": ["detectable_format:title"], "kwargs": [{"num": 1}]}}),
    );
    std::fs::write(&input, format!("{text}{broken}")).unwrap();
    let o = adasamp(&args);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("i/t1/s0") && e.contains("ground_truth") && e.contains("unknown argument `num`"),
        "{e}"
    );
    assert!(!output.exists());
}
