"""End to end under wrk: tool calls per second, p50 and p99, plain FastMCP against this service.

    uv run python bench/e2e.py [--variants plain,auth,full] [--rounds 3] [--duration 15]
                               [--connections 32] [--threads 1] [--scaling-rounds 2]
                               [--no-pin]

Every variant of bench/variants.py is one uvicorn process (the same options for all), loaded by
wrk (a C load generator, /usr/bin/wrk) with bench/wrk/tools_call.lua: one JSON-RPC `tools/call`
of `add` per request, with the bearer token for the authenticated variants, the same
connections and threads for all. Rounds are interleaved (plain, auth, full, plain, auth, ...)
so drift on this shared machine hits every variant alike; each measurement starts a fresh
server, warms it up for `--warmup` seconds, then measures for `--duration` seconds. The Lua
script counts every answer that is not HTTP 200 and every 200 that is not a successful tool
result (wrk itself counts only non-2xx/3xx); they are reported as errors.

In the side-by-side part, with two CPUs or more (and `taskset`), the server runs alone on the
last CPU, and wrk and the full variant's Redis (a private redis-server started for the run,
used by every run) on the others: on this 2-core machine a server sharing its core with wrk
and Redis measures what it shares, and in production Redis is another machine. `--no-pin` lets
the kernel place everything.

The scaling part (`--scaling-rounds`, 0 skips it) runs plain and full with `--workers 2`
against `--workers 1`, interleaved the same way, nothing pinned (the kernel places the workers,
wrk and Redis on both CPUs).

Prints tables with the median over rounds (and every round's figure) and the ratio to plain
(median of the per-round ratios, each against the plain run of the same round), and writes
bench/results/e2e.json. Wall-clock figures on a shared 2-core machine swing by +-20 % between
runs; bench/callgrind.py gives the figure that does not. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.variants import AUTHENTICATED, CALL, bench_token, call_headers  # noqa: E402
from tests.support.processes import RedisServer, free_port  # noqa: E402

SCRIPT = ROOT / "bench" / "wrk" / "tools_call.lua"


class Server:
    """One variant under uvicorn, stopped by its PID."""

    def __init__(
        self, variant: str, workers: int, bearer: str, *, cpus: str | None, redis_url: str
    ) -> None:
        self.variant = variant
        self.port = free_port()
        self.headers = call_headers(variant, bearer)
        command = [sys.executable, str(ROOT / "bench" / "variants.py"), variant, str(self.port)]
        self.process = subprocess.Popen(
            [*pinned(cpus), *command, "--workers", str(workers)],
            env={**os.environ, "REDIS_URL": redis_url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the workers too get the signal, and only they
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                response = httpx.post(self.url, json=CALL, headers=self.headers, timeout=10)
                if response.status_code == 200:
                    return
                raise RuntimeError(f"{self.variant}: HTTP {response.status_code}")
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"{self.variant} did not start") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def pinned(cpus: str | None) -> list[str]:
    """The command prefix that keeps a process on `cpus` (none when not pinning)."""
    return ["taskset", "-c", cpus] if cpus else []


def wrk(
    url: str,
    bearer: str,
    seconds: float,
    connections: int,
    threads: int,
    cpus: str | None = None,
) -> dict[str, Any]:
    command = [
        *pinned(cpus),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
    ]
    out = subprocess.run(
        command,
        env={**os.environ, "BENCH_TOKEN": bearer},
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            result["calls_per_s"] = result["requests"] / (result["duration_us"] / 1e6)
            result["errors"] = sum(
                result[k]
                for k in (
                    "non_200",
                    "bad_body",
                    "connect_errors",
                    "read_errors",
                    "write_errors",
                    "timeouts",
                )
            )
            result["wrk_output"] = out.stdout
            return result
    raise RuntimeError(f"wrk printed no RESULT line:\n{out.stdout}\n{out.stderr}")


def measure(
    variant: str, workers: int, bearer: str, args: argparse.Namespace, *, pin: bool
) -> dict[str, Any]:
    """One run. Pinned (one worker, --pin): the server alone on the last CPU, wrk and Redis
    on the others, so the figure is the server's own CPU and not what it shares."""
    pin = pin and args.pin and workers == 1
    server_cpus, load_cpus = (args.server_cpu, args.load_cpus) if pin else (None, None)
    server = Server(variant, workers, bearer, cpus=server_cpus, redis_url=args.redis_url)
    try:
        server.wait_ready()
        sent = bearer if variant in AUTHENTICATED else ""
        load = (args.connections, args.threads, load_cpus)
        if args.warmup > 0:
            wrk(server.url, sent, args.warmup, *load)
        result = wrk(server.url, sent, args.duration, *load)
    finally:
        server.stop()
    result.update(variant=variant, workers=workers, pinned=pin)
    line = (
        f"  {variant:<12} workers={workers} {result['calls_per_s']:8.1f} calls/s  "
        f"p50 {result['p50_us'] / 1000:6.1f} ms  p99 {result['p99_us'] / 1000:6.1f} ms  "
        f"errors {result['errors']}"
    )
    print(line, flush=True)
    return result


def interleaved(
    configs: list[tuple[str, int]],
    rounds: int,
    bearer: str,
    args: argparse.Namespace,
    *,
    pin: bool,
) -> list[dict[str, Any]]:
    runs = []
    for number in range(1, rounds + 1):
        print(f"round {number}/{rounds}", flush=True)
        for variant, workers in configs:
            result = measure(variant, workers, bearer, args, pin=pin)
            result["round"] = number
            runs.append(result)
    return runs


def summarise(
    runs: list[dict[str, Any]], configs: list[tuple[str, int]], base: tuple[str, int]
) -> dict[str, dict[str, Any]]:
    """Per config: medians over rounds, every round's calls/s, and the ratio to `base` (the
    median of per-round ratios, each against `base` in the same round)."""
    by_round: dict[tuple[int, str, int], dict[str, Any]] = {
        (r["round"], r["variant"], r["workers"]): r for r in runs
    }
    table: dict[str, dict[str, Any]] = {}
    for variant, workers in configs:
        mine = [r for r in runs if (r["variant"], r["workers"]) == (variant, workers)]
        ratios = [
            r["calls_per_s"] / by_round[(r["round"], *base)]["calls_per_s"]
            for r in mine
            if (r["round"], *base) in by_round
        ]
        table[f"{variant}/w{workers}"] = {
            "variant": variant,
            "workers": workers,
            "calls_per_s": statistics.median(r["calls_per_s"] for r in mine),
            "p50_ms": statistics.median(r["p50_us"] for r in mine) / 1000,
            "p99_ms": statistics.median(r["p99_us"] for r in mine) / 1000,
            "ratio": statistics.median(ratios) if ratios else None,
            "errors": sum(r["errors"] for r in mine),
            "requests": sum(r["requests"] for r in mine),
            "rounds_calls_per_s": [round(r["calls_per_s"], 1) for r in mine],
        }
    return table


def print_table(title: str, table: dict[str, dict[str, Any]], ratio_name: str) -> None:
    print(f"\n{title}")
    print(
        f"{'variant':<14} {'workers':>7} {'calls/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{ratio_name:>10} {'errors':>7}  calls/s per round"
    )
    for row in table.values():
        ratio = f"{row['ratio']:.3f}x" if row["ratio"] is not None else "-"
        rounds = ", ".join(f"{v:.0f}" for v in row["rounds_calls_per_s"])
        print(
            f"{row['variant']:<14} {row['workers']:>7} {row['calls_per_s']:>9.1f} "
            f"{row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {ratio:>10} "
            f"{row['errors']:>7}  {rounds}"
        )


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="plain,auth,full")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of load before")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scaling-rounds", type=int, default=2)
    parser.add_argument("--scaling-variants", default="plain,full")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not give the one-worker server a CPU of its own",
    )
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    args.pin = args.pin and len(cpus) >= 2 and shutil.which("taskset") is not None
    args.server_cpu = str(cpus[-1])
    args.load_cpus = ",".join(str(c) for c in cpus[:-1])
    bearer = bench_token()
    print(f"machine: {machine()}", flush=True)
    if args.pin:
        print(f"pinned: server on CPU {args.server_cpu}, wrk and Redis on {args.load_cpus}")
    with tempfile.TemporaryDirectory() as workdir, RedisServer(Path(workdir)) as redis:
        if args.pin and redis.process is not None:
            subprocess.run(
                ["taskset", "-cp", args.load_cpus, str(redis.process.pid)],
                check=True,
                capture_output=True,
            )
        args.redis_url = redis.url
        run_all(args, bearer)


def run_all(args: argparse.Namespace, bearer: str) -> None:
    configs = [(variant, 1) for variant in args.variants.split(",")]
    runs = interleaved(configs, args.rounds, bearer, args, pin=True)
    side_by_side = summarise(runs, configs, ("plain", 1))
    scaling: dict[str, dict[str, Any]] = {}
    scaling_runs: list[dict[str, Any]] = []
    if args.scaling_rounds > 0:
        print("\nscaling: --workers 2 against --workers 1", flush=True)
        scale = [(v, w) for v in args.scaling_variants.split(",") for w in (1, 2)]
        scaling_runs = interleaved(scale, args.scaling_rounds, bearer, args, pin=False)
        for variant in args.scaling_variants.split(","):
            pair = [(variant, 1), (variant, 2)]
            scaling.update(summarise(scaling_runs, pair, (variant, 1)))

    load = f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s"
    print_table(f"side by side ({load}, {args.rounds} rounds, medians)", side_by_side, "vs plain")
    if scaling:
        print_table(
            f"scaling ({load}, {args.scaling_rounds} rounds, medians)", scaling, "vs 1 worker"
        )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    for run in runs + scaling_runs:
        run.pop("wrk_output", None)
    (out / "e2e.json").write_text(
        json.dumps(
            {
                "machine": machine(),
                "load": {
                    "pinned": args.pin,
                    "connections": args.connections,
                    "threads": args.threads,
                    "duration_s": args.duration,
                    "warmup_s": args.warmup,
                },
                "side_by_side": side_by_side,
                "scaling": scaling,
                "runs": runs + scaling_runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
