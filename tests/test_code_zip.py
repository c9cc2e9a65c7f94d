"""Code zips: bad ones refused whole with nothing left on disk, good ones kept as they were
(links inside the tree, executable bits), through the API and through extract_zip itself."""

from __future__ import annotations

import contextlib
import io
import json
import os
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from lambdalet.api.codezip import MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES, extract_zip
from lambdalet.errors import InvalidParameterValueException
from lambdalet.testing import ServerThread, code_trees, make_zip

ROLE = "arn:aws:iam::000000000000:role/lambdalet-test"
LINK = 0o120777
EXECUTABLE = 0o100755
HANDLER = "def handler(event, context):\n    return {'ok': True}\n"
MB = 1024 * 1024

# Reports, from inside the sandbox, what the extracted tree looks like.
INSPECTOR = """
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

def at(relative):
    return os.path.join(HERE, relative)

def handler(event, context):
    tool = at("bin/tool.sh")
    return {
        "tool_executable": os.access(tool, os.X_OK),
        "tool_output": subprocess.run([tool], capture_output=True, text=True).stdout,
        "data_executable": os.access(at("data/real.txt"), os.X_OK),
        "handler_executable": os.access(at("app.py"), os.X_OK),
        "file_link": os.path.islink(at("link.txt")),
        "file_link_target": os.readlink(at("link.txt")),
        "file_link_text": open(at("link.txt")).read(),
        "dir_link_text": open(at("datalink/real.txt")).read(),
        "nested_link_text": open(at("data/up.txt")).read(),
    }
"""
GOOD_FILES: dict[str, str | bytes] = {
    "app.py": INSPECTOR,
    "bin/tool.sh": "#!/bin/sh\necho tool ran\n",
    "data/real.txt": "real data",
    "data/up.txt": "../data/real.txt",
    "link.txt": "data/real.txt",
    "datalink": "data",
}
GOOD_MODES = {
    "bin/tool.sh": EXECUTABLE,
    "data/up.txt": LINK,
    "link.txt": LINK,
    "datalink": LINK,
}


def zip_entries(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A zip of (name, content, mode) in order, duplicate names allowed (make_zip takes a dict)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of duplicate names
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content, mode in entries:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = mode << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, content)
    return buffer.getvalue()


def oversized_zip() -> bytes:
    """Incompressible and stored: over the zipped limit by a little."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("app.py", HANDLER)
        archive.writestr("noise.bin", os.urandom(MAX_ZIPPED_BYTES))
    data = buffer.getvalue()
    assert len(data) > MAX_ZIPPED_BYTES
    return data


def zip_bomb() -> bytes:
    """Zeros that unzip to just over the unzipped limit, written a chunk at a time."""
    buffer = io.BytesIO()
    chunk = bytes(MB)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", HANDLER)
        with archive.open("zeros.bin", "w", force_zip64=True) as out:
            for _ in range(MAX_UNZIPPED_BYTES // MB + 1):
                out.write(chunk)
    data = buffer.getvalue()
    assert len(data) < MB
    return data


def many_small_files_over_limit() -> bytes:
    """Every file is small but together they are over the unzipped limit."""
    buffer = io.BytesIO()
    chunk = bytes(64 * MB)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", HANDLER)
        for index in range(MAX_UNZIPPED_BYTES // len(chunk) + 1):
            archive.writestr(f"part{index}.bin", chunk)
    return buffer.getvalue()


def link_zip(link_name: str, link_target: str) -> bytes:
    return make_zip({"app.py": HANDLER, link_name: link_target}, modes={link_name: LINK})


L = LINK
F = 0o100644
# (id, build the zip, handler, a fragment of the message). Built lazily: some are big.
BAD_ZIPS: list[tuple[str, Callable[[], bytes], str, str]] = [
    ("not-a-zip", lambda: b"this is not a zip file at all", "app.handler", "Could not unzip"),
    (
        "truncated",
        lambda: make_zip({"app.py": HANDLER, "lib.py": "x = 1" * 100})[:-40],
        "app.handler",
        "Could not unzip",
    ),
    ("empty-zip", lambda: b"PK\x05\x06" + bytes(18), "app.handler", "is not in the zip"),
    (
        "dot-dot",
        lambda: make_zip({"app.py": HANDLER, "../evil.py": "x = 1"}),
        "app.handler",
        "Zip entry '../evil.py' points outside the code directory",
    ),
    (
        "nested-dot-dot",
        lambda: make_zip({"app.py": HANDLER, "lib/../../evil.py": "x = 1"}),
        "app.handler",
        "points outside the code directory",
    ),
    (
        "backslash-dot-dot",
        lambda: make_zip({"app.py": HANDLER, "..\\evil.py": "x = 1"}),
        "app.handler",
        "points outside the code directory",
    ),
    (
        "absolute",
        lambda: make_zip({"app.py": HANDLER, "/tmp/evil.py": "x = 1"}),
        "app.handler",
        "Zip entry '/tmp/evil.py' points outside the code directory",
    ),
    (
        "drive-letter",
        lambda: make_zip({"app.py": HANDLER, "C:/evil.py": "x = 1"}),
        "app.handler",
        "points outside the code directory",
    ),
    (
        "symlink-out",
        lambda: link_zip("link", "../../etc/passwd"),
        "app.handler",
        "Symlink 'link' -> '../../etc/passwd' points outside the code directory",
    ),
    (
        "symlink-absolute",
        lambda: link_zip("link", "/etc/passwd"),
        "app.handler",
        "points outside the code directory",
    ),
    (
        "symlink-out-from-subdir",
        lambda: link_zip("lib/link", "../.."),
        "app.handler",
        "points outside the code directory",
    ),
    (
        # 'a' -> '.' makes 'a/..' the parent of the tree, though it looks like '.'.
        "symlink-out-through-dot-link",
        lambda: zip_entries([("app.py", HANDLER.encode(), F), ("a", b".", L), ("l", b"a/..", L)]),
        "app.handler",
        "Symlink 'l' -> 'a/..' resolves outside the code directory",
    ),
    (
        "symlink-made-inside-a-dot-link",
        lambda: zip_entries([("app.py", HANDLER.encode(), F), ("a", b".", L), ("a/b", b"..", L)]),
        "app.handler",
        "resolves outside the code directory",
    ),
    (
        # The link is harmless when made and leads out once 'a' exists; then a file is
        # written through it.
        "write-through-link-made-to-lead-out",
        lambda: zip_entries(
            [
                ("app.py", HANDLER.encode(), F),
                ("l", b"a/../escaped.txt", L),
                ("a", b".", L),
                ("l", b"written outside", F),
            ]
        ),
        "app.handler",
        "Zip entry 'l' is inside a link that leaves the code directory",
    ),
    (
        "directory-through-link-out",
        lambda: zip_entries(
            [
                ("app.py", HANDLER.encode(), F),
                ("a", b".", L),
                ("b", b"a/..", L),
                ("b/made-outside/evil.py", b"x = 1", F),
            ]
        ),
        "app.handler",
        "Zip entry 'b/made-outside/evil.py' is inside a link that leaves the code directory",
    ),
    (
        "link-loop",
        lambda: zip_entries([("app.py", HANDLER.encode(), F), ("x", b"y", L), ("y", b"x", L)]),
        "app.handler",
        "loop of links",
    ),
    (
        "file-then-directory-of-same-name",
        lambda: zip_entries([("app.py", HANDLER.encode(), F), ("x", b"1", F), ("x/y.py", b"", F)]),
        "app.handler",
        "Zip entry 'x/y.py' clashes with another entry",
    ),
    (
        "directory-then-file-of-same-name",
        lambda: zip_entries([("app.py", HANDLER.encode(), F), ("x/", b"", F), ("x", b"1", F)]),
        "app.handler",
        "Zip entry 'x' clashes with another entry",
    ),
    (
        "handler-missing",
        lambda: make_zip({"app.py": HANDLER}),
        "missing.handler",
        "The handler's file 'missing.py' is not in the zip",
    ),
    (
        "handler-in-subdirectory",
        lambda: make_zip({"src/app.py": HANDLER}),
        "app.handler",
        "files must be at the zip's root",
    ),
    (
        "handler-is-a-directory",
        lambda: zip_entries([("app.py/", b"", F), ("other.py", HANDLER.encode(), F)]),
        "app.handler",
        "The handler's file 'app.py' is not in the zip",
    ),
    (
        "handler-is-a-link-out",
        lambda: link_zip("main.py", "../../etc/hostname"),
        "main.handler",
        "points outside the code directory",
    ),
    ("over-50mb-zipped", oversized_zip, "app.handler", "Zipped size must be smaller than"),
    ("over-250mb-unzipped", zip_bomb, "app.handler", "Unzipped size must be smaller than"),
    (
        "over-250mb-in-many-files",
        many_small_files_over_limit,
        "app.handler",
        "Unzipped size must be smaller than",
    ),
]
BAD_ZIP_IDS = [case[0] for case in BAD_ZIPS]
BAD_ZIP_PARAMS = [case[1:] for case in BAD_ZIPS]


def disk_state(server: ServerThread) -> tuple[set[Path], set[Path]]:
    """The code trees and zips a node keeps: what a refused zip must not change."""
    data_dir = server.settings.data_dir
    return code_trees(data_dir), set((data_dir / "code" / "zips").iterdir())


def scratch_dirs(server: ServerThread) -> list[Path]:
    """Trees being built; none may outlive a request."""
    return sorted((server.settings.data_dir / "code").glob(".build-*"))


def client_error(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


@pytest.fixture
def functions(lambda_client: Any) -> Iterator[list[str]]:
    """Names of functions the test may create; deleted after it."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(lambda_client.exceptions.ResourceNotFoundException):
            lambda_client.delete_function(FunctionName=name)


# --- Through the API -------------------------------------------------------------------------


@pytest.mark.parametrize(("build", "handler", "fragment"), BAD_ZIP_PARAMS, ids=BAD_ZIP_IDS)
def test_bad_zip_is_refused_on_create_with_nothing_left(
    server: ServerThread,
    lambda_client: Any,
    functions: list[str],
    unique_name: str,
    build: Callable[[], bytes],
    handler: str,
    fragment: str,
) -> None:
    zip_bytes = build()
    before = disk_state(server)
    functions.append(unique_name)

    with pytest.raises(ClientError) as caught:
        lambda_client.create_function(
            FunctionName=unique_name,
            Runtime="python3.11",
            Role=ROLE,
            Handler=handler,
            Code={"ZipFile": zip_bytes},
        )

    code, status, message = client_error(caught)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert fragment in message
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=unique_name)
    assert disk_state(server) == before
    assert scratch_dirs(server) == []
    assert not (server.settings.data_dir / "escaped.txt").exists()
    assert not (server.settings.data_dir / "code" / "escaped.txt").exists()
    assert not (server.settings.data_dir / "code" / "made-outside").exists()


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: b"not a zip", "Could not unzip"),
        (lambda: make_zip({"app.py": HANDLER, "../evil.py": "x = 1"}), "'../evil.py'"),
        (lambda: link_zip("link", "../../etc/passwd"), "Symlink 'link'"),
        (zip_bomb, "Unzipped size"),
    ],
    ids=["not-a-zip", "dot-dot", "symlink-out", "over-250mb-unzipped"],
)
def test_bad_zip_is_refused_on_update_and_the_old_code_stays(
    server: ServerThread,
    lambda_client: Any,
    functions: list[str],
    unique_name: str,
    build: Callable[[], bytes],
    fragment: str,
) -> None:
    source = f"# {unique_name}\n{HANDLER}"
    functions.append(unique_name)
    created = lambda_client.create_function(
        FunctionName=unique_name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": source})},
    )
    before = disk_state(server)

    with pytest.raises(ClientError) as caught:
        lambda_client.update_function_code(FunctionName=unique_name, ZipFile=build())

    code, status, message = client_error(caught)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert fragment in message
    after = lambda_client.get_function_configuration(FunctionName=unique_name)
    assert after["CodeSha256"] == created["CodeSha256"]
    assert after["RevisionId"] == created["RevisionId"]
    assert disk_state(server) == before
    assert scratch_dirs(server) == []
    result = lambda_client.invoke(FunctionName=unique_name, Payload=b"{}")
    assert json.loads(result["Payload"].read()) == {"ok": True}


def test_zip_that_is_not_base64_is_refused(server: ServerThread, unique_name: str) -> None:
    before = disk_state(server)
    body = {
        "FunctionName": unique_name,
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": "this is %%% not base64"},
    }

    response = httpx.post(f"{server.url}/2015-03-31/functions", json=body)

    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert "Code.ZipFile is not valid base64" in response.json()["message"]
    assert disk_state(server) == before


def test_good_zip_keeps_links_inside_and_exec_bits(
    server: ServerThread, lambda_client: Any, functions: list[str], unique_name: str
) -> None:
    zip_bytes = make_zip(GOOD_FILES, modes=GOOD_MODES)
    functions.append(unique_name)
    trees_before = code_trees(server.settings.data_dir)

    created = lambda_client.create_function(
        FunctionName=unique_name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_bytes},
    )

    assert created["CodeSize"] == len(zip_bytes)
    response = lambda_client.invoke(FunctionName=unique_name, Payload=b"{}")
    result = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, result
    assert result == {
        "tool_executable": True,
        "tool_output": "tool ran\n",
        "data_executable": False,
        "handler_executable": False,
        "file_link": True,
        "file_link_target": "data/real.txt",
        "file_link_text": "real data",
        "dir_link_text": "real data",
        "nested_link_text": "real data",
    }
    new_trees = code_trees(server.settings.data_dir) - trees_before
    assert len(new_trees) == 1
    (tree,) = new_trees
    assert (tree / "datalink").is_symlink()
    assert os.readlink(tree / "datalink") == "data"
    assert scratch_dirs(server) == []
    download = httpx.get(lambda_client.get_function(FunctionName=unique_name)["Code"]["Location"])
    assert download.content == zip_bytes


def test_deleting_the_function_removes_its_code(
    server: ServerThread, lambda_client: Any, functions: list[str], unique_name: str
) -> None:
    before = disk_state(server)
    functions.append(unique_name)
    lambda_client.create_function(
        FunctionName=unique_name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": f"# {uuid.uuid4()}\n{HANDLER}"})},
    )
    trees, zips = disk_state(server)
    assert len(trees - before[0]) == 1
    assert len(zips - before[1]) == 1

    lambda_client.delete_function(FunctionName=unique_name)

    assert disk_state(server) == before


def test_two_functions_share_one_copy_of_the_same_code(
    server: ServerThread, lambda_client: Any, functions: list[str], unique_name: str
) -> None:
    zip_bytes = make_zip({"app.py": f"# {uuid.uuid4()}\n{HANDLER}"})
    before = disk_state(server)
    names = [f"{unique_name}-a", f"{unique_name}-b"]
    functions.extend(names)
    for name in names:
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": zip_bytes},
        )
    trees, zips = disk_state(server)
    assert (len(trees - before[0]), len(zips - before[1])) == (1, 1)

    lambda_client.delete_function(FunctionName=names[0])
    assert disk_state(server) == (trees, zips), "code still used by the other function is kept"
    result = lambda_client.invoke(FunctionName=names[1], Payload=b"{}")
    assert json.loads(result["Payload"].read()) == {"ok": True}

    lambda_client.delete_function(FunctionName=names[1])
    assert disk_state(server) == before


def test_same_code_with_a_handler_it_lacks_is_refused(
    lambda_client: Any, functions: list[str], unique_name: str
) -> None:
    # The second create finds the tree already kept; the handler check must still run.
    zip_bytes = make_zip({"app.py": f"# {uuid.uuid4()}\n{HANDLER}"})
    functions.extend([f"{unique_name}-a", f"{unique_name}-b"])
    lambda_client.create_function(
        FunctionName=f"{unique_name}-a",
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": zip_bytes},
    )

    with pytest.raises(ClientError) as caught:
        lambda_client.create_function(
            FunctionName=f"{unique_name}-b",
            Runtime="python3.11",
            Role=ROLE,
            Handler="other.handler",
            Code={"ZipFile": zip_bytes},
        )

    code, status, message = client_error(caught)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "'other.py' is not in the zip" in message
    with pytest.raises(lambda_client.exceptions.ResourceNotFoundException):
        lambda_client.get_function(FunctionName=f"{unique_name}-b")


# --- extract_zip itself ----------------------------------------------------------------------


@pytest.fixture
def destination(tmp_path: Path) -> Path:
    """An empty directory to extract into, two levels down so escapes have somewhere to go."""
    path = tmp_path / "code" / "tree"
    path.mkdir(parents=True)
    return path


def everything_under(path: Path) -> set[Path]:
    return {entry.relative_to(path) for entry in path.rglob("*")}


@pytest.mark.parametrize(("build", "handler", "fragment"), BAD_ZIP_PARAMS, ids=BAD_ZIP_IDS)
def test_extract_zip_refuses_bad_zip_and_removes_destination(
    tmp_path: Path, destination: Path, build: Callable[[], bytes], handler: str, fragment: str
) -> None:
    required = handler.rsplit(".", 1)[0] + ".py"

    with pytest.raises(InvalidParameterValueException) as caught:
        extract_zip(build(), destination, (required,))

    assert fragment in caught.value.message
    assert caught.value.status == 400
    assert not destination.exists()
    # Nothing was written beside or above the destination either.
    assert everything_under(tmp_path) == {Path("code")}


def test_extract_zip_refuses_absolute_path_and_writes_nothing_there(
    tmp_path: Path, destination: Path
) -> None:
    outside = tmp_path / "outside" / "evil.py"
    zip_bytes = make_zip({"app.py": HANDLER, str(outside): "x = 1"})

    with pytest.raises(InvalidParameterValueException, match="points outside"):
        extract_zip(zip_bytes, destination, ("app.py",))

    assert not outside.exists()
    assert not outside.parent.exists()
    assert not destination.exists()


def test_extract_zip_keeps_files_links_and_modes(destination: Path) -> None:
    zip_bytes = make_zip(GOOD_FILES, modes=GOOD_MODES)

    size = extract_zip(zip_bytes, destination, ("app.py",))

    regular = [name for name in GOOD_FILES if name not in ("data/up.txt", "link.txt", "datalink")]
    assert size == sum(len(str(GOOD_FILES[name]).encode()) for name in regular)
    assert everything_under(destination) == {
        Path(p)
        for p in (
            "app.py",
            "bin",
            "bin/tool.sh",
            "data",
            "data/real.txt",
            "data/up.txt",
            "link.txt",
            "datalink",
        )
    }
    assert (destination / "bin" / "tool.sh").stat().st_mode & 0o777 == 0o755
    assert (destination / "app.py").stat().st_mode & 0o777 == 0o644
    assert (destination / "data" / "real.txt").stat().st_mode & 0o777 == 0o644
    assert os.access(destination / "bin" / "tool.sh", os.X_OK)
    assert not os.access(destination / "app.py", os.X_OK)
    for link, target in (
        ("link.txt", "data/real.txt"),
        ("datalink", "data"),
        ("data/up.txt", "../data/real.txt"),
    ):
        assert (destination / link).is_symlink(), link
        assert os.readlink(destination / link) == target
    assert (destination / "datalink" / "real.txt").read_text() == "real data"
    assert (destination / "data" / "up.txt").read_text() == "real data"


def test_extract_zip_writes_through_a_directory_link_inside(destination: Path) -> None:
    zip_bytes = zip_entries(
        [
            ("lib64/", b"", 0o40755),
            ("lib", b"lib64", LINK),
            ("lib/module.py", b"x = 1", 0o100644),
            ("here", b".", LINK),
            ("here/app.py", HANDLER.encode(), 0o100644),
        ]
    )

    extract_zip(zip_bytes, destination, ("app.py",))

    assert (destination / "lib64" / "module.py").read_text() == "x = 1"
    assert (destination / "app.py").read_text() == HANDLER


def test_extract_zip_without_required_file(destination: Path) -> None:
    size = extract_zip(make_zip({"lib.py": "x = 1"}), destination, None)

    assert size == 5
    assert (destination / "lib.py").read_text() == "x = 1"


def test_extract_zip_accepts_any_of_several_entry_files(destination: Path) -> None:
    extract_zip(make_zip({"index.mjs": "export {}"}), destination, ("index.js", "index.mjs"))

    assert (destination / "index.mjs").is_file()


def test_extract_zip_names_every_candidate_when_none_is_there(destination: Path) -> None:
    with pytest.raises(InvalidParameterValueException) as caught:
        extract_zip(make_zip({"other.js": ""}), destination, ("index.js", "index.mjs"))

    assert "'index.js or index.mjs'" in caught.value.message
    assert not destination.exists()


def test_extract_zip_at_the_unzipped_limit_is_accepted(destination: Path) -> None:
    # Exactly the limit, split in two so the handler fits too.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app.py", HANDLER)
        with archive.open("zeros.bin", "w", force_zip64=True) as out:
            remaining = MAX_UNZIPPED_BYTES - len(HANDLER)
            while remaining:
                step = min(remaining, 8 * MB)
                out.write(bytes(step))
                remaining -= step

    size = extract_zip(buffer.getvalue(), destination, ("app.py",))

    assert size == MAX_UNZIPPED_BYTES
    assert (destination / "zeros.bin").stat().st_size == MAX_UNZIPPED_BYTES - len(HANDLER)
