"""Run a snippet in a fresh interpreter (what a process imports cannot be undone in this one)."""

import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_in_fresh_interpreter(code: str, timeout_s: float = 300.0) -> str:
    """Run ``code`` with this Python from the repository root; assert it succeeds; its stdout."""
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=timeout_s)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
