"""A Hugging Face Hub cache laid out by the tests (nothing can be downloaded here).

huggingface_hub keeps a model repo as ``models--<owner>--<name>/`` with ``refs/main`` (the commit),
``blobs/<sha256>`` (file contents) and ``snapshots/<commit>/<path>`` (relative symlinks to the
blobs); ``snapshot_download(..., local_files_only=True)`` and timm's pretrained loading read it.
"""

import hashlib
import os
import pathlib


def write_hub_snapshot(cache_dir: pathlib.Path, repo_id: str, files: dict,
                       commit: str | None = None) -> pathlib.Path:
    """Lay out ``{path in repo: bytes}`` as a cached model repo; return its snapshot folder."""
    commit = commit or hashlib.sha1(repo_id.encode()).hexdigest()
    repo = pathlib.Path(cache_dir) / ('models--' + repo_id.replace('/', '--'))
    (repo / 'refs').mkdir(parents=True)
    (repo / 'refs' / 'main').write_text(commit)
    (repo / 'blobs').mkdir()
    snapshot = repo / 'snapshots' / commit
    for name, data in files.items():
        blob = repo / 'blobs' / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return snapshot
