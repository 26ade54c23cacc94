"""Shared helpers of the bamdp Python tests: the repository root and the `bamdp` CLI."""

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli_command() -> list[str]:
    """The `bamdp` command built from this checkout: $BAMDP_BIN, else the newest of
    target/{release,debug}/bamdp (under $CARGO_TARGET_DIR if set), else `cargo run`."""
    if os.environ.get("BAMDP_BIN"):
        return [os.environ["BAMDP_BIN"]]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    built = [p for p in (target / "release" / "bamdp", target / "debug" / "bamdp") if p.exists()]
    if built:
        return [str(max(built, key=lambda p: p.stat().st_mtime))]
    return ["cargo", "run", "--release", "--quiet", "--manifest-path", str(REPO / "Cargo.toml"), "--"]


@pytest.fixture(scope="session")
def cli():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cli_command(), *args], capture_output=True, text=True, cwd=REPO, timeout=900
        )

    return run
