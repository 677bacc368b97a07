"""`gentool serve` under load: concurrent completion clients on loopback; a table.

    OMP_NUM_THREADS=2 python benchmarks/serve.py [--seconds 10] [--max-tokens 32]

Trains a small character transformer LM (2 layers, d_model 128, context 128; 20 steps:
the speed of a model does not depend on its quality), then starts the real server in a
subprocess twice: with dynamic batching (--batch-window 5 ms, --max-batch 32) and, as the
named peer, the same server with batching off (--batch-window 0: one request at a time per
model, as a server without batching computes). For 1, 8 and 32 concurrent clients, each
sending unseeded completions (max_tokens new tokens, every one of them generated:
tokens = completions x max_tokens) back to back for --seconds, it reports requests/s,
tokens/s, p50/p99 latency and errors (any answer but 200, or none). Then the time to the
first streamed event (the LM streams its continuation as one piece, so that is its
latency). Prints the CPU (lscpu model name and flags) and the thread count.
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
PROMPTS = ["ROMEO:", "To be", "What", "The king", "First Citizen:", "O", "I would", "Good"]


def start(run: Path, *options: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "gentool", "serve", f"lm={run}", "--port", "0",
         "--queue-size", "256", *options],
        stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )  # fmt: skip
    for _ in range(1200):
        if found := re.search(r"127\.0\.0\.1:(\d+)/v1", log.read_text()):
            return process, int(found[1]), log
        time.sleep(0.05)
    raise SystemExit(f"the server did not start:\n{log.read_text()}")


def complete(port: int, body: dict[str, object]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/v1/completions", json.dumps(body))
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def load(port: int, clients: int, seconds: float, max_tokens: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        k = i
        while time.perf_counter() < stop:
            body = {"model": "lm", "prompt": PROMPTS[k % len(PROMPTS)], "max_tokens": max_tokens}
            k += 1
            began = time.perf_counter()
            try:
                ok = complete(port, body) == 200
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


def first_event(port: int, max_tokens: int, count: int = 10) -> float:
    times = []
    for i in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        body = {"model": "lm", "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens,
                "stream": True}  # fmt: skip
        began = time.perf_counter()
        conn.request("POST", "/v1/completions", json.dumps(body))
        response = conn.getresponse()
        while not response.readline().startswith(b"data: "):
            pass
        times.append(time.perf_counter() - began)
        response.read()
        conn.close()
    return 1000 * statistics.median(times)


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

    root = Path(tempfile.mkdtemp(prefix="gentool-serve-bench-"))
    run = api.train("transformer", overrides=LM, out=root / "lm")
    assert run is not None
    print(f"CPU: {cpu()}")
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{args.seconds:g} s per row, max_tokens {args.max_tokens}\n")  # fmt: skip
    print("| server | clients | requests/s | tokens/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ttft = {}
    servers = [("batching off (peer)", ["--batch-window", "0"]),
               ("dynamic batching", ["--batch-window", "5", "--max-batch", "32"])]  # fmt: skip
    for name, options in servers:
        process, port, log = start(run.path, *options)
        try:
            complete(port, {"model": "lm", "prompt": "warm", "max_tokens": 4})
            for clients in (1, 8, 32):
                r = load(port, clients, args.seconds, args.max_tokens)
                print(f"| {name} | {clients} | {r['requests/s']:.1f} | {r['tokens/s']:.0f} | "
                      f"{r['p50 ms']:.0f} | {r['p99 ms']:.0f} | {r['errors']:.0f} |",
                      flush=True)  # fmt: skip
            ttft[name] = first_event(port, args.max_tokens)
        finally:
            process.terminate()
            status = process.wait(60)
            if status != 0:
                print(f"server exited {status}:\n{log.read_text()}")
    print()
    for name, ms in ttft.items():
        print(f"time to the first streamed event, 1 client, {name}: {ms:.0f} ms (median of 10)")


if __name__ == "__main__":
    main()
