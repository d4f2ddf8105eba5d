"""Streaming multipart upload into a job folder, with the size limit enforced while the bytes arrive.

The file part goes straight to its destination (never to the system's temporary folder, never named after the
client's file name); small form fields are kept in memory. A body larger than the limit stops being read at the
first chunk past it.
"""
from __future__ import annotations

from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = ["TooLarge", "BadUpload", "receive_upload"]

_MAX_FIELD = 4096  # bytes of a non-file field


class TooLarge(Exception):
    """The request body is over the limit."""


class BadUpload(Exception):
    """The body is not a usable multipart form; the message says why."""


class _Form:
    def __init__(self, boundary: bytes, dest: Path, file_field: str):
        self.dest = dest
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.has_file = False
        self._out = None
        self._header = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._data = bytearray()
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._part_begin, "on_part_data": self._part_data, "on_part_end": self._part_end,
            "on_header_field": self._header_field, "on_header_value": self._header_value,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_finished})

    def _part_begin(self):
        self._headers, self._header, self._value, self._name = {}, b"", b"", None
        self._data = bytearray()

    def _header_field(self, data, start, end):
        self._header += data[start:end]

    def _header_value(self, data, start, end):
        self._value += data[start:end]

    def _header_end(self):
        self._headers[self._header.lower()] = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self):
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == self.file_field and b"filename" in options:
            if self.has_file:
                raise BadUpload(f"one file per request (field '{self.file_field}')")
            self.has_file = True
            self.filename = options[b"filename"].decode("utf-8", "replace")
            self._out = open(self.dest, "wb")

    def _part_data(self, data, start, end):
        if self._out is not None:
            self._out.write(data[start:end])
        else:
            self._data += data[start:end]
            if len(self._data) > _MAX_FIELD:
                raise BadUpload(f"form field '{self._name}' is too long")

    def _part_end(self):
        if self._out is not None:
            self._out.close()
            self._out = None
        elif self._name:
            self.fields[self._name] = self._data.decode("utf-8", "replace")

    def close(self):
        if self._out is not None:
            self._out.close()
            self._out = None


async def receive_upload(request, dest: Path, max_bytes: int, file_field: str = "file") -> tuple[str, dict[str, str]]:
    """Stream ``request``'s multipart body: the ``file_field`` file into ``dest``, the other fields returned.

    Returns ``(client file name, fields)``. Raises :class:`TooLarge` as soon as the body passes ``max_bytes`` (or
    its ``Content-Length`` says it will), :class:`BadUpload` for a body that is not a form with that file, and the
    :class:`OSError` of a write that failed (a full disk).
    """
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        raise TooLarge
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or not options.get(b"boundary"):
        raise BadUpload("send the video as multipart/form-data with a 'file' field")
    form = _Form(options[b"boundary"], dest, file_field)
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise TooLarge
            form.parser.write(chunk)
        form.parser.finalize()
    except (TooLarge, BadUpload, OSError):  # OSError: the disk (full, read-only), not the body
        raise
    except Exception as e:  # the multipart parser's own errors
        raise BadUpload(f"malformed multipart body ({e})") from None
    finally:
        form.close()
    if not form.has_file:
        raise BadUpload(f"no file in the '{file_field}' field")
    return form.filename or "", form.fields
