//! Tokenizer and chat-template tests against llama.cpp's own tokenizer.
//!
//! The reference (`tests/data/tokenizer/smollm2_llamacpp.json`, written by
//! `tests/reference/gen_tokenizer_reference.py`) holds llama.cpp's tokenization of varied texts
//! with the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), and its rendered chat prompts. The
//! tests that need the model look for it in `$ADASAMP_HOME` (default `~/.cache/adasamp`) and are
//! skipped, with a note, when it is absent.
//!
//! With `ADASAMP_LLAMA_VOCAB_DIR` set to llama.cpp's `models/` folder (vocab-only
//! `ggml-vocab-*.gguf` files with `.inp`/`.out` test vectors), `llama_cpp_vocab_test_vectors` also
//! checks every other vocabulary there.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use adasamp_engine::chat::{ChatMessage, ChatTemplate};
use adasamp_engine::tokenizer::{TextTokenizer, TokenStream};
use candle_core::quantized::gguf_file::Content;
use serde::Deserialize;

const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

#[derive(Deserialize)]
struct Reference {
    model: RefModel,
    cases: Vec<Case>,
    chat: Vec<ChatCase>,
}

#[derive(Deserialize)]
struct RefModel {
    vocab_size: usize,
    bos_id: u32,
    eos_id: u32,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct ChatCase {
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    bos_token: String,
    eos_token: String,
    prompt: String,
    ids: Vec<u32>,
}

fn reference() -> &'static Reference {
    static REF: OnceLock<Reference> = OnceLock::new();
    REF.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/tokenizer/smollm2_llamacpp.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fn model_path() -> PathBuf {
    let base = match std::env::var_os("ADASAMP_HOME") {
        Some(home) => PathBuf::from(home),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/adasamp"),
    };
    base.join(MODEL_FILE)
}

struct Model {
    tok: TextTokenizer,
    chat: Option<ChatTemplate>,
}

/// The default model's tokenizer and chat template, or `None` (with a note) without the model.
fn model() -> Option<&'static Model> {
    static MODEL: OnceLock<Option<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = model_path();
            if !path.exists() {
                return None;
            }
            let mut file = std::fs::File::open(&path).expect("open the model");
            let content = Content::read(&mut file).expect("read the GGUF header");
            let tok = TextTokenizer::from_gguf(&content).expect("tokenizer from GGUF");
            let chat = ChatTemplate::from_gguf(&content);
            Some(Model { tok, chat })
        })
        .as_ref()
        .or_else(|| {
            eprintln!(
                "note: skipping, {} not found (set ADASAMP_HOME or fetch the default model)",
                model_path().display()
            );
            None
        })
}

#[test]
fn matches_llama_cpp_on_every_text() {
    let Some(m) = model() else { return };
    let r = reference();
    let mut mismatches = Vec::new();
    for case in &r.cases {
        let ids = m.tok.encode(&case.text, false).unwrap();
        if ids != case.ids {
            let at = ids
                .iter()
                .zip(&case.ids)
                .take_while(|(a, b)| a == b)
                .count();
            let show = |v: &[u32]| -> Vec<String> {
                v.iter()
                    .skip(at)
                    .take(6)
                    .map(|&i| format!("{i}:{:?}", m.tok.id_to_token(i).unwrap_or_default()))
                    .collect()
            };
            mismatches.push(format!(
                "{}: differs at token {at}: ours {:?}, llama.cpp {:?}",
                case.name,
                show(&ids),
                show(&case.ids)
            ));
        }
    }
    let n_ids: usize = r.cases.iter().map(|c| c.ids.len()).sum();
    eprintln!(
        "{} texts, {n_ids} llama.cpp ids, {} mismatches",
        r.cases.len(),
        mismatches.len()
    );
    assert!(r.cases.len() >= 30, "the reference should hold many texts");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn decode_inverts_encode() {
    let Some(m) = model() else { return };
    for case in &reference().cases {
        let ids = m.tok.encode(&case.text, false).unwrap();
        assert_eq!(
            m.tok.decode(&ids, false).unwrap(),
            case.text,
            "{}",
            case.name
        );
        assert_eq!(
            m.tok.decode(&case.ids, false).unwrap(),
            case.text,
            "{}",
            case.name
        );
    }
    // Without specials, control tokens vanish from the text.
    let ids = m
        .tok
        .encode("<|im_start|>user\nHi<|im_end|>", false)
        .unwrap();
    assert_eq!(m.tok.decode(&ids, true).unwrap(), "user\nHi");
    assert!(m.tok.decode(&[49152], false).is_err());
}

#[test]
fn special_tokens_encode_to_single_ids() {
    let Some(m) = model() else { return };
    let r = reference();
    assert_eq!(m.tok.vocab_size(), r.model.vocab_size);
    assert_eq!(m.tok.bos_id(), Some(r.model.bos_id));
    assert_eq!(m.tok.eos_id(), Some(r.model.eos_id));
    assert!(!m.tok.add_bos_token());
    for name in [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<repo_name>",
        "<file_sep>",
        "<empty_output>",
    ] {
        let id = m
            .tok
            .token_to_id(name)
            .unwrap_or_else(|| panic!("{name} not in the vocabulary"));
        assert!(m.tok.is_special(id), "{name}");
        assert_eq!(m.tok.encode(name, false).unwrap(), vec![id], "{name}");
        assert_eq!(m.tok.id_to_token(id).as_deref(), Some(name));
    }
    let id = |s: &str| m.tok.token_to_id(s).unwrap();
    let ids = m
        .tok
        .encode("<|im_start|>user\nHi<|im_end|>", true)
        .unwrap();
    assert_eq!(ids[0], r.model.bos_id);
    assert_eq!(ids[1], id("<|im_start|>"));
    assert_eq!(*ids.last().unwrap(), id("<|im_end|>"));
}

#[test]
fn eos_ids_hold_the_end_of_turn_tokens() {
    let Some(m) = model() else { return };
    let im_end = m.tok.token_to_id("<|im_end|>").unwrap();
    let eos = m.tok.eos_ids();
    assert_eq!(
        eos.first(),
        Some(&2),
        "the model's EOS comes first: {eos:?}"
    );
    assert!(eos.contains(&im_end), "{eos:?}");
    assert!(
        eos.contains(&m.tok.token_to_id("<|endoftext|>").unwrap()),
        "{eos:?}"
    );
    assert!(
        !eos.contains(&m.tok.token_to_id("<|im_start|>").unwrap()),
        "{eos:?}"
    );
}

#[test]
fn chat_template_renders_the_reference_prompt() {
    let Some(m) = model() else { return };
    let chat = m.chat.as_ref().expect("the model has a chat template");
    let r = reference();
    assert!(!r.chat.is_empty());
    for c in &r.chat {
        let bos = m.tok.id_to_token(m.tok.bos_id().unwrap()).unwrap();
        let eos = m.tok.id_to_token(m.tok.eos_ids()[0]).unwrap();
        assert_eq!(
            (bos.as_str(), eos.as_str()),
            (c.bos_token.as_str(), c.eos_token.as_str())
        );
        let prompt = chat
            .render(&c.messages, c.add_generation_prompt, &bos, &eos)
            .unwrap();
        assert_eq!(prompt, c.prompt);
        assert_eq!(m.tok.encode(&prompt, false).unwrap(), c.ids);
    }
}

#[test]
fn stream_reassembles_split_emoji() {
    let Some(m) = model() else { return };
    let ids = m.tok.encode("🦙", false).unwrap();
    assert!(
        ids.len() > 1,
        "🦙 should take several byte-level tokens: {ids:?}"
    );
    let mut stream = TokenStream::default();
    let mut out = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let got = stream.push(&m.tok, id).unwrap();
        if i + 1 < ids.len() {
            assert_eq!(got, None, "no text before the last byte of 🦙");
        } else {
            out.push(got.expect("the last token completes 🦙"));
        }
    }
    assert_eq!(out, ["🦙"]);
    assert_eq!(stream.finish(&m.tok).unwrap(), None);

    // Every reference text streams back to itself, one token at a time, never splitting a
    // character.
    for case in &reference().cases {
        let mut stream = TokenStream::new(false);
        let mut text = String::new();
        for &id in &case.ids {
            if let Some(chunk) = stream.push(&m.tok, id).unwrap() {
                assert!(!chunk.contains('\u{FFFD}'), "{}: {chunk:?}", case.name);
                text.push_str(&chunk);
            }
        }
        if let Some(rest) = stream.finish(&m.tok).unwrap() {
            text.push_str(&rest);
        }
        assert_eq!(text, case.text, "{}", case.name);
    }
}

#[test]
fn tokenizer_json_with_config_files() {
    // A tiny HF tokenizer.json (word-level model), with tokenizer_config.json and
    // generation_config.json next to it.
    let dir = std::env::temp_dir().join(format!("adasamp-tokjson-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokenizer_json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 0, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 2, "content": "<|eot_id|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"<s>": 0, "</s>": 1, "<|eot_id|>": 2, "hello": 3, "world": 4, "[UNK]": 5}, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json.to_string()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": true,
            "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}{{ eos_token }}{% endfor %}"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("generation_config.json"),
        r#"{"eos_token_id": [1, 2]}"#,
    )
    .unwrap();

    let tok = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    assert_eq!(tok.bos_id(), Some(0));
    assert_eq!(tok.eos_ids(), &[1, 2]);
    assert!(tok.add_bos_token());
    assert_eq!(
        tok.encode("hello <|eot_id|> world", true).unwrap(),
        vec![0, 3, 2, 4]
    );
    let chat = ChatTemplate::from_tokenizer_config(&dir.join("tokenizer_config.json"))
        .unwrap()
        .unwrap();
    let prompt = chat
        .render(&[ChatMessage::user("hello")], false, "<s>", "</s>")
        .unwrap();
    assert_eq!(prompt, "<s>user: hello</s>");

    let err = TextTokenizer::from_file(&dir.join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.json"), "{err}");
    std::fs::write(dir.join("broken.json"), "{").unwrap();
    let err = TextTokenizer::from_file(&dir.join("broken.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// llama.cpp's own tokenizer test vectors (`models/ggml-vocab-*.gguf` + `.inp`/`.out`), when
/// `ADASAMP_LLAMA_VOCAB_DIR` points at them.
#[test]
fn llama_cpp_vocab_test_vectors() {
    let Some(dir) = std::env::var_os("ADASAMP_LLAMA_VOCAB_DIR") else {
        eprintln!("note: ADASAMP_LLAMA_VOCAB_DIR not set, skipping llama.cpp's vocab test vectors");
        return;
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "gguf") && p.with_extension("gguf.out").exists()
        })
        .collect();
    entries.sort();
    let mut failures = Vec::new();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let tok = match TextTokenizer::from_gguf_file(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: not supported: {e}");
                continue;
            }
        };
        let inp = std::fs::read_to_string(path.with_extension("gguf.inp")).unwrap();
        let out = std::fs::read_to_string(path.with_extension("gguf.out")).unwrap();
        let texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
        let expected: Vec<Vec<u32>> = out
            .lines()
            .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
            .collect();
        let mut bad = 0;
        for (text, want) in texts.iter().zip(&expected) {
            let got = tok.encode(text, false).unwrap();
            if &got != want {
                bad += 1;
                failures.push(format!(
                    "{name}: {text:?}: ours {got:?}, llama.cpp {want:?}"
                ));
            }
        }
        eprintln!(
            "{name} ({}): {} texts, {bad} mismatches",
            tok.kind(),
            texts.len()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
