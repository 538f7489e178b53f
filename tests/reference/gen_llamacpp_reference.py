"""Reference outputs of llama.cpp (through llama-cpp-python) on the default model, for the
engine's equivalence tests. Run by hand; writes tests/data/llamacpp/smollm2_reference.json.

    python3 -m pip install llama-cpp-python numpy
    python3 tests/reference/gen_llamacpp_reference.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]

Contents: for a few chat prompts (rendered by the model's own template, tokenized with special
tokens), the token ids, llama.cpp's greedy continuation (ids and text), and per prompt position
the arg-max id plus the TOP most likely (id, log-prob) at 6 positions (rounded to 1e-4; they
hold > 99.9 % of the mass) so KL can be computed on that support.
"""
import json, os, sys
import numpy as np
import llama_cpp
from llama_cpp import Llama

path = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/adasamp/SmolLM2-135M-Instruct.Q4_1.gguf")
TOP = 256
m = Llama(model_path=path, logits_all=True, verbose=False, n_ctx=1024, n_threads=2, seed=0)

def chat(user, system=None):
    s = "" if system is None else f"<|im_start|>system\n{system}<|im_end|>\n"
    if system is None:
        s = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    return s + f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"

cases = [
    ("What is the capital of France?", None),
    ("What is the capital of France?", ""),
    ("Write a haiku about autumn leaves.", None),
    ("Explain in two sentences why the sea is salty.", ""),
]
out = {"llama_cpp_python": llama_cpp.__version__, "model_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "cases": []}
for user, system in cases:
    text = chat(user, system)
    ids = m.tokenize(text.encode(), add_bos=False, special=True)
    m.reset()
    m.eval(ids)
    scores = np.array(m.scores[: len(ids)], dtype=np.float64)
    lsm = scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)
    argmax = [int(i) for i in scores.argmax(axis=1)]
    full_at = [len(ids) - 1, len(ids) - 2, len(ids) - 5, len(ids) // 2, 5, 1]
    m.reset()
    gen = []
    for t in m.generate(ids, temp=0, top_k=1):
        gen.append(int(t))
        if t == 2 or len(gen) >= 32:
            break
    out["cases"].append({
        "user": user, "system": system, "prompt": text, "ids": [int(i) for i in ids],
        "argmax": argmax,
        "top": {str(p): [[int(i), round(float(lsm[p][i]), 4)] for i in np.argsort(-lsm[p])[:TOP]] for p in full_at},
        "greedy_ids": gen, "greedy_text": m.detokenize([g for g in gen if g != 2]).decode("utf-8", errors="replace"),
    })
    print(repr(user), repr(system), "->", repr(out["cases"][-1]["greedy_text"]))
dst = os.path.join(os.path.dirname(__file__), "..", "data", "llamacpp", "smollm2_reference.json")
with open(dst, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print("wrote", dst, os.path.getsize(dst), "bytes")
