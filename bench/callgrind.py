"""CPU instructions per tool call, under callgrind: the figure that does not swing with load.

    uv run python bench/callgrind.py [--variants plain,auth] [--n1 100] [--n2 300]

Each variant is served over HTTP (uvicorn, one process, under `valgrind --tool=callgrind`) and
called N1 times, then, in a fresh run, N2 times, one call after another from a client outside
valgrind; (I(N2) - I(N1)) / (N2 - N1) is the cost of one call, start-up cancelling out.
PYTHONHASHSEED=0 keeps runs repeatable. Prints a table with the ratio to plain FastMCP and
writes bench/results/callgrind.json. Nothing here is a pass/fail test.
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.processes import free_port  # noqa: E402

CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "add", "arguments": {"a": 5, "b": 3}},
}


def token() -> str:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "variants.py"), "token"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def instructions(variant: str, calls: int, bearer: str) -> int:
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        out = Path(workdir) / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        server = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(ROOT / "bench" / "variants.py"),
                variant,
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        headers = {
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {bearer}",
        }
        try:
            deadline = time.monotonic() + 600
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                while True:
                    try:
                        client.post("/mcp", json=CALL, headers=headers)
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline or server.poll() is not None:
                            raise RuntimeError(f"{variant} did not start") from None
                        time.sleep(0.5)
                for _ in range(calls):
                    response = client.post("/mcp", json=CALL, headers=headers)
                    if response.status_code != 200:
                        raise RuntimeError(f"{variant}: HTTP {response.status_code}")
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(600)
        text = out.read_text(errors="replace")
        match = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
        if match is None:
            raise RuntimeError("no callgrind totals")
        return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="plain,fastmcp-jwt,auth")
    parser.add_argument("--n1", type=int, default=100)
    parser.add_argument("--n2", type=int, default=300)
    args = parser.parse_args()
    bearer = token()
    results: dict[str, float] = {}
    for variant in args.variants.split(","):
        low = instructions(variant, args.n1, bearer)
        high = instructions(variant, args.n2, bearer)
        results[variant] = (high - low) / (args.n2 - args.n1)
        print(f"{variant:<12} {results[variant] / 1e6:8.3f} M instructions/call", flush=True)
    base = results.get("plain")
    print(f"\n{'variant':<12} {'M instr/call':>12} {'vs plain':>9}")
    for variant, per_call in results.items():
        ratio = f"{base / per_call:.3f}x" if base else "-"
        print(f"{variant:<12} {per_call / 1e6:>12.3f} {ratio:>9}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "callgrind.json").write_text(
        json.dumps({"n1": args.n1, "n2": args.n2, "instructions_per_call": results}, indent=2)
    )


if __name__ == "__main__":
    main()
