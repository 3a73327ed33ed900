"""Range headers of result files (RFC 9110 §14): one byte range, or the whole file, or 416."""

from __future__ import annotations

import pytest

from hpgc.api.results import RangeNotSatisfiable, parse_range


@pytest.mark.parametrize("header, size, expected", [
    (None, 16, None),
    ("bytes=0-5", 16, (0, 6)),
    ("bytes=0-0", 16, (0, 1)),
    ("bytes=15-15", 16, (15, 1)),
    ("bytes=10-", 16, (10, 6)),
    ("bytes=10-999999", 16, (10, 6)),           # last position past the end: up to the end
    ("bytes=0-" + "9" * 5000, 16, (0, 16)),     # more digits than int() converts: still the whole file
    ("bytes=-4", 16, (12, 4)),
    ("bytes=-16", 16, (0, 16)),
    ("bytes=-999999", 16, (0, 16)),             # suffix longer than the file: the whole file
    ("Bytes=0-5", 16, (0, 6)),                  # range units are case-insensitive
    ("bytes= 0-5 ", 16, (0, 6)),
    ("bytes=0005-0006", 16, (5, 2)),
    ("items=0-5", 16, None),                    # a unit we do not know: ignored (RFC 9110 §14.2 MUST)
    ("bytes=-5", 0, None),                      # satisfiable on an empty file, but not expressible: 200
    ("bytes=0-15", 16, (0, 16)), ("bytes=15-", 16, (15, 1)), ("bytes=-1", 1, (0, 1)), ("bytes=-15", 16, (1, 15)),
    ("bytes=-" + "9" * 40, 16, (0, 16)),
    ("bytes=" + "0" * 40 + "1-", 16, (1, 15)),  # leading zeros do not make a position huge
    ("bytes=0-1" + "0" * 29, 16, (0, 16)), ("bytes=0-" + "0" * 35 + "3", 16, (0, 4)),
    (" bytes=0-5", 16, (0, 6)), ("\tbytes \t=\t1-2\t", 16, (1, 2)), ("BYTES=2-2", 16, (2, 1)),
    ("items=abc", 16, None), ("items=0-1,2-3", 16, None), ("x!=0-5", 16, None),
    ("Xbytes=0-5", 16, None), ("bytesX=0-5", 16, None),  # other units, however close
])
def test_ranges_served(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header, size", [
    ("bytes=--5", 16), ("bytes=5-3", 16), ("bytes=abc", 16), ("bytes=-0", 16), ("bytes=", 16),
    ("bytes=16-", 16), ("bytes=16-20", 16), ("bytes=" + "9" * 5000 + "-", 16),
    ("bytes=0-1,4-5", 16), ("bytes=0-1, 4-5", 16), ("bytes=0-5,", 16),
    ("bytes=+1-2", 16), ("bytes=1_0-20", 16), ("bytes=١-٢", 16), ("bytes=0x1-2", 16), ("bytes=1 -2", 16),
    ("bytes", 16), ("abc", 16), ("=0-5", 16), ("by tes=0-5", 16),
    ("bytes=0-", 0), ("bytes=0-0", 0), ("bytes=-0", 0),
    ("bytes=16-16", 16), ("bytes=-00", 16), ("bytes=1" + "0" * 29 + "-", 16), ("bytes=0-1 ,2", 16),
    ("b@d=0-5", 16), (" =0-5", 16), ("bytes=0-5=", 16), ("bytes=5", 16), ("bytes=-5-", 16),
    # only space and tab are optional whitespace (RFC 9110 §5.6.3): other characters stay and spoil the range
    ("\x0cbytes=0-5", 16), ("bytes\n=0-5", 16), ("bytes=\x0c0-5", 16), ("bytes=0-5\r", 16), ("bytes=0-5X", 16),
    ("bytes=X0-5", 16), ("bytes=-5\x0b", 16),
])
def test_malformed_unsatisfiable_or_several_ranges_are_416(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as err:
        parse_range(header, size)
    assert err.value.args == (header,), "the refusal names the header it refuses"
