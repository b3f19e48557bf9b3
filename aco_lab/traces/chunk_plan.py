"""The plan of a read: each input file cut into chunks of whole lines, in order.

`plan_chunks(files)` yields a `ChunkTask` (aco_lab/traces/chunks.py) per chunk of about
CHUNK_BYTES: a byte range of a plain file (read through a memory map), or the decompressed
bytes of a gzip file (every member, piece by piece). Each chunk knows its first line number,
so workers decode chunks independently. A file that breaks off (unreadable, truncated, bytes
after its gzip data) ends where it broke, as a DataError or a `Rejection`.
"""

from __future__ import annotations

import gzip
import mmap
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from aco.errors import DataError
from aco_lab.traces.chunks import ChunkTask
from aco_lab.traces.validate import Rejection

CHUNK_BYTES = 16 * 1024 * 1024  # JSONL per chunk: bounds the Python objects alive at once
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib reads the gzip header and checks its trailer
GZIP_PIECE_BYTES = 1024 * 1024  # compressed bytes read, and decompressed bytes made, at once
_NEWLINE = ord("\n")
# What reading a file can raise: OSError (unreadable; BadGzipFile for bytes after the last
# gzip member or a bad CRC), EOFError (a truncated gzip), zlib.error (corrupt deflate data).
FILE_ERRORS = (OSError, EOFError, zlib.error)
SKIP_HINT = "or skip them with on_error='skip' / --on-error skip"


def plan_chunks(
    files: Sequence[Path],
    on_block: Callable[[Path, memoryview], None] | None = None,
    broken: list[Rejection] | None = None,
) -> Iterator[ChunkTask]:
    """Chunks of about CHUNK_BYTES of whole lines: byte ranges of plain files, bytes of gzip.

    Counting each chunk's lines here gives every worker its first line number up front.
    on_block, if given, sees each plain file's bytes once, block by block in order (to hash
    them without reading the file again); the view is valid only during the call.
    A file that cannot be read (unreadable, a truncated gzip, bytes after the gzip stream)
    ends where it broke: DataError naming it and the cause, or, with `broken` given, a
    Rejection at its first line not read is appended there and the next file goes on.
    """
    for path in files:
        next_line = 1
        try:
            for task, after in _file_chunks(path, on_block):
                next_line = after
                yield task
        except FILE_ERRORS as exc:
            problem = file_problem(path, next_line, exc)
            if broken is None:
                raise DataError(
                    f"{problem.error} (fix or remove the file, {SKIP_HINT} to load the other files)"
                ) from None
            broken.append(problem)


def file_problem(path: Path, line: int, exc: BaseException) -> Rejection:
    """A file that broke off at `line` (1: nothing read), as a Rejection naming the cause."""
    if isinstance(exc, EOFError):
        cause = "the gzip data ends early: the file is truncated (copy it again)"
    elif isinstance(exc, gzip.BadGzipFile):
        cause = (
            f"{exc}: a .gz trace file holds gzip data only (remove the bytes after it, "
            "or copy the file again)"
        )
    elif isinstance(exc, zlib.error):
        cause = f"corrupt gzip data ({exc}); copy the file again"
    elif isinstance(exc, OSError):
        cause = f"cannot read the file: {exc.strerror or exc}"
    else:
        cause = f"cannot read the file: {exc}"
    return Rejection(str(path), line, f"{path}:{line}: {cause}", "")


def _file_chunks(
    path: Path, on_block: Callable[[Path, memoryview], None] | None
) -> Iterator[tuple[ChunkTask, int]]:
    """A file's chunks, each with the line number after it."""
    if not is_gzip(path):
        yield from _plan_plain_file(path, on_block)
        return
    first_line, start = 1, 0
    for data, end in _read_gzip_blocks(path):
        next_line = first_line + _count_lines(data)
        yield ChunkTask(str(path), first_line, start, end, data=data), next_line
        first_line, start = next_line, end


def is_gzip(path: Path) -> bool:
    """Whether a file is gzip-compressed (by its first bytes, not its name)."""
    with path.open("rb") as stream:
        return stream.read(2) == _GZIP_MAGIC


def _plan_plain_file(
    path: Path, on_block: Callable[[Path, memoryview], None] | None
) -> Iterator[tuple[ChunkTask, int]]:
    """Byte ranges of whole lines of a plain file, read through a memory map (no copies)."""
    size = path.stat().st_size
    if not size:
        return
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        start, first_line = 0, 1
        while start < size:
            end = mm.find(b"\n", min(start + CHUNK_BYTES, size) - 1) + 1 or size
            with memoryview(mm)[start:end] as block:
                lines = _count_lines(block)
                if on_block is not None:
                    on_block(path, block)
            _unmap_pages(mm, start, end)
            yield ChunkTask(str(path), first_line, start, end), first_line + lines
            start, first_line = end, first_line + lines


def _unmap_pages(mm: mmap.mmap, start: int, end: int) -> None:
    """Let the pages of a read range go (the OS page cache keeps the file; memory stays flat)."""
    if hasattr(mmap, "MADV_DONTNEED"):
        page = start - start % mmap.PAGESIZE
        mm.madvise(mmap.MADV_DONTNEED, page, end - page)


def _count_lines(block: bytes | memoryview) -> int:
    """Lines in a block of whole lines (the last may lack its line end)."""
    ends = int(np.count_nonzero(np.frombuffer(block, np.uint8) == _NEWLINE))
    return ends + (len(block) > 0 and block[-1] != _NEWLINE)


def _read_gzip_blocks(path: Path) -> Iterator[tuple[bytes, int]]:
    """A gzip file's decompressed bytes in blocks of whole lines, each with the compressed
    bytes read so far (for progress; ahead of the block by up to GZIP_PIECE_BYTES).

    When the file breaks off (truncated, or not gzip from some point on), every whole line
    before the break is yielded first, then the error is raised.
    """
    block, read = bytearray(), 0
    try:
        for piece, read in _gzip_bytes(path):
            block += piece
            if len(block) >= CHUNK_BYTES and (cut := block.rfind(b"\n") + 1):
                yield bytes(block[:cut]), read
                del block[:cut]
    except FILE_ERRORS:
        if cut := block.rfind(b"\n") + 1:
            yield bytes(block[:cut]), read
        raise
    if block:
        yield bytes(block), read


def _gzip_bytes(path: Path) -> Iterator[tuple[bytes, int]]:
    """The decompressed bytes of every gzip member of a file, in pieces of GZIP_PIECE_BYTES,
    each with the compressed bytes read so far.

    Zero bytes after the last member are ignored, as gzip(1) does. Raises EOFError for a
    truncated file, BadGzipFile for bytes after a member that are not gzip, zlib.error for
    corrupt data (a bad CRC included).
    """
    with path.open("rb") as stream:
        inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
        data = b""
        while data or (data := stream.read(GZIP_PIECE_BYTES)):
            read = stream.tell()
            if inflater.eof:  # a member ended: another member, zero padding, or junk
                if not data.strip(b"\0"):
                    data = b""
                    continue
                inflater = zlib.decompressobj(wbits=_GZIP_WBITS)
                try:
                    yield inflater.decompress(data, GZIP_PIECE_BYTES), read
                except zlib.error:
                    raise gzip.BadGzipFile("bytes after the gzip data are not gzip") from None
                data = inflater.unconsumed_tail
            while data and not inflater.eof:
                yield inflater.decompress(data, GZIP_PIECE_BYTES), read
                data = inflater.unconsumed_tail
            if inflater.eof:
                data = inflater.unused_data
        if not inflater.eof:
            raise EOFError("the gzip data ends before its end marker")
