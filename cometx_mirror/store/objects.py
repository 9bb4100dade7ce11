"""Content-addressed, immutable objects (like git's loose objects, restic's blobs).

An object's id is the xxh3-128 hex digest of its *uncompressed* bytes, so the
same content always lands on the same name whatever codec stored it.  A file on
disk is a small header followed by the body:

    b"CXM1" | codec (1 byte: 0 raw, 1 zstd) | raw length (u64 LE) | body

zstd bodies carry the frame checksum; reads also re-hash, so damage is caught
twice.  Writes stream into tmp/, fsync, then rename into objects/ab/<id>: a
reader sees a whole object or none, and a published object is never rewritten.

Every read (`open`, `read_chunks`, `get_bytes`) verifies BEFORE it hands out a
byte, so damage is never spread (into a push, an export, `cat`, the index).  A
read that finds damage moves the object into quarantine/ (never deleting it):
it then counts as missing, and the next fetch of its entity downloads it again.

Where the bytes live is the backend's business (store/backend.py): a local
folder or a bucket.  Objects are staged in the local tmp/ either way.
"""
from __future__ import annotations

import collections
import io
import os
import re
import shutil
import struct
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import xxhash
import zstandard

from ..errors import ExpectedError
from .backend import Backend, Entry, NotFound
from .local import LocalBackend

MAGIC = b"CXM1"
HEADER = struct.Struct("<4sBQ")
CODEC_RAW, CODEC_ZSTD = 0, 1
CHUNK = 1 << 20
ZSTD_LEVEL = 3
# Bodies that shrink by less than this are stored raw: media and checkpoints
# gain nothing from zstd and cost CPU on every read.
MIN_GAIN = 1.05
# Objects from this size on are compressed on a thread of zstd's own (ObjectStore.writer)
PARALLEL_FROM = 8 << 20
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# Objects up to this size are verified into memory and handed out from there; larger
# ones are rehashed first, then streamed again from disk.
VERIFY_IN_MEMORY = 8 << 20
# Remote stores: uploaded objects up to RECENT_OBJECT bytes are kept in memory, RECENT_BYTES in all.
RECENT_OBJECT, RECENT_BYTES = 1 << 20, 64 << 20
HEAL_HINT = "`cometx-mirror fetch` of its entity downloads it again"


class ObjectError(ExpectedError):
    """An object is missing, damaged or malformed."""


def hash_bytes(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def _compressor(parallel: bool = False) -> zstandard.ZstdCompressor:
    # parallel: zstd compresses on a thread of its own while the caller goes on (reading, folding): for
    # a large object only, as starting that thread costs more than a small object's compression
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=1 if parallel else 0)


def _pays_to_compress(sample: bytes) -> bool:
    if len(sample) < 64:
        return False
    return len(sample) / max(1, len(_compressor().compress(sample))) >= MIN_GAIN


class ObjectStore:
    def __init__(self, root: str | os.PathLike, backend: Backend | None = None):
        self.root = Path(root)                  # the local working folder: tmp/ lives here
        self.backend = backend or LocalBackend(root)
        self.tmp = self.root / "tmp"
        # What this process added to the store (not what it found already there).
        self._written_lock = threading.Lock()
        self.written_objects = 0
        self.written_bytes = 0
        # Ids this process has seen whole in remote storage, where a check is a round trip:
        # then it is free.  Only gc deletes objects, and never while a writer holds its lock.
        # (On a local disk a stat is cheap and tests damage files under a live store.)
        self._present: set[str] = set()
        self._cache_presence = self.backend.remote
        # Ids a stat found absent: their upload skips the header read that would say so
        # again (a concurrent writer of the same id writes the same bytes: no harm).
        self._absent: set[str] = set()
        # Small objects this process uploaded, as stored (header + body), so the index
        # ingest that reads them back right after a fetch wrote them is not a download
        # each.  Reads still verify them.  Bounded by RECENT_BYTES.
        self._recent: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._recent_bytes = 0

    # -- keys --------------------------------------------------------------
    @staticmethod
    def key(object_id: str) -> str:
        if not _ID_RE.match(object_id or ""):
            raise ObjectError(f"malformed object id {object_id!r}")
        return f"objects/{object_id[:2]}/{object_id[2:]}"

    def path(self, object_id: str) -> Path:
        """The object's file, on a local backend (tests and tools that damage it)."""
        return self.backend.local_path(self.key(object_id))

    def _seen(self, object_id: str) -> None:
        if self._cache_presence:
            self._present.add(object_id)

    def exists(self, object_id: str) -> bool:
        if object_id in self._present:
            return True
        found = self.backend.stat(self.key(object_id)) is not None
        if not found and self._cache_presence:
            self._absent.add(object_id)
        return found

    def ids(self) -> Iterator[str]:
        for entry in self.entries():
            yield entry.key

    def entries(self) -> Iterator[Entry]:
        """(id, stored size, mtime) of every object, in id order."""
        for e in self.backend.list("objects/"):
            parts = e.key.split("/")
            if len(parts) == 3 and len(parts[1]) == 2 and _ID_RE.match(parts[1] + parts[2]):
                yield Entry(parts[1] + parts[2], e.size, e.mtime)

    def remove(self, object_id: str) -> None:
        """Delete one object (gc's sweep only)."""
        self._present.discard(object_id)
        self._forget(object_id)
        self.backend.delete(self.key(object_id))

    def stale_tmp(self, cutoff: float) -> list[Path]:
        """Staging files older than `cutoff` (a writer that died mid-object left them)."""
        if not self.tmp.is_dir():
            return []
        return [p for p in sorted(self.tmp.iterdir()) if p.is_file() and p.stat().st_mtime <= cutoff]

    def tmp_files(self) -> list[Path]:
        return [p for p in sorted(self.tmp.iterdir()) if p.is_file()] if self.tmp.is_dir() else []

    # -- writing -----------------------------------------------------------
    def put_bytes(self, data: bytes) -> str:
        return self.put_stream(io.BytesIO(data), size_hint=len(data))[0]

    def put_file(self, path: str | os.PathLike) -> tuple[str, int]:
        with open(path, "rb") as f:
            return self.put_stream(f, size_hint=os.fstat(f.fileno()).st_size)

    def put_file_once(self, path: str | os.PathLike) -> tuple[str, int]:
        """put_file, skipping the write when the object is already there.

        Hashing first costs one more read of a new file but makes re-reading an
        unchanged folder write nothing at all (the offline and folder readers)."""
        hasher, size = xxhash.xxh3_128(), 0
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                hasher.update(chunk)
                size += len(chunk)
        object_id = hasher.hexdigest()
        if self.exists(object_id):
            return object_id, size
        return self.put_file(path)

    def put_stream(self, stream: BinaryIO | Iterable[bytes],
                   expected_size: int | None = None, size_hint: int | None = None) -> tuple[str, int]:
        """Store everything read from `stream`; return (object id, raw size).

        `stream` is a binary file or an iterable of byte chunks (a download).
        With `expected_size`, a short or long body raises ObjectError and
        nothing is published. `size_hint`: about how many bytes will come (see `writer`).
        """
        with self.writer(size_hint or expected_size) as out:
            for chunk in _chunks(stream):
                out.write(chunk)
            return out.finish(expected_size)

    def writer(self, size_hint: int | None = None) -> "ObjectWriter":
        """An object written as its bytes come (`write`), published by `finish`: for a reader that
        stores what it reads in the same pass. Leaving the block unfinished publishes nothing.
        `size_hint`: about how many bytes will come; from PARALLEL_FROM on they are compressed on a
        second thread (the stored body differs, its id and bytes read back do not)."""
        return ObjectWriter(self, size_hint)

    def _publish(self, tmp_name: str, object_id: str, size: int) -> None:
        if object_id in self._present:
            return
        key = self.key(object_id)
        if object_id not in self._absent and self._looks_whole(object_id, size):
            self.backend.touch(key)  # freshen, so a concurrent gc's grace period spares it
            self._seen(object_id)
            return
        # Absent, or the stored copy is damaged (truncated, zero-length, bad header):
        # the bytes we just hashed are the right ones, so they replace it.  This is
        # how a later fetch heals a damaged store.
        if self._cache_presence:
            self._remember(object_id, tmp_name)
        self.backend.put_file(key, tmp_name)
        self._absent.discard(object_id)
        self._seen(object_id)
        with self._written_lock:
            self.written_objects += 1
            self.written_bytes += size

    # -- reading -----------------------------------------------------------
    def _header(self, head: bytes, object_id: str) -> tuple[int, int]:
        if len(head) != HEADER.size:
            raise ObjectError(f"object {object_id} is truncated")
        magic, codec, size = HEADER.unpack(head)
        if magic != MAGIC or codec not in (CODEC_RAW, CODEC_ZSTD):
            raise ObjectError(f"object {object_id} has a bad header")
        return codec, size

    def _head(self, object_id: str) -> tuple[int, int, int]:
        """(codec, raw size, stored size) from one small read."""
        try:
            head, stored = self.backend.read_head(self.key(object_id), HEADER.size)
        except NotFound:
            raise self._missing(object_id) from None
        codec, size = self._header(head, object_id)
        return codec, size, stored

    def _head_or_none(self, object_id: str) -> tuple[int, int, int] | None:
        """`_head` for the checks that only ask "is it whole?": a missing object is
        None, without the quarantine look-up an error message would cost (a request
        per new object on object storage)."""
        try:
            head, stored = self.backend.read_head(self.key(object_id), HEADER.size)
        except NotFound:
            return None
        return (*self._header(head, object_id), stored)

    def raw_size(self, object_id: str) -> int:
        return self._head(object_id)[1]

    def _open_unverified(self, object_id: str) -> tuple[BinaryIO, int]:
        """A reader of the raw bytes and the size the header records."""
        recent = self._recent.get(object_id)
        try:
            f = io.BytesIO(recent) if recent is not None else self.backend.reader(self.key(object_id))
        except NotFound:
            raise self._missing(object_id) from None
        try:
            codec, size = self._header(f.read(HEADER.size), object_id)
        except ObjectError:
            f.close()
            raise
        if codec == CODEC_RAW:
            return f, size
        return zstandard.ZstdDecompressor().stream_reader(f, closefd=True), size

    def _remember(self, object_id: str, tmp_name: str) -> None:
        if os.path.getsize(tmp_name) > RECENT_OBJECT:
            return
        with open(tmp_name, "rb") as f:
            data = f.read()
        with self._written_lock:
            if object_id in self._recent:
                return
            self._recent[object_id] = data
            self._recent_bytes += len(data)
            while self._recent_bytes > RECENT_BYTES:
                _, dropped = self._recent.popitem(last=False)
                self._recent_bytes -= len(dropped)

    def _forget(self, object_id: str) -> None:
        with self._written_lock:
            data = self._recent.pop(object_id, None)
            if data is not None:
                self._recent_bytes -= len(data)

    def _missing(self, object_id: str) -> ObjectError:
        hint = " (a damaged copy is in quarantine/)" if self.in_quarantine(object_id) else ""
        return ObjectError(f"object {object_id} is missing{hint}; {HEAL_HINT}")

    def _scan(self, object_id: str, keep: bool, sink: BinaryIO | None = None) -> bytes | None:
        """Read, decompress and rehash the whole object, holding the bytes when `keep`
        (or writing them into `sink`), in one pass over the stored bytes.

        Raises ObjectError when the object is damaged; OSError (a read that failed,
        perhaps transiently) passes through untouched."""
        hasher, size, held = xxhash.xxh3_128(), 0, []
        r, expected = self._open_unverified(object_id)
        try:
            with r:
                while chunk := r.read(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                    if keep:
                        held.append(chunk)
                        if size > VERIFY_IN_MEMORY and sink is not None:
                            sink.write(b"".join(held))
                            held, keep = [], False
                    elif sink is not None:
                        sink.write(chunk)
        except zstandard.ZstdError as e:
            raise ObjectError(f"object {object_id} is corrupt: {e}") from None
        if size != expected or hasher.hexdigest() != object_id:
            raise ObjectError(f"object {object_id} is corrupt: content does not match its id")
        self._seen(object_id)
        return b"".join(held) if keep else None

    def _verified(self, object_id: str, keep: bool, quarantine: bool = True,
                  sink: BinaryIO | None = None) -> bytes | None:
        """`_scan`, and a damaged object is moved into quarantine/ (so it counts as
        missing and the next fetch downloads it again) before the error is raised."""
        try:
            return self._scan(object_id, keep, sink)
        except ObjectError as e:
            if HEAL_HINT in str(e):      # missing: nothing to move
                raise
            if quarantine:
                self.quarantine(object_id)
            raise ObjectError(f"{' '.join(str(e).split())}; {HEAL_HINT}") from None

    def open(self, object_id: str) -> BinaryIO:
        """A reader of the object's raw bytes, verified BEFORE the first byte is handed out.

        A small object is read and checked into memory.  A large one on a local disk
        is read and rehashed once, then streamed again (bounded memory, twice the
        reading), the second pass checked too, in case the file changed in between;
        on object storage it is downloaded once into a local temp file while it is
        checked, and handed out from there."""
        if not self.backend.remote:
            if self.raw_size(object_id) <= VERIFY_IN_MEMORY:
                return io.BytesIO(self._verified(object_id, keep=True))
            self._verified(object_id, keep=False)
            return _CheckingReader(self._open_unverified(object_id)[0], object_id)
        self.tmp.mkdir(parents=True, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=self.tmp, prefix="get-")
        try:
            held = self._verified(object_id, keep=True, sink=spool)
        except BaseException:
            spool.close()
            raise
        if held is not None:
            spool.close()
            return io.BytesIO(held)
        spool.seek(0)
        return spool

    def open_seekable(self, object_id: str) -> BinaryIO:
        """`open`, for a reader that must seek (a zip's directory is at its end): a large
        object on a local disk, streamed by `open`, is copied once into a temp file."""
        reader = self.open(object_id)
        if reader.seekable():
            return reader
        self.tmp.mkdir(parents=True, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=self.tmp, prefix="seek-")
        try:
            with reader:
                shutil.copyfileobj(reader, spool, CHUNK)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

    def read_chunks(self, object_id: str) -> Iterator[bytes]:
        """The object's raw bytes in chunks, verified first: a damaged object raises
        ObjectError here, at the call, before any chunk exists."""
        reader = self.open(object_id)

        def chunks() -> Iterator[bytes]:
            with reader:
                while chunk := reader.read(CHUNK):
                    yield chunk
        return chunks()

    def get_bytes(self, object_id: str) -> bytes:
        return self._verified(object_id, keep=True)

    def check(self, object_id: str, quarantine: bool = True) -> None:
        """Re-read and re-hash one object; raise ObjectError when it is damaged
        (and, unless told not to, move it into quarantine/)."""
        self._verified(object_id, keep=False, quarantine=quarantine)

    # -- damage ------------------------------------------------------------
    def quarantine(self, object_id: str) -> str | None:
        """Move a damaged object out of objects/ into quarantine/, never deleting it.

        Then it counts as missing: verify says so, and the next fetch of its entity
        downloads it again.  Returns where it went, or None when it cannot be moved
        (a read-only mirror: the damage is still reported)."""
        self._present.discard(object_id)
        for n in range(1000):
            dest = "quarantine/" + object_id + (f".{n}" if n else "")
            if self.backend.stat(dest) is None:
                break
        try:
            moved = self.backend.move(self.key(object_id), dest)
        except OSError:
            return None
        return dest if moved else None

    def in_quarantine(self, object_id: str) -> bool:
        return self.backend.stat("quarantine/" + object_id) is not None

    def quarantined(self) -> list[Entry]:
        return sorted(self.backend.list("quarantine/"))

    def intact(self, object_id: str) -> bool:
        """Present and structurally whole (header, a raw body's length): one small
        read, cheap enough for every fetch.  A flipped byte needs a rehash
        (verify --read-data, or any read) to be seen."""
        return object_id in self._present or self.body_length_ok(object_id)

    def stored_size(self, object_id: str) -> int:
        entry = self.backend.stat(self.key(object_id))
        if entry is None:
            raise self._missing(object_id)
        return entry.size

    def body_length_ok(self, object_id: str) -> bool:
        """A cheap structural check: a raw body has exactly its recorded length,
        a zstd body is not empty.  Catches truncation without reading the data."""
        try:
            head = self._head_or_none(object_id)
        except (OSError, ObjectError):
            return False
        if head is None:
            return False
        codec, size, stored = head
        stored -= HEADER.size
        return stored == size if codec == CODEC_RAW else (stored > 0 or size == 0)

    def _looks_whole(self, object_id: str, size: int) -> bool:
        try:
            head = self._head_or_none(object_id)
        except ObjectError:
            return False
        if head is None:
            return False
        codec, raw, stored = head
        stored -= HEADER.size
        body_ok = stored == raw if codec == CODEC_RAW else (stored > 0 or raw == 0)
        return raw == size and body_ok


class ObjectWriter:
    """One object being written: bytes hashed and (when it pays) compressed into a temporary file as
    they come, published under their hash by `finish` (see ObjectStore.writer)."""

    def __init__(self, store: ObjectStore, size_hint: int | None = None):
        self._store, self._parallel = store, (size_hint or 0) >= PARALLEL_FROM
        self._out = self._sink = None
        self._tmp_name: str | None = None
        self._hasher, self.size, self._codec = xxhash.xxh3_128(), 0, CODEC_RAW
        self.result: tuple[str, int] | None = None

    def __enter__(self) -> "ObjectWriter":
        return self

    def _open(self, first: bytes) -> None:
        # the codec is chosen on the first bytes, as the header must name it
        self._codec = CODEC_ZSTD if _pays_to_compress(first[:65536]) else CODEC_RAW
        self._store.tmp.mkdir(parents=True, exist_ok=True)
        fd, self._tmp_name = tempfile.mkstemp(dir=self._store.tmp, prefix="obj-")
        self._out = os.fdopen(fd, "wb")
        self._out.write(HEADER.pack(MAGIC, self._codec, 0))
        self._sink = (_compressor(self._parallel).stream_writer(self._out, closefd=False)
                      if self._codec == CODEC_ZSTD else self._out)

    def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self._out is None:
            self._open(chunk)
        self._hasher.update(chunk)
        self.size += len(chunk)
        self._sink.write(chunk)

    def finish(self, expected_size: int | None = None) -> tuple[str, int]:
        """Publish the bytes written: (object id, raw size). With `expected_size`, another count
        raises ObjectError and nothing is published."""
        if self.result is not None:
            return self.result
        if self._out is None:
            self._open(b"")
        out = self._out
        if self._codec == CODEC_ZSTD:
            self._sink.flush(zstandard.FLUSH_FRAME)
            self._sink.close()
        out.seek(0)
        out.write(HEADER.pack(MAGIC, self._codec, self.size))
        out.flush()
        os.fsync(out.fileno())
        out.close()
        if expected_size is not None and self.size != expected_size:
            raise ObjectError(f"expected {expected_size} bytes, got {self.size}")
        object_id = self._hasher.hexdigest()
        self._store._publish(self._tmp_name, object_id, self.size)
        self.result = (object_id, self.size)
        return self.result

    def __exit__(self, *exc) -> None:
        if self._out is not None and not self._out.closed:
            self._out.close()
        if self._tmp_name is not None and os.path.exists(self._tmp_name):
            os.unlink(self._tmp_name)


class _CheckingReader(io.RawIOBase):
    """The second pass over a large object that was verified already: it rehashes
    as it is read and raises at the end should the bytes differ from the first pass."""

    def __init__(self, inner: BinaryIO, object_id: str):
        self._inner = inner
        self._id = object_id
        self._hasher = xxhash.xxh3_128()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._inner.read(n if n is not None and n >= 0 else -1)
        except zstandard.ZstdError as e:
            raise ObjectError(f"object {self._id} changed while it was read: {e}") from None
        self._hasher.update(data)
        if not data and self._hasher.hexdigest() != self._id:
            raise ObjectError(f"object {self._id} changed while it was read")
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def _chunks(stream) -> Iterator[bytes]:
    if hasattr(stream, "read"):
        while chunk := stream.read(CHUNK):
            yield chunk
    else:
        for chunk in stream:
            if chunk:
                yield chunk

