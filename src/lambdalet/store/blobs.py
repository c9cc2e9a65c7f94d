"""Code blobs, content-addressed by SHA-256, on local disk.

A blob is written to a temporary file and renamed into place, so a reader never sees half of
one and a crash leaves at most a stray temporary file. Its extracted tree sits beside it,
made once per digest and shared by every sandbox of every function with that code.
"""

from __future__ import annotations

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
