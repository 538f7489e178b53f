#!/usr/bin/env python3
"""Reference tokenizations of the default model, made by llama.cpp's own tokenizer.

Writes ``tests/data/tokenizer/smollm2_llamacpp.json``, which ``crates/engine/tests/tokenizer.rs``
compares ``TextTokenizer::from_gguf`` and ``ChatTemplate`` against:

```
{
  "model":     {"file", "sha256", "tokenizer_model", "pre", "vocab_size", "bos_id", "eos_id"},
  "generator": {"script", "llama_cpp_python", "jinja2", "python"},
  "cases": [{"name", "text", "ids"}],   # llama.cpp tokenize(text, add_bos=False, special=True)
  "chat":  [{"messages": [{"role", "content"}], "add_generation_prompt", "bos_token",
             "eos_token", "prompt", "ids"}]
}
```

``ids`` come from llama-cpp-python (``Llama(model_path, vocab_only=True).tokenize(text.encode(),
add_bos=False, special=True)``), i.e. llama.cpp's ``llama_tokenize`` with ``parse_special``.
``prompt`` is the GGUF's ``tokenizer.chat_template`` rendered with jinja2 the way HuggingFace
transformers renders chat templates (sandboxed environment, ``trim_blocks``, ``lstrip_blocks``,
loop controls, ``raise_exception``, ``tojson``), and its ``ids`` are llama.cpp's tokenization of
that prompt. Each case's text also round-trips through llama.cpp's detokenizer (checked here).

Usage::

    python3 -m pip install llama-cpp-python jinja2     # builds llama.cpp: needs cmake and a C++ compiler
    python3 tests/reference/gen_tokenizer_reference.py            # write the file
    python3 tests/reference/gen_tokenizer_reference.py --check    # compare with the file on disk

The model is found like the tests find it: ``$ADASAMP_HOME`` or ``~/.cache/adasamp``, file
``SmolLM2-135M-Instruct.Q4_1.gguf`` (or pass ``--model``).
"""

import argparse
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "tokenizer" / "smollm2_llamacpp.json"

PROSE = """\
The quick brown fox jumps over the lazy dog. It wasn't the first time; the dog didn't mind, and \
the fox's friends—who'd been watching from the hedge—couldn't stop laughing. "Again!" they \
shouted, but the fox had already gone home.

In 1859, Charles Darwin published *On the Origin of Species*, arguing that populations evolve \
over generations through a process of natural selection. The book was controversial: many \
readers, including some scientists, rejected it at first. Today it's considered the foundation \
of evolutionary biology, and its ideas are taught in schools worldwide.
"""

CODE = """\
def fibonacci(n: int) -> list[int]:
    \"\"\"Return the first n Fibonacci numbers.\"\"\"
    seq = [0, 1]
    while len(seq) < n:
        seq.append(seq[-1] + seq[-2])  # O(n)
    return seq[:n]


if __name__ == "__main__":
    for i, x in enumerate(fibonacci(10)):
        print(f"{i:>3}: {x}")
"""

RUST_TABS = (
    "fn main() {\n\tlet v: Vec<u32> = (0..10).map(|x| x * x).collect();\n"
    "\tfor (i, x) in v.iter().enumerate() {\n\t\tif x % 2 == 0 {\n\t\t\tprintln!(\"{i}: {x}\");\n"
    "\t\t}\n\t}\n}\n"
)

JSON_TEXT = '{"name": "adasamp", "version": "0.1.0", "tags": ["llm", "sampling"], "ok": true, "n": null}'

NUMBERS = (
    "12345 3.14159 2026-11-30 0.000001 1,234,567.89 -42 +7 1e-10 0x1F 007 "
    "Call 555-0100 at 10:45pm; 99.9% of 1000000000 is 999000000. ½ ² ٣ ४ 𝟙"
)

UNICODE = [
    ("accents", "Café, naïve, façade, Ångström, São Paulo, Zürich, Dvořák, Łódź, crème brûlée."),
    ("german", "Äpfel und Öl: Die Straße ist größer als gedacht. ÄÖÜ äöü ß ẞ"),
    ("chinese", "我们今天去公园散步，天气非常好。机器学习是人工智能的一个分支。"),
    ("japanese", "東京は日本の首都です。ひらがな、カタカナ、漢字を使います。ｶﾀｶﾅ"),
    ("korean", "안녕하세요! 오늘 날씨가 정말 좋네요. 한국어 토큰화 테스트입니다."),
    ("cyrillic", "Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю."),
    ("arabic", "مرحبا بالعالم! اللغة العربية تكتب من اليمين إلى اليسار. ١٢٣٤٥"),
    ("hebrew_hindi_thai", "שלום עולם. नमस्ते दुनिया, यह एक परीक्षण है। สวัสดีชาวโลก"),
    ("greek", "Καλημέρα κόσμε· η γλώσσα είναι ελληνική. αβγδε ΑΒΓΔΕ"),
    ("emoji", "I love 🦙 and 🤖! 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ 🔥🔥🔥 ✅ ☕ 🏳️‍🌈"),
    ("symbols", "∀x∈ℝ: x² ≥ 0 → √x ∈ ℝ⁺ ∪ {0}; ∑ᵢ aᵢ ≈ ∫ f(t) dt ± ε ≠ ∞ © ® ™ € £ ¥ • … — –"),
    ("mixed_scripts", "Tokyo東京Москва موسكو Paris🗼 naïve日本語text123abc"),
]

WHITESPACE = [
    ("empty", ""),
    ("space", " "),
    ("two_spaces", "  "),
    ("tab", "\t"),
    ("newline", "\n"),
    ("newlines", "\n\n\n"),
    ("crlf", "line one\r\nline two\r\n\r\nline four"),
    ("spaces_runs", "a  b   c    d     e      f"),
    ("leading_trailing", "   leading and trailing   "),
    ("indent_mix", "\t  \t mixed\t\tindent \n  \n\t\n"),
    ("odd_spaces", "nbsp\u00a0here, ideographic\u3000space, thin\u2009space, nnbsp\u202f, zwsp\u200bword, vt\x0bff\x0c."),
    ("controls", "bell\x07 esc\x1b[0m nul\x00 del\x7f unit\x1f sep\x1c"),
    ("newline_before_word", "Hello\nworld\n\n  Indented\n\tTabbed"),
]

CONTRACTIONS = "I'm, you're, he's, we've, they'll, I'd, don't, WON'T, It'S, you'Re, 'tis, rock'n'roll, O'Brien's"

LONG = (
    "Pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism "
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
    "================================================== ---------- !!!!!!!!!! ??!?!?"
)

MARKDOWN = """\
# Title

Some **bold** and _italic_ text, `inline code`, and a [link](https://example.com/path?q=1&r=2#frag).

- item one
- item two
  1. nested

| a | b |
|---|---|
| 1 | 2 |

> quote
"""

SPECIAL = [
    ("chat_turn", "<|im_start|>user\nHi<|im_end|>"),
    ("chat_full", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"),
    ("adjacent_specials", "<|im_start|><|im_end|><|endoftext|><|im_start|>"),
    ("specials_in_words", "abc<|im_end|>def <|endoftext|> ghi<|im_start|>"),
    ("partial_specials", "<|im_start <im_end|> <|im_end| |im_end|> <|endoftext"),
    ("other_control_tokens", "<repo_name>adasamp<file_sep>src/lib.rs<filename>x<gh_stars>10<jupyter_code>print(1)<empty_output>"),
    ("special_with_spaces", " <|im_start|> assistant \n <|im_end|> "),
]


def cases():
    out = [
        ("prose", PROSE),
        ("code_python", CODE),
        ("code_rust_tabs", RUST_TABS),
        ("json", JSON_TEXT),
        ("numbers", NUMBERS),
        ("contractions", CONTRACTIONS),
        ("long_words_repeats", LONG),
        ("markdown", MARKDOWN),
    ]
    out += UNICODE + WHITESPACE + SPECIAL
    out.append(("everything", "\n".join(t for _, t in out)))
    return out


CONVERSATIONS = [
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help you today?"}], False),
    ([{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Where is the treasure? 🏴‍☠️"}], True),
]


def default_model():
    home = os.environ.get("ADASAMP_HOME")
    base = Path(home) if home else Path.home() / ".cache" / "adasamp"
    return base / MODEL_FILE


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hf_jinja_env():
    """A jinja2 environment configured like transformers' chat-template renderer."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def generate(model_path):
    import jinja2
    import llama_cpp

    digest = sha256(model_path)
    if digest != MODEL_SHA256:
        sys.exit(f"{model_path}: sha256 {digest}, expected {MODEL_SHA256}")
    llm = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
    meta = llm.metadata

    def tok(text):
        return llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def piece(i):
        return llm.detokenize([i], special=True).decode("utf-8")

    result_cases = []
    for name, text in cases():
        ids = tok(text)
        back = llm.detokenize(ids, special=True).decode("utf-8", errors="replace")
        if back != text:
            sys.exit(f"case {name}: llama.cpp does not round-trip the text: {back!r} != {text!r}")
        result_cases.append({"name": name, "text": text, "ids": ids})

    bos_id = int(meta["tokenizer.ggml.bos_token_id"])
    eos_id = int(meta["tokenizer.ggml.eos_token_id"])
    bos, eos = piece(bos_id), piece(eos_id)
    template = hf_jinja_env().from_string(meta["tokenizer.chat_template"])
    chat = []
    for messages, add_generation_prompt in CONVERSATIONS:
        prompt = template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                 bos_token=bos, eos_token=eos, tools=None, documents=None)
        chat.append({
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": bos,
            "eos_token": eos,
            "prompt": prompt,
            "ids": tok(prompt),
        })

    return {
        "model": {
            "file": MODEL_FILE,
            "sha256": digest,
            "tokenizer_model": meta["tokenizer.ggml.model"],
            "pre": meta["tokenizer.ggml.pre"],
            "vocab_size": llm.n_vocab(),
            "bos_id": bos_id,
            "eos_id": eos_id,
        },
        "generator": {
            "script": "tests/reference/gen_tokenizer_reference.py",
            "llama_cpp_python": llama_cpp.__version__,
            "jinja2": jinja2.__version__,
            "python": platform.python_version(),
        },
        "cases": result_cases,
        "chat": chat,
    }


def dump(data):
    return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=default_model())
    ap.add_argument("--check", action="store_true", help="compare with the file on disk instead of writing it")
    args = ap.parse_args()
    if not args.model.exists():
        sys.exit(f"{args.model}: not found (set ADASAMP_HOME or pass --model)")
    data = generate(args.model)
    text = dump(data)
    n_ids = sum(len(c["ids"]) for c in data["cases"])
    if args.check:
        old = json.loads(OUT.read_text(encoding="utf-8"))
        same = old["cases"] == data["cases"] and old["chat"] == data["chat"]
        print(f"{OUT.relative_to(ROOT)}: {'matches' if same else 'DIFFERS from'} a fresh run "
              f"({len(data['cases'])} texts, {n_ids} ids)")
        sys.exit(0 if same else 1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(data['cases'])} texts, {n_ids} ids, "
          f"{len(data['chat'])} chat prompts, {len(text.encode())} bytes")
    for k, v in data["generator"].items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
