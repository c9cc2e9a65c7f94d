"""Checks and extracts a function's zip: sizes, paths and links, and the handler's file.

A zip is refused whole, with nothing left on disk, if it is not a zip, is over 50 MB zipped or
250 MB unzipped (counted as written, not as its headers claim), or has an entry or a symlink
that would land outside the code directory. Blocking: call it from a thread.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import zipfile
from pathlib import Path

from lambdalet.errors import InvalidParameterValueException

MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
_CHUNK_BYTES = 1024 * 1024


def _escapes(relative: str) -> bool:
    normal = posixpath.normpath(relative)
    return (
        relative.startswith(("/", "\\"))
        or (len(relative) > 1 and relative[1] == ":")
        or normal == ".."
        or normal.startswith("../")
    )


def _resolves_inside(path: Path, root: Path) -> bool:
    """Whether ``path``, following the links already on disk, stays under ``root``."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a loop of links
        return False


def _refuse(message: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(message)


def extract_zip(
    zip_bytes: bytes, destination: Path, required_file: str | tuple[str, ...] | None
) -> int:
    """Extract ``zip_bytes`` into the empty directory ``destination``; return the unzipped size.

    ``required_file`` is a file (or files, any one of which will do) that must be in the zip.
    On any refusal ``destination`` is removed and InvalidParameterValueException is raised.
    """
    try:
        return _extract(zip_bytes, destination, required_file)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise


def missing_entry(
    root: Path, required: str | tuple[str, ...]
) -> InvalidParameterValueException | None:
    """The error to raise if none of the ``required`` files is a regular file under ``root``."""
    names = (required,) if isinstance(required, str) else required
    for name in names:
        found = root / name
        if found.is_file() and found.resolve().is_relative_to(root.resolve()):
            return None
    return _refuse(
        f"The handler's file '{' or '.join(names)}' is not in the zip; check the handler"
        " setting and the zip's layout (files must be at the zip's root)"
    )


def _extract(
    zip_bytes: bytes, destination: Path, required_file: str | tuple[str, ...] | None
) -> int:
    if len(zip_bytes) > MAX_ZIPPED_BYTES:
        raise _refuse(
            f"Zipped size must be smaller than {MAX_ZIPPED_BYTES} bytes"
            f" (this zip is {len(zip_bytes)} bytes)"
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(zip_bytes))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError):
        raise _refuse(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from None
    if sum(entry.file_size for entry in entries) > MAX_UNZIPPED_BYTES:
        raise _refuse(f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")
    written = 0
    root = destination.resolve()
    links: list[tuple[Path, str, str]] = []
    for entry in entries:
        name = entry.filename.replace("\\", "/")
        if _escapes(name):
            raise _refuse(
                f"Zip entry '{entry.filename}' points outside the code directory;"
                " use relative paths without '..'"
            )
        target = root / name
        mode = entry.external_attr >> 16
        # Checked before anything is made, following the links earlier entries made: a link
        # to '.' makes 'a/..' mean the parent of the code directory.
        if not _resolves_inside(target.parent, root) or (
            not stat.S_ISLNK(mode) and not _resolves_inside(target, root)
        ):
            raise _refuse(
                f"Zip entry '{entry.filename}' is inside a link that leaves the code directory"
            )
        try:
            if entry.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(mode):
                link = archive.read(entry).decode("utf-8", "replace")
                inside = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
                if link.startswith("/") or inside == ".." or inside.startswith("../"):
                    raise _refuse(
                        f"Symlink '{entry.filename}' -> '{link}' points outside the code directory"
                    )
                os.symlink(link, target)
                links.append((target, entry.filename, link))
                continue
            with archive.open(entry) as source, open(target, "wb") as out:
                while chunk := source.read(_CHUNK_BYTES):
                    written += len(chunk)
                    if written > MAX_UNZIPPED_BYTES:
                        raise _refuse(
                            f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes"
                        )
                    out.write(chunk)
        except (FileExistsError, FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise _refuse(
                f"Zip entry '{entry.filename}' clashes with another entry of the same path"
                " (a file, directory or link of that name)"
            ) from None
        except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as error:
            raise _refuse(f"Could not unzip '{entry.filename}': {error}") from None
        os.chmod(target, 0o755 if mode & 0o111 else 0o644)
    # A link may lead out only through links made after it, so all are checked once all exist.
    for link_path, filename, link in links:
        if not _resolves_inside(link_path, root):
            raise _refuse(
                f"Symlink '{filename}' -> '{link}' resolves outside the code directory"
                " (or into a loop of links)"
            )
    if required_file is not None:
        missing = missing_entry(root, required_file)
        if missing is not None:
            raise missing
    return written
