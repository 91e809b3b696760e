"""Compressed request bodies decoded within a bound.

mitmproxy's own decoding inflates a body whole: a 200 KB gzip bomb becomes
200 MB in memory (and seconds of the event loop, docs/benchmarks.md) before
anything can look at its size. Here each coding stops as soon as its output passes the limit, the same
limit mitmdump puts on the bodies it receives (`body_size_limit`, 32 MB: what
Anthropic's API takes).
"""

import sys
import zlib
from collections.abc import Callable

import brotli

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # pragma: no cover - the backport mitmproxy itself uses before 3.14
    from backports import zstd

DEFAULT_LIMIT = 32 * 1024 * 1024


class TooLarge(ValueError):
    """The decoded body would be larger than the limit."""


def decoded(content: bytes, encoding: str, limit: int = DEFAULT_LIMIT) -> bytes:
    """`content` with its Content-Encoding undone (a list is undone last coding first).

    Raises TooLarge past `limit` bytes of output, ValueError for an unknown coding or
    data that is not what it says it is."""
    for coding in reversed([name.strip().lower() for name in encoding.split(",") if name.strip()]):
        content = _undone(content, coding, limit)
    return content


def _undone(content: bytes, coding: str, limit: int) -> bytes:
    if coding == "identity" or not content:
        return content
    if coding in ("gzip", "x-gzip"):
        return _inflated(content, 16 + zlib.MAX_WBITS, limit)
    if coding == "deflate":
        # zlib-wrapped as the RFC says, or raw as some clients send it: the header tells.
        wrapped = len(content) >= 2 and content[0] & 0x0F == 8 and (content[0] << 8 | content[1]) % 31 == 0
        return _inflated(content, zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS, limit)
    if coding == "br":
        brotli_stream = brotli.Decompressor()
        return _bounded(
            "brotli",
            brotli.error,
            lambda: brotli_stream.process(content, output_buffer_limit=limit + 1),
            brotli_stream.is_finished,
            limit,
        )
    if coding == "zstd":
        zstd_stream = zstd.ZstdDecompressor()
        return _bounded(
            "zstd",
            zstd.ZstdError,
            lambda: zstd_stream.decompress(content, max_length=limit + 1),
            lambda: zstd_stream.eof,
            limit,
        )
    raise ValueError(f"unknown Content-Encoding {coding!r}")


def _bounded(
    name: str, error: type[Exception], run: Callable[[], bytes], finished: Callable[[], bool], limit: int
) -> bytes:
    """One decompressor's output, at most limit + 1 bytes of it, checked."""
    try:
        out = run()
    except error as e:
        raise ValueError(f"not {name} data: {e}") from None
    _check(len(out), limit, finished())
    return out


def _inflated(content: bytes, wbits: int, limit: int) -> bytes:
    """zlib's three framings; a gzip body may hold several members, one after the other."""
    parts: list[bytes] = []
    size = 0
    while content:
        decompressor = zlib.decompressobj(wbits)
        try:
            part = decompressor.decompress(content, limit + 1 - size)
        except zlib.error as e:
            raise ValueError(f"not {'gzip' if wbits > 15 else 'deflate'} data: {e}") from None
        size += len(part)
        _check(size, limit, decompressor.eof)
        parts.append(part)
        content = decompressor.unused_data
    return b"".join(parts)


def _check(size: int, limit: int, finished: bool) -> None:
    if size > limit:
        raise TooLarge(f"the body decodes to more than {limit} bytes")
    if not finished:
        raise ValueError("the compressed data ends before its end")
