"""The one git-revision helper behind every checkpoint's provenance."""

import re
import subprocess

from vla_adapter_core.provenance import git_revision


def test_revision_of_a_work_tree_and_none_outside_one(tmp_path):
    assert git_revision(tmp_path) is None  # not a git work tree
    subprocess.run(['git', 'init', '-q', str(tmp_path)], check=True)
    (tmp_path / 'file.txt').write_text('one')
    commit = ['git', '-C', str(tmp_path), '-c', 'user.name=t', '-c', 'user.email=t@t']
    subprocess.run([*commit, 'add', 'file.txt'], check=True)
    subprocess.run([*commit, 'commit', '-q', '-m', 'first'], check=True)
    clean = git_revision(tmp_path)
    assert re.fullmatch(r'[0-9a-f]{40}', clean)
    (tmp_path / 'file.txt').write_text('two')
    assert git_revision(tmp_path) == clean + '-dirty'
