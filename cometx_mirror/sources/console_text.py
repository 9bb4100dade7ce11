"""A run's console output, kept as the one text it is stored as, in bounded memory.

A training script that prints a line a step prints as many lines as it logs points, so no reader
holds the lines: their values are joined every JOIN_AT, encoded and hashed as they come, and past
IN_MEMORY bytes written on into a zstd-compressed temporary file. Memory holds JOIN_AT values and
IN_MEMORY bytes at most, whatever the run printed. The object id is the hash of the whole text, as
if it had been built in one string (UTF-8 encodes piece by piece the same way).

A text can continue one stored before (a grown log folded on from its saved state): the stored
bytes are read back only if more comes, and an unchanged text is never read at all.
"""
from __future__ import annotations

import tempfile
from typing import Iterator

import xxhash
import zstandard

READ_AT_ONCE = 1 << 20


class ConsoleText:
    """One text built value by value (`add`), then sealed (`seal`) and stored (`store`)."""
    JOIN_AT = 4096
    IN_MEMORY = 1 << 20

    def __init__(self, stored: tuple | None = None):
        """`stored`: (object store, object id, size) of the text so far."""
        self._values: list[str] = []
        self._chunks: list[bytes] = []        # the encoded text while it is small
        self._hasher = xxhash.xxh3_128()
        self._size = 0
        self._spool = self._sink = None      # the temporary file, and its compressing writer
        self._stored = stored
        self._sealed: str | None = None
        self.any_value = stored is not None     # a value was added, if only an empty one
        if stored is not None:
            self._size = stored[2]

    @property
    def size(self) -> int:
        """The text's length in bytes (after `seal`)."""
        if self._sealed is None:
            raise RuntimeError("a console text's size is known once sealed")
        return self._size

    def add(self, value) -> None:
        """One more value, as str() writes it; None adds nothing."""
        if value is not None:
            self._append(str(value))
        elif self._sealed is not None:
            raise RuntimeError("a console text is complete once sealed")

    def extend(self, values) -> None:
        """Many more values at once, each a str (the same text as `add` of each)."""
        if self._sealed is not None:
            raise RuntimeError("a console text is complete once sealed")
        before = len(self._values)
        self._values += values
        if len(self._values) > before:
            self.any_value = True
        if len(self._values) >= self.JOIN_AT:
            self._join()

    def _append(self, piece) -> None:
        if self._sealed is not None:
            raise RuntimeError("a console text is complete once sealed")
        self.any_value = True
        self._values.append(piece)
        if len(self._values) >= self.JOIN_AT:
            self._join()

    def _joined(self) -> bytes:
        """The values waiting to be written, encoded (a lone surrogate, which has no UTF-8, as its
        escape `\\udXXX`: what a JSON log spelled it as)."""
        return "".join(self._values).encode("utf-8", "backslashreplace")

    def _join(self) -> None:
        data = self._joined()
        self._values = []
        if data:
            if self._stored is not None:     # more comes after a stored text: its bytes come first
                objects, object_id, _ = self._stored
                self._stored, self._size = None, 0
                for chunk in objects.read_chunks(object_id):
                    self._write(chunk)
            self._write(data)

    def _write(self, data: bytes) -> None:
        self._hasher.update(data)
        self._size += len(data)
        if self._sink is not None:
            self._sink.write(data)
            return
        self._chunks.append(data)
        if self._size > self.IN_MEMORY:
            self._spool = tempfile.TemporaryFile(prefix="console-")
            self._sink = zstandard.ZstdCompressor(level=1).stream_writer(self._spool, closefd=False)
            for chunk in self._chunks:
                self._sink.write(chunk)
            self._chunks = []

    def seal(self) -> str:
        """The text's object id; the text is complete from here on."""
        if self._sealed is None:
            self._join()
            if self._stored is not None:
                self._sealed = self._stored[1]
            else:
                if self._sink is not None:
                    self._sink.flush(zstandard.FLUSH_FRAME)
                self._sealed = self._hasher.hexdigest()
        return self._sealed

    def digest(self) -> str:
        """The object id of the text so far, without sealing it."""
        if self._sealed is not None:
            return self._sealed
        pending = self._joined()
        if self._stored is not None:
            if not pending:
                return self._stored[1]
            hasher = xxhash.xxh3_128()
            for chunk in self._stored[0].read_chunks(self._stored[1]):
                hasher.update(chunk)
        else:
            hasher = self._hasher.copy()
        hasher.update(pending)
        return hasher.hexdigest()

    def __eq__(self, other) -> bool:        # the same text (a fold compared with another)
        if not isinstance(other, ConsoleText):
            return NotImplemented
        return (self.any_value, self.digest()) == (other.any_value, other.digest())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._sealed or 'open'})"

    def chunks(self) -> Iterator[bytes]:
        """The encoded text, a piece at a time (after `seal`)."""
        if self._sealed is None:
            raise RuntimeError("a console text is read once sealed")
        if self._stored is not None:
            yield from self._stored[0].read_chunks(self._stored[1])
        elif self._spool is None:
            yield from self._chunks
        else:
            self._spool.seek(0)
            reader = zstandard.ZstdDecompressor().stream_reader(self._spool, closefd=False)
            while piece := reader.read(READ_AT_ONCE):
                yield piece

    def store(self, objects) -> str:
        """Seal the text and put it in `objects` (a stored text that did not grow is there already;
        any other is written, which also heals a damaged copy)."""
        object_id = self.seal()
        if self._stored is None:
            objects.put_stream(self.chunks())
            self._stored = (objects, object_id, self._size)     # read back from there from now on
            self._chunks, spool, self._spool, self._sink = [], self._spool, None, None
            if spool is not None:
                spool.close()
        return object_id
