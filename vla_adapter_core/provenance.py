"""The source tree's git revision, recorded in every checkpoint (one helper for all writers)."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess

GIT_TIMEOUT_S = 10


def git_revision(directory: str | os.PathLike | None = None) -> str | None:
    """The commit checked out at ``directory`` (default: this package's source), or None.

    A ``-dirty`` suffix marks uncommitted changes to tracked files; None outside a git work
    tree or without git.
    """
    source = Path(directory) if directory is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=source, capture_output=True,
                                text=True, timeout=GIT_TIMEOUT_S, check=True).stdout.strip()
        changes = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                                 cwd=source, capture_output=True, text=True,
                                 timeout=GIT_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ('-dirty' if changes.strip() else '')
