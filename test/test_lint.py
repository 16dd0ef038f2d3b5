"""Lint as a test: ruff with the ROS 2 flake8 conventions (ruff.toml) over the whole tree."""

import pathlib
import shutil
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    beside_python = pathlib.Path(sys.executable).with_name('ruff')
    if beside_python.exists():
        return [str(beside_python)]
    found = shutil.which('ruff')
    assert found, 'ruff is not installed (requirements/dev.txt)'
    return [found]


def test_ruff_clean():
    result = subprocess.run(
        [*_ruff(), 'check', '--no-cache', '--output-format', 'concise', '.'],
        cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
