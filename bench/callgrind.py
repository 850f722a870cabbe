"""CPU instructions per tool call, under callgrind: the figure that does not swing with load.

    uv run python bench/callgrind.py [--variants plain,fastmcp-jwt,auth,full,auth-sdk,full-sdk]
                                     [--pairs 100:300,200:600] [--idle 10:40] [--jobs 2]
                                     [--keep DIR]

Each variant (bench/variants.py) is served over HTTP (uvicorn, one process, under
`valgrind --tool=callgrind`) and called N times, one `tools/call` of `add` after another on one
keep-alive connection, from a client outside valgrind; each N is a fresh server. The server
starts with instrumentation off (`--instr-atstart=no`: start-up runs several times faster), is
warmed up with a few calls, and `callgrind_control --instr=on` switches counting on before the
N calls. For a pair (N1, N2), (I(N2) - I(N1)) / (N2 - N1) is the cost of one call, the switch
and the shut-down cancelling out.

Time-driven work is taken out: a server also works by the clock (uvicorn's 0.1 s tick, the
readiness gauges every 10 s, the revocation listener's 1 s poll), and under callgrind a call
takes ~50 times as long as natively, so that work would be charged to the calls ~50 times over
(and by how loaded the machine was). Two more runs per variant make no calls and idle for 10
and 40 s; their difference is the variant's idle rate (instructions per wall second), and
each pair's figure is (I(N2) - I(N1) - rate * (T(N2) - T(N1))) / (N2 - N1), T being the wall
time from the switch-on to the stop. At native speed that work is ~300 instructions a call
(rate / calls per second). The uncorrected figure is printed too ("raw").
Two pairs show how stable the figure is. PYTHONHASHSEED=0 keeps runs repeatable. The counts
do not depend on the machine's load, so `--jobs 2` runs two servers at a time.

Prints a table with the ratio to plain FastMCP (plain's instructions / the variant's: the
throughput a CPU-bound server would reach relative to plain) and writes
bench/results/callgrind.json. `--keep DIR` keeps each run's callgrind.out file for
`callgrind_annotate`. Nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.variants import CALL, bench_token, call_headers  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

SERVER = ROOT / "bench" / "variants.py"  # serves `VARIANT PORT`
WARM_UP = 20  # calls before instrumentation is switched on: caches filled, lazy imports done


def _check(variant: str, response: httpx.Response) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{variant}: HTTP {response.status_code}: {response.text[:200]}")
    result = response.json().get("result")
    if not isinstance(result, dict) or result.get("isError"):
        raise RuntimeError(f"{variant}: not a tool result: {response.text[:200]}")


class Run(NamedTuple):
    instructions: int  # counted from the switch-on to the end of the process
    seconds: float  # wall time from the switch-on to the stop signal


def instructions(
    variant: str, calls: int, bearer: str, keep: Path | None = None, idle: float = 0.0
) -> Run:
    """One server process: `calls` tool calls (after the warm-up), then `idle` seconds idle."""
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        out = Path(workdir) / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        server = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",  # start-up at near-native speed; switched on below
                f"--callgrind-out-file={out}",
                sys.executable,
                str(SERVER),
                variant,
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        headers = call_headers(variant, bearer)
        switched_on = time.monotonic()
        try:
            deadline = time.monotonic() + 600
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                while True:
                    try:
                        response = client.post("/mcp", json=CALL, headers=headers)
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or server.poll() is not None:
                            raise RuntimeError(f"{variant} did not start") from None
                        time.sleep(0.5)
                _check(variant, response)
                for _ in range(WARM_UP):
                    _check(variant, client.post("/mcp", json=CALL, headers=headers))
                subprocess.run(
                    ["callgrind_control", "--instr=on", str(server.pid)],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                switched_on = time.monotonic()
                for _ in range(calls):
                    _check(variant, client.post("/mcp", json=CALL, headers=headers))
                time.sleep(idle)
        finally:
            seconds = time.monotonic() - switched_on
            server.send_signal(signal.SIGINT)
            server.wait(600)
        text = out.read_text(errors="replace")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            name = f"callgrind.{variant}.{calls}" + (f".idle{idle:g}" if idle else "")
            (keep / f"{name}.out").write_text(text)
        match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
        if match is None:
            raise RuntimeError("no callgrind totals")
        return Run(int(match.group(1)), seconds)


def parse_pairs(text: str) -> list[tuple[int, int]]:
    pairs = []
    for item in text.split(","):
        low, high = (int(n) for n in item.split(":"))
        if not 0 <= low < high:
            raise SystemExit(f"--pairs: {item!r} is not N1:N2 with N1 < N2")
        pairs.append((low, high))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="plain,fastmcp-jwt,auth,full,auth-sdk,full-sdk")
    parser.add_argument("--pairs", default="100:300,200:600", help="N1:N2[,N1:N2...]")
    parser.add_argument("--idle", default="10:40", help="idle seconds of the two idle runs")
    parser.add_argument("--jobs", type=int, default=2, help="servers under valgrind at a time")
    parser.add_argument("--keep", type=Path, default=None, help="keep callgrind.out files here")
    args = parser.parse_args()
    variants = args.variants.split(",")
    pairs = parse_pairs(args.pairs)
    idle_low, idle_high = (float(x) for x in args.idle.split(":"))
    counts = sorted({n for pair in pairs for n in pair})
    bearer = bench_token()
    # (variant, calls, idle seconds); the two idle runs give the rate of time-driven work
    runs = [(v, n, 0.0) for v in variants for n in counts]
    runs += [(v, 0, t) for v in variants for t in (idle_low, idle_high)]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(lambda r: instructions(r[0], r[1], bearer, args.keep, r[2]), runs))
    results = dict(zip(runs, done, strict=True))
    idle_rate = {
        v: (results[(v, 0, idle_high)].instructions - results[(v, 0, idle_low)].instructions)
        / (results[(v, 0, idle_high)].seconds - results[(v, 0, idle_low)].seconds)
        for v in variants
    }
    per_call: dict[str, dict[str, float]] = {}
    raw: dict[str, dict[str, float]] = {}
    for v in variants:
        per_call[v], raw[v] = {}, {}
        for low, high in pairs:
            a, b = results[(v, low, 0.0)], results[(v, high, 0.0)]
            key = f"{low}:{high}"
            raw[v][key] = (b.instructions - a.instructions) / (high - low)
            timed = idle_rate[v] * (b.seconds - a.seconds)
            per_call[v][key] = (b.instructions - a.instructions - timed) / (high - low)
    print(
        f"{'variant':<12}"
        + "".join(f" {f'N={lo}->{hi} M/call':>19} {'vs plain':>9}" for lo, hi in pairs)
        + f" {'raw M/call':>11} {'idle k/s':>9}"
    )
    for v in variants:
        row = f"{v:<12}"
        for key, value in per_call[v].items():
            base = per_call.get("plain", {}).get(key)
            ratio = f"{base / value:.3f}x" if base else "-"
            row += f" {value / 1e6:>19.3f} {ratio:>9}"
        row += f" {' / '.join(f'{x / 1e6:.3f}' for x in raw[v].values()):>11}"
        print(row + f" {idle_rate[v] / 1e3:>9.0f}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    result = {
        "pairs": [list(pair) for pair in pairs],
        "instructions_per_call": per_call,
        "ratio_vs_plain": {
            v: {k: per_call["plain"][k] / x for k, x in per_call[v].items()}
            for v in variants
            if "plain" in per_call
        },
        "raw_instructions_per_call": raw,
        "idle_instructions_per_second": idle_rate,
        "runs": [
            {"variant": v, "calls": n, "idle_s": t, "instructions": r.instructions, "s": r.seconds}
            for (v, n, t), r in results.items()
        ],
        "python": sys.version.split()[0],
    }
    (out / "callgrind.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
