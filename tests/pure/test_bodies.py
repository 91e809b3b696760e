"""Compressed bodies decoded within a bound."""

import gzip
import zlib

import brotli
import pytest
from mitmproxy.net.encoding import encode

from addons.wire.bodies import TooLarge, decoded

TEXT = b'{"model": "m", "messages": []}' * 100


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd", "identity"])
def test_each_coding_decodes(coding):
    assert decoded(encode(TEXT, coding), coding) == TEXT


def test_raw_deflate_several_gzip_members_and_a_list_of_codings():
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decoded(raw.compress(TEXT) + raw.flush(), "deflate") == TEXT
    assert decoded(gzip.compress(TEXT) + gzip.compress(TEXT), "gzip") == TEXT * 2
    assert decoded(brotli.compress(gzip.compress(TEXT)), "gzip, br") == TEXT


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_a_bomb_stops_at_the_limit(coding):
    bomb = encode(b"\0" * (5 * 1024 * 1024), coding)  # a few KB that would be 5 MB
    assert len(bomb) < 64 * 1024
    with pytest.raises(TooLarge, match="more than 1048576 bytes"):
        decoded(bomb, coding, limit=1024 * 1024)
    assert len(decoded(bomb, coding, limit=5 * 1024 * 1024)) == 5 * 1024 * 1024


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_what_is_not_what_it_says_is_refused(coding):
    with pytest.raises(ValueError) as caught:
        decoded(b"plain text, not compressed", coding)
    assert not isinstance(caught.value, TooLarge)
    with pytest.raises(ValueError, match="ends before its end"):
        decoded(encode(TEXT, coding)[:-8], coding)


def test_an_unknown_coding_is_named():
    with pytest.raises(ValueError, match="unknown Content-Encoding 'compress'"):
        decoded(b"x", "compress")
