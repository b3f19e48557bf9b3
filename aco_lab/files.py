"""Writing files and directories atomically, with the modes a plain `open()` would give.

Every file the lab writes goes through here: reports, decisions, simulated traces, holdout
files, bundles and their manifests, ingested datasets. A file is written to a temp file in its
target directory, flushed to disk, then renamed over the target, so a reader never sees half a
file and an interrupted write leaves the old file (or none) in place. A dataset is built in a
staging directory beside its target and renamed into place whole.

Modes: files FILE_MODE (0o666 less the umask), directories DIR_MODE (0o777 less the umask),
as `open()` and `mkdir()` create them; the temp files and directories Python's `tempfile`
makes (0600, 0700) never reach the final name with their private modes.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set back at once (read once, at import)
    os.umask(mask)
    return mask


_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK
TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary stream whose bytes become `path` when the block ends without an error.

    The parent directories are created. On an error the temp file is removed and `path` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a file atomically; its path."""
    with atomic_file(path) as out:
        out.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write a UTF-8 text file atomically; its path."""
    return write_bytes(path, text.encode("utf-8"))


def write_temp(directory: Path, data: bytes, prefix: str) -> Path:
    """A complete file of `data` under a temp name in `directory` (FILE_MODE, on disk), for a
    caller that gives it its final name itself (e.g. by a hard link that must not replace)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def write_new(path: Path, data: bytes) -> None:
    """Create `path` with `data`; FileExistsError when it exists (never replaces a file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries (new names) to disk, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported here (e.g. Windows); the files themselves are flushed
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staging_dir(target: Path) -> Path:
    """A fresh, empty directory beside `target` (same file system, so renaming it is atomic),
    with DIR_MODE; build the contents there, then `replace_dir`.

    Its name, `.<target>.<pid>.<random>.tmp`, records the process that builds it: staging
    directories of `target` left by processes that are gone (killed mid-write) are removed
    first.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target)
    staging = Path(
        tempfile.mkdtemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=target.parent
        )
    )
    os.chmod(staging, DIR_MODE)
    return staging


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the staging directories of `target` whose owner process is gone; those removed.

    Only names staging_dir makes are considered, and only when their pid is not running here
    (a reused pid keeps its directory: the safe side).
    """
    pattern = re.compile(
        rf"\.{re.escape(target.name)}\.(\d+)\.[a-z0-9_]{{8}}"
        rf"{re.escape(TEMP_SUFFIX)}"
    )
    removed = []
    for entry in target.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if (
            match
            and entry.is_dir()
            and not entry.is_symlink()
            and not _running(int(match.group(1)))
        ):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d staging folder(s) of %s left by ended processes", len(removed), target)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this pid exists (on Windows: assumed, never probed)."""
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True


def replace_dir(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an existing `target` is renamed aside first, then removed.

    Each rename is atomic. Between the two (a moment) `target` is absent and the old contents
    are kept beside it as .<name>.*.old; a crash never leaves a partial directory.
    """
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
