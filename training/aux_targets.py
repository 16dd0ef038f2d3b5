"""Auxiliary state targets: what the cameras should tell, per episode, as an extra training loss.

A file (JSON) names, per recorded episode, a vector the scene had (e.g. the object's position
on the table, which a simulator knows exactly) and the step until which it holds (before the
object is picked up)::

    {"names": ["cube_x", "cube_y"],
     "episodes": {"episode_0000": {"target": [0.03, 0.61], "until_step": 170}, ...}}

An episode is named by its path relative to the file's folder (a bag folder, an HDF5 file),
so that each folder of recordings carries its own file. :class:`AuxTargets` z-scores the
targets over all the files' episodes; the trainer reads them from the task states with a linear
readout (training/trainer.py, ``aux_weight``), which is not part of the checkpoint. See
docs/demo_policy_diagnosis.md for why.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

AUX_TARGETS_FILE = 'aux_targets.json'  # the name sim-demos writes into its output folder


def _fail(path, field: str, value, reason: str):
    raise ValueError(f'{path}: {field}={value!r}: {reason}')


def read_aux_targets(path: str | Path) -> tuple[list[str], dict[str, tuple[np.ndarray, int]]]:
    """(names, {episode: (target (K,), until_step)}) of one file, checked field by field."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f'{path}: not a readable aux-targets JSON file: {error}') from None
    names = data.get('names') if isinstance(data, dict) else None
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        _fail(path, 'names', names, 'expected a non-empty list of strings')
    episodes = data.get('episodes')
    if not isinstance(episodes, dict) or not episodes:
        _fail(path, 'episodes', type(episodes).__name__, 'expected a non-empty mapping')
    parsed = {}
    for episode, entry in episodes.items():
        target = np.asarray(entry.get('target') if isinstance(entry, dict) else None,
                            dtype=object)
        if target.shape != (len(names),) or not all(
                isinstance(v, (int, float)) and np.isfinite(v) for v in target):
            _fail(path, f'episodes.{episode}.target', entry, f'expected {len(names)} finite '
                                                             'numbers')
        until = entry.get('until_step')
        if not isinstance(until, int) or until < 1:
            _fail(path, f'episodes.{episode}.until_step', until, 'expected an int >= 1')
        parsed[episode] = (target.astype(np.float32), until)
    return names, parsed


class AuxTargets:
    """The targets of one or more files, z-scored over all their episodes."""

    def __init__(self, paths: list[str]) -> None:
        self.names: list[str] = []
        raw: dict[str, tuple[np.ndarray, int]] = {}
        for path in paths:
            names, episodes = read_aux_targets(path)
            if self.names and names != self.names:
                _fail(path, 'names', names, f"differs from the other files' {self.names}")
            self.names = names
            folder = Path(path).resolve().parent
            raw.update({str((folder / name).resolve()): entry
                        for name, entry in episodes.items()})
        stacked = np.stack([target for target, _ in raw.values()])  # (E, K)
        self.mean = stacked.mean(0)
        self.std = np.where(stacked.std(0) > 0, stacked.std(0), 1.0).astype(np.float32)
        self.episodes = {name: ((target - self.mean) / self.std, until)
                         for name, (target, until) in raw.items()}

    @property
    def size(self) -> int:
        """K: the length of every target."""
        return len(self.names)

    def for_source(self, source: str | Path) -> tuple[np.ndarray, int] | None:
        """(z-scored target (K,), until_step) of the episode recorded at ``source``, or None."""
        return self.episodes.get(str(Path(source).resolve())) if source else None


def write_aux_targets(path: Path, names: list[str],
                      episodes: dict[str, tuple[list[float], int]]) -> None:
    """Write a file :func:`read_aux_targets` reads: {episode: (target, until_step)}."""
    path.write_text(json.dumps({'names': names, 'episodes': {
        name: {'target': [float(v) for v in target], 'until_step': int(until)}
        for name, (target, until) in episodes.items()}}, indent=1))
