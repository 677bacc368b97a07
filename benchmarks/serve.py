"""`gentool serve` under load: concurrent completion and translation clients on loopback;
tables.

    OMP_NUM_THREADS=1 python benchmarks/serve.py [--seconds 10] [--max-tokens 32]

Trains a small character transformer LM (2 layers, d_model 128, context 128; 20 steps:
the speed of a model does not depend on its quality) and a tiny translator (2+2 layers,
d_model 64, on 200 generated sentence pairs), then starts the real server in a subprocess
twice: with dynamic batching (--batch-window 5 ms, --max-batch 32) and, as the named peer,
the same server with batching off (--batch-window 0: one request at a time per model, as a
server without batching computes). For 1, 8 and 32 concurrent clients, each sending
requests back to back for --seconds, it reports requests/s, tokens/s (completions: unseeded,
max_tokens new tokens, every one of them generated), p50/p99 latency and errors (any answer
but 200, or none); translations: one sentence a request, beam 4.

Then streaming, 1 client: the time to the first streamed token and to the end of the
stream, against the time to the whole non-streamed completion (before the LM streamed
token by token its one piece came at the end: that was its time to first token). Prints
the CPU (lscpu model name and flags) and the thread count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "plugins")]

LM = ["model.arch=decoder", "model.d_model=128", "model.num_layers=2", "model.num_heads=4",
      "model.d_ff=512", "model.context_length=128", "train.max_steps=20", "train.seq_len=64",
      "train.batch_size=8", "train.checkpoint_every=0", "train.warmup_steps=2"]  # fmt: skip
MT = ["model.arch=encoder-decoder", "model.d_model=64", "model.num_layers=2",
      "model.num_heads=4", "model.d_ff=128", "model.context_length=64", "train.max_steps=20",
      "train.batch_size=8", "train.checkpoint_every=0", "train.warmup_steps=2",
      "train.bleu_pairs=0"]  # fmt: skip
SENTENCES: list[str] = []  # the translator's own training sources
PROMPTS = ["ROMEO:", "To be", "What", "The king", "First Citizen:", "O", "I would", "Good"]


def start(run: Path, mt: Path, *options: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "gentool", "serve", f"lm={run}", f"mt={mt}", "--port", "0",
         "--queue-size", "256", *options],
        stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    for _ in range(1200):
        if found := re.search(r"127\.0\.0\.1:(\d+)/v1", log.read_text()):
            return process, int(found[1]), log
        time.sleep(0.05)
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def complete(port: int, body: dict[str, object], path: str = "/v1/completions") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", path, json.dumps(body))
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def load(
    port: int, clients: int, seconds: float, max_tokens: int, translate: bool = False
) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        k = i
        while time.perf_counter() < stop:
            if translate:
                path = "/v1/translations"
                body: dict[str, object] = {"model": "mt", "input": [SENTENCES[k % 64]]}
            else:
                path = "/v1/completions"
                body = {"model": "lm", "prompt": PROMPTS[k % len(PROMPTS)],
                        "max_tokens": max_tokens}  # fmt: skip
            k += 1
            began = time.perf_counter()
            try:
                ok = complete(port, body, path) == 200
            except OSError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - began)
            else:
                errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began  # the last requests end after `seconds`
    done = len(latencies)
    cuts = statistics.quantiles(latencies, n=100) if done > 1 else [latencies[0]] * 99
    return {"requests/s": done / wall, "tokens/s": done * max_tokens / wall,
            "p50 ms": 1000 * cuts[49], "p99 ms": 1000 * cuts[98], "errors": errors[0],
            "requests": done}  # fmt: skip


def streamed(port: int, max_tokens: int, count: int = 10) -> dict[str, float]:
    """Medians (ms) over ``count`` requests of one client: to the first streamed event
    with text, to the stream's end, and to the whole non-streamed completion."""
    first, last, whole, events = [], [], [], []
    for i in range(count):
        body = {"model": "lm", "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens}
        began = time.perf_counter()
        complete(port, body)
        whole.append(time.perf_counter() - began)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        began = time.perf_counter()
        conn.request("POST", "/v1/completions", json.dumps({**body, "stream": True}))
        response = conn.getresponse()
        seen = 0
        while (line := response.readline()) and not line.startswith(b"data: [DONE]"):
            if line.startswith(b"data: ") and json.loads(line[6:])["choices"][0]["text"]:
                seen += 1
                if seen == 1:
                    first.append(time.perf_counter() - began)
        last.append(time.perf_counter() - began)
        events.append(seen)
        conn.close()
    ms = {"first": first, "end": last, "whole": whole}
    return {**{k: 1000 * statistics.median(v) for k, v in ms.items()},
            "events": statistics.median(events)}  # fmt: skip


def cpu() -> str:
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    wanted = [f for f in flags if f.startswith(("avx", "amx"))]
    return f"{fields.get('Model name', '?').strip()}; flags: {' '.join(wanted)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    from gentool import api
    from gentool.testing import write_sample_parallel

    root = Path(tempfile.mkdtemp(prefix="gentool-serve-bench-"))
    run = api.train("transformer", overrides=LM, out=root / "lm")
    source, target = write_sample_parallel(root / "src.txt", root / "tgt.txt", count=200)
    mt = api.train("transformer", parallel=api.ParallelPaths(source, target), overrides=MT,
                   out=root / "mt")  # fmt: skip
    assert run is not None and mt is not None
    SENTENCES[:] = source.read_text().splitlines()[:64]
    print(f"CPU: {cpu()}")
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{args.seconds:g} s per row, max_tokens {args.max_tokens}\n")  # fmt: skip
    rows = {"completions": [], "translations": []}  # type: dict[str, list[str]]
    stream = {}
    servers = [("batching off (peer)", ["--batch-window", "0"]),
               ("dynamic batching", ["--batch-window", "5", "--max-batch", "32"])]  # fmt: skip
    for name, options in servers:
        process, port, log = start(run.path, mt.path, *options)
        try:
            complete(port, {"model": "lm", "prompt": "warm", "max_tokens": 4})
            complete(port, {"model": "mt", "input": ["warm"]}, "/v1/translations")
            for what in rows:
                for clients in (1, 8, 32):
                    r = load(port, clients, args.seconds, args.max_tokens,
                             what == "translations")  # fmt: skip
                    rows[what].append(
                        f"| {name} | {clients} | {r['requests/s']:.1f} | "
                        + (f"{r['tokens/s']:.0f} | " if what == "completions" else "")
                        + f"{r['p50 ms']:.0f} | {r['p99 ms']:.0f} | {r['errors']:.0f} |"
                    )
                    print(rows[what][-1], flush=True)
            stream[name] = streamed(port, args.max_tokens)
        finally:
            process.terminate()
            status = process.wait(60)
            if status != 0:
                print(f"server exited {status}:\n{log.read_text()}")
    print("\ncompletions")
    print("| server | clients | requests/s | tokens/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows["completions"]))
    print("\ntranslations (one sentence a request, beam 4)")
    print("| server | clients | requests/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows["translations"]))
    print(f"\nstreaming, 1 client, max_tokens {args.max_tokens}, median of 10 (ms)")
    print("| server | first token | end of stream | events with text | whole, not streamed |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in stream.items():
        print(f"| {name} | {r['first']:.0f} | {r['end']:.0f} | {r['events']:.0f} | "
              f"{r['whole']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
