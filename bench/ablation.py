"""What each submit-path change bought: jobline's POST /api/v1/jobs with changes turned off.

    .venv/bin/python -m bench.ablation [--seconds 8] [--rounds 3] [--connections 50,200]
    .venv/bin/python -m bench.ablation --before <commit>   # + that commit's code as a variant

Variants (one uvicorn worker each, all up at once, measured in turn, order alternating):
- `single path`: JOBLINE_SUBMIT_BATCHING=false, JOBLINE_AUTH_CACHE_SECONDS=0 (one transaction,
  one apply_async on a thread and one `queued` transaction per request; a user read per request)
- `+ user cache`: batching still off, the user read cached per process;
- `+ batches`: the shipped settings (both on);
- `before <commit>` (with --before): the code of that commit, from a git worktree.
Printed per variant: req/s, p50, p99 and the API process's CPU per request.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    Scratch,
    Server,
    cpu_seconds,
    jobline_env,
    login,
    median,
    prepare_jobline,
    run_wrk,
    start_jobline_api,
)

VARIANTS: dict[str, dict[str, str]] = {
    "single path": {"JOBLINE_SUBMIT_BATCHING": "false", "JOBLINE_AUTH_CACHE_SECONDS": "0"},
    "+ user cache": {"JOBLINE_SUBMIT_BATCHING": "false"},
    "+ batches": {},
}


def run(
    connections: tuple[int, ...], seconds: float, rounds: int, before: str | None, logdir: Path
) -> dict[str, Any]:
    scratch = Scratch.create()
    servers: dict[str, Server] = {}
    worktree: Path | None = None
    try:
        env = jobline_env(scratch, logdir, purges_queue=True)
        email = prepare_jobline(env)
        for name, extra in VARIANTS.items():
            servers[name] = start_jobline_api({**env, **extra}, logdir)
        if before is not None:
            worktree = Path(tempfile.mkdtemp(prefix="jobline-before-"))
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(worktree), before],
                cwd=REPO,
                check=True,
                capture_output=True,
            )
            # Its package first on the path; its API uses the same database and settings.
            servers[f"before {before}"] = start_jobline_api(
                {**env, "PYTHONPATH": str(worktree / "platform")}, logdir
            )
        token = login(servers["+ batches"].base, email)
        figures: dict[str, dict[int, list[dict[str, float]]]] = {n: {} for n in servers}
        names = list(servers)
        for c in connections:
            for index in range(rounds):
                for name in names if index % 2 == 0 else names[::-1]:
                    server = servers[name]
                    cpu = cpu_seconds([server.pid])
                    result = run_wrk(server.base, c, seconds, token=token)
                    used = cpu_seconds([server.pid]) - cpu
                    scratch.purge("bench")
                    figures[name].setdefault(c, []).append(
                        {
                            "rps": result.rps,
                            "p50_ms": result.p50_ms,
                            "p99_ms": result.p99_ms,
                            "errors": result.errors,
                            "cpu_ms_per_request": used * 1000 / max(result.requests, 1),
                        }
                    )
                    print(
                        f"  {name:22} c={c:<4} {result.rps:7.0f} req/s  p50 {result.p50_ms:6.1f}"
                        f"  p99 {result.p99_ms:7.1f}  CPU {used * 1000 / max(result.requests, 1):.3f}"
                        " ms/req",
                        flush=True,
                    )
    finally:
        for server in servers.values():
            server.stop()
        scratch.drop()
        if worktree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=REPO,
                capture_output=True,
            )
    return {
        name: {
            str(c): {
                key: median([r[key] for r in rows])
                for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request")
            }
            | {"errors": sum(r["errors"] for r in rows)}
            for c, rows in by_c.items()
        }
        for name, by_c in figures.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", default="50,200")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=None, help="also run this commit's code")
    args = parser.parse_args(argv)
    connections = tuple(int(c) for c in args.connections.split(","))
    logdir = Path(tempfile.mkdtemp(prefix="jobline-ablation-"))
    result = run(connections, args.seconds, args.rounds, args.before, logdir)
    print(
        f"\n{'variant':22} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10}"
    )
    for name, by_c in result.items():
        for c, f in by_c.items():
            print(
                f"{name:22} {c:>7} {f['rps']:8.0f} {f['p50_ms']:8.1f} {f['p99_ms']:8.1f} "
                f"{f['cpu_ms_per_request']:10.3f}"
            )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
