#!/usr/bin/env python3
"""`adasamp serve` driven by the official `openai` Python client (issue 11).

Starts `adasamp serve --port 0` (the binary given by --adasamp, default target/debug/adasamp) with
a bearer key and a temporary --samplers folder holding one pipeline YAML, reads the port from the
server's `listening on http://HOST:PORT` line, and checks, through the client: the model list,
completions, chat, streaming (with usage), n=2, logprobs (chat and completions), the named sampler,
seeded determinism (streamed = not streamed), errors (top_p: 7 and an unknown sampler ->
BadRequestError, a wrong key -> AuthenticationError) and a clean exit on SIGTERM.

Prints one PASS/FAIL line per check and `openai_client: N passed, M failed`; exits 1 on any
failure, 2 when it cannot run at all (no openai package, no server). Run by .ci/run after
`pip install openai`; by hand: `python3 tests/python/openai_client.py [--adasamp PATH] [--model GGUF]`.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

API_KEY = "ci-secret-key"
SAMPLER = "ci_chain"
SAMPLER_YAML = """\
# One pipeline installed by the openai client test and requested by name.
pipelines:
  - name: ci_chain
    weight: 1.0
    processors:
      - {name: top_k, params: {top_k: 20}}
      - {name: temperature, params: {temperature: 0.7}}
"""
LISTENING = re.compile(r"listening on (http://\S+):(\d+)")


class Server:
    """`adasamp serve` on a free loopback port; its output is echoed to stderr with a prefix."""

    def __init__(self, binary, model, samplers, start_timeout):
        cmd = [binary, "serve", "--host", "127.0.0.1", "--port", "0",
               "--samplers", samplers, "--api-key", API_KEY, "--max-running", "4"]
        if model:
            cmd += ["--model", model]
        print("openai_client: starting " + " ".join(cmd), file=sys.stderr)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.base = None
        found = threading.Event()

        def pump():
            for line in self.proc.stdout:
                sys.stderr.write("  [serve] " + line)
                m = LISTENING.search(line)
                if m and not found.is_set():
                    self.base = f"{m.group(1)}:{m.group(2)}"
                    found.set()
            found.set()  # the server's output ended (it exited)

        threading.Thread(target=pump, daemon=True).start()
        found.wait(start_timeout)
        if self.base is None:
            self.stop()
            raise RuntimeError(
                f"adasamp serve printed no 'listening on http://HOST:PORT' line within "
                f"{start_timeout:.0f} s (exit status {self.proc.poll()})")

    def stop(self, timeout=30.0):
        """SIGTERM, then wait; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def check_usage(usage, max_tokens):
    expect(usage is not None, "no usage")
    expect(usage.prompt_tokens > 0, f"prompt_tokens {usage.prompt_tokens}")
    expect(1 <= usage.completion_tokens <= max_tokens,
           f"completion_tokens {usage.completion_tokens} not in 1..{max_tokens}")
    expect(usage.total_tokens == usage.prompt_tokens + usage.completion_tokens,
           f"total_tokens {usage.total_tokens}")


def run_checks(openai, base, model_arg):
    client = openai.OpenAI(base_url=base + "/v1", api_key=API_KEY, timeout=180.0, max_retries=0)
    state = {}
    chat_msgs = [{"role": "user", "content": "Name three colours."}]

    def models():
        ids = [m.id for m in client.models.list().data]
        expect(ids, "no models listed")
        state["model"] = ids[0]

    def model():
        return state.get("model") or model_arg or "default"

    def completions():
        r = client.completions.create(model=model(), prompt="The capital of France is",
                                      max_tokens=8, temperature=0, seed=1)
        expect(len(r.choices) == 1, f"{len(r.choices)} choices")
        expect(isinstance(r.choices[0].text, str) and r.choices[0].text, "empty text")
        expect(r.choices[0].finish_reason in ("length", "stop"), r.choices[0].finish_reason)
        check_usage(r.usage, 8)

    def chat():
        r = client.chat.completions.create(model=model(), messages=chat_msgs, max_tokens=12,
                                           temperature=0.8, seed=3)
        msg = r.choices[0].message
        expect(msg.role == "assistant", f"role {msg.role}")
        expect(isinstance(msg.content, str) and msg.content, "empty content")
        expect(r.choices[0].finish_reason in ("length", "stop"), r.choices[0].finish_reason)
        check_usage(r.usage, 12)
        state["chat_seed3"] = msg.content

    def chat_streaming():
        stream = client.chat.completions.create(
            model=model(), messages=chat_msgs, max_tokens=12, temperature=0.8, seed=3,
            stream=True, stream_options={"include_usage": True})
        text, finish, usage, chunks = [], None, None, 0
        for chunk in stream:
            chunks += 1
            if chunk.usage is not None:
                usage = chunk.usage
            for c in chunk.choices:
                if c.delta.content:
                    text.append(c.delta.content)
                if c.finish_reason:
                    finish = c.finish_reason
        expect(chunks >= 2, f"{chunks} chunks")
        expect(text, "no content streamed")
        expect(finish in ("length", "stop"), f"finish_reason {finish}")
        check_usage(usage, 12)
        if "chat_seed3" in state:
            expect("".join(text) == state["chat_seed3"],
                   f"seeded stream {''.join(text)!r} != seeded response {state['chat_seed3']!r}")

    def completions_streaming():
        stream = client.completions.create(model=model(), prompt="Once upon a time",
                                           max_tokens=10, temperature=0.8, seed=5, stream=True)
        text = "".join(c.choices[0].text for c in stream if c.choices)
        expect(text, "no text streamed")

    def n_equals_2():
        r = client.chat.completions.create(model=model(), messages=chat_msgs, max_tokens=8,
                                           temperature=1.0, n=2, seed=11)
        expect(sorted(c.index for c in r.choices) == [0, 1],
               f"choice indices {[c.index for c in r.choices]}")
        expect(all(c.message.content for c in r.choices), "an empty choice")
        expect(r.usage.completion_tokens <= 16, f"completion_tokens {r.usage.completion_tokens}")
        r = client.completions.create(model=model(), prompt="Hello", max_tokens=6, n=2, seed=2)
        expect(sorted(c.index for c in r.choices) == [0, 1], "completions: n=2 indices")

    def chat_logprobs():
        r = client.chat.completions.create(model=model(), messages=chat_msgs, max_tokens=6,
                                           logprobs=True, top_logprobs=3, seed=4)
        lp = r.choices[0].logprobs
        expect(lp is not None and lp.content, "no logprobs.content")
        expect(len(lp.content) == r.usage.completion_tokens,
               f"{len(lp.content)} logprob entries for {r.usage.completion_tokens} tokens")
        for e in lp.content:
            expect(isinstance(e.token, str) and e.logprob <= 0.0, f"entry {e}")
            expect(1 <= len(e.top_logprobs) <= 3, f"{len(e.top_logprobs)} top_logprobs")
            expect(all(t.logprob <= 0.0 for t in e.top_logprobs), "positive top logprob")

    def completions_logprobs():
        r = client.completions.create(model=model(), prompt="One, two, three,", max_tokens=5,
                                      logprobs=2, seed=4)
        lp = r.choices[0].logprobs
        expect(lp is not None and lp.tokens, "no logprobs.tokens")
        expect(len(lp.token_logprobs) == len(lp.tokens), "token_logprobs length")
        expect(all(x <= 0.0 for x in lp.token_logprobs if x is not None), "positive logprob")
        expect(all(1 <= len(t) <= 2 for t in lp.top_logprobs), "top_logprobs size")

    def named_sampler():
        req = urllib.request.Request(base + "/v1/samplers",
                                     headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            listed = json.dumps(json.load(resp))
        expect(SAMPLER in listed, f"/v1/samplers does not list {SAMPLER}: {listed[:300]}")
        r = client.chat.completions.create(model=model(), messages=chat_msgs, max_tokens=8,
                                           seed=7, extra_body={"sampler": SAMPLER})
        expect(r.choices[0].message.content, "empty content with the named sampler")

    def error_top_p():
        try:
            client.chat.completions.create(model=model(), messages=chat_msgs, max_tokens=4,
                                           top_p=7)
        except openai.BadRequestError as e:
            expect("top_p" in str(e), f"error does not name top_p: {e}")
            return
        raise AssertionError("top_p: 7 was accepted")

    def error_unknown_sampler():
        try:
            client.completions.create(model=model(), prompt="x", max_tokens=4,
                                      extra_body={"sampler": "../../etc/passwd"})
        except openai.BadRequestError:
            return
        raise AssertionError("an unknown sampler was accepted")

    def error_wrong_key():
        bad = openai.OpenAI(base_url=base + "/v1", api_key="wrong", timeout=60.0, max_retries=0)
        try:
            bad.models.list()
        except openai.AuthenticationError:
            return
        raise AssertionError("a wrong API key was accepted")

    checks = [models, completions, chat, chat_streaming, completions_streaming, n_equals_2,
              chat_logprobs, completions_logprobs, named_sampler, error_top_p,
              error_unknown_sampler, error_wrong_key]
    results = []
    for check in checks:
        name = check.__name__
        try:
            check()
            results.append((name, None))
            print(f"PASS {name}")
        except Exception as e:  # every failure is reported, the other checks still run
            results.append((name, f"{type(e).__name__}: {e}"))
            print(f"FAIL {name}: {type(e).__name__}: {e}")
        sys.stdout.flush()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adasamp", default=os.path.join("target", "debug", "adasamp"),
                    help="the adasamp binary (default: target/debug/adasamp)")
    ap.add_argument("--model", default=None, help="GGUF model (default: the server's default)")
    ap.add_argument("--start-timeout", type=float, default=300.0,
                    help="seconds to wait for the server to listen")
    args = ap.parse_args()
    try:
        import openai
    except ImportError:
        print("openai_client: the openai package is not installed (python3 -m pip install openai)")
        return 2
    if not os.access(args.adasamp, os.X_OK):
        print(f"openai_client: {args.adasamp} is not an executable (build it: cargo build -p adasamp-cli)")
        return 2
    with tempfile.TemporaryDirectory(prefix="adasamp-openai-") as tmp:
        samplers = os.path.join(tmp, "samplers")
        os.mkdir(samplers)
        with open(os.path.join(samplers, SAMPLER + ".yaml"), "w") as f:
            f.write(SAMPLER_YAML)
        try:
            server = Server(args.adasamp, args.model, samplers, args.start_timeout)
        except (RuntimeError, OSError) as e:
            print(f"openai_client: {e}")
            print("openai_client: 0 passed, 1 failed")
            return 1
        print(f"openai_client: openai {openai.__version__} against {server.base}")
        try:
            results = run_checks(openai, server.base, args.model)
        finally:
            t0 = time.monotonic()
            status = server.stop()
        if status == 0:
            results.append(("sigterm_exit_0", None))
            print(f"PASS sigterm_exit_0 ({time.monotonic() - t0:.1f} s)")
        else:
            results.append(("sigterm_exit_0", f"exit status {status}"))
            print(f"FAIL sigterm_exit_0: exit status {status} (None: killed after 30 s)")
    failed = [n for n, err in results if err]
    print(f"openai_client: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
