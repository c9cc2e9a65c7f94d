"""Code blobs, content-addressed by SHA-256, on local disk: functions' code and layers alike.

A blob is written to a temporary file and renamed into place, so a reader never sees half of
one and a crash leaves at most a stray temporary file. Its extracted tree sits beside it,
made once per digest and shared by every sandbox of every function with that code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


class BlobStore:
    """Zip files and their extracted trees under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "zips").mkdir(parents=True, exist_ok=True)
        (root / "trees").mkdir(parents=True, exist_ok=True)
        (root / "opt").mkdir(parents=True, exist_ok=True)

    def zip_path(self, sha256_hex: str) -> Path:
        """Where the zip with this digest is kept."""
        return self.root / "zips" / f"{sha256_hex}.zip"

    def tree_path(self, sha256_hex: str) -> Path:
        """Where the extracted code with this digest is kept."""
        return self.root / "trees" / sha256_hex

    def has(self, sha256_hex: str) -> bool:
        """Whether both the zip and its tree are in place."""
        return self.zip_path(sha256_hex).exists() and self.tree_path(sha256_hex).is_dir()

    def scratch_dir(self) -> Path:
        """A new empty directory on the same file system, for building a tree."""
        return Path(tempfile.mkdtemp(prefix=".build-", dir=self.root))

    def put(self, sha256_hex: str, zip_bytes: bytes, built_tree: Path) -> None:
        """Move a built tree into place and write the zip beside it (blocking)."""
        tree = self.tree_path(sha256_hex)
        if tree.is_dir():
            shutil.rmtree(built_tree, ignore_errors=True)
        else:
            try:
                os.rename(built_tree, tree)
            except OSError:
                # Another request put the same code first: theirs is identical.
                shutil.rmtree(built_tree, ignore_errors=True)
        target = self.zip_path(sha256_hex)
        if not target.exists():
            fd, tmp = tempfile.mkstemp(prefix=".zip-", dir=self.root)
            with os.fdopen(fd, "wb") as out:
                out.write(zip_bytes)
            os.replace(tmp, target)

    def tree_size_bytes(self, sha256_hex: str) -> int:
        """The unzipped size of a code tree (blocking)."""
        total = 0
        for root, _dirs, files in os.walk(self.tree_path(sha256_hex)):
            for name in files:
                path = Path(root) / name
                if not path.is_symlink():
                    total += path.stat().st_size
        return total

    def opt_tree(self, layer_shas: list[str]) -> Path:
        """The layers' trees merged in order, later ones over earlier ones: what ``/opt`` shows.

        Built once per list of layers, from hard links to the layers' trees (blocking).
        """
        key = hashlib.sha256(" ".join(layer_shas).encode()).hexdigest()[:32]
        merged = self.root / "opt" / key
        if merged.is_dir():
            return merged
        build = self.scratch_dir()

        def link_over(source: str, target: str) -> None:
            if os.path.lexists(target):
                os.unlink(target)
            os.link(source, target, follow_symlinks=False)

        for sha256_hex in layer_shas:
            shutil.copytree(
                self.tree_path(sha256_hex),
                build,
                symlinks=True,
                copy_function=link_over,
                dirs_exist_ok=True,
            )
        try:
            os.rename(build, merged)
        except OSError:
            shutil.rmtree(build, ignore_errors=True)  # built by someone else meanwhile
        return merged

    def delete(self, sha256_hex: str) -> None:
        """Remove a zip and its tree (blocking)."""
        self.zip_path(sha256_hex).unlink(missing_ok=True)
        shutil.rmtree(self.tree_path(sha256_hex), ignore_errors=True)

    def sweep_scratch(self) -> None:
        """Remove temporary files a crash may have left (blocking)."""
        for entry in self.root.iterdir():
            if entry.name.startswith((".build-", ".zip-")):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
