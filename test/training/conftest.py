"""Shared set-up of the training tests: the episode writers beside this file are importable."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
