"""JSON and TOML read with a depth limit.

Python's `json` and `tomllib` parse nesting by recursion: a file nested a few thousand deep (a
report input, a profile, a cache file edited or damaged) raises `RecursionError`, which no
reader expects, so a run failed with exit 3, even after measuring. Here the nesting is counted
first, on the brackets outside strings and comments (a linear scan, no recursion), and a file
past `MAX_DEPTH` is a `ValueError` like any other malformed file: bad input (exit 2) for a
user's file, an entry set aside and made again for the cache's own (files.cache).
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib

MAX_DEPTH = 64  # the tool's own files nest 2-4 deep (a list of records, a profile's tables)

_JSON_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_TOML_SKIPPED = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*'
)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class TooDeep(ValueError):
    """Brackets nested past the limit."""


def depth(text: str, skipped: re.Pattern = _JSON_STRINGS) -> int:
    """The deepest nesting of brackets ([ ] { }) in `text` outside what `skipped` matches."""
    brackets = _NOT_BRACKETS.sub("", skipped.sub("", text))
    return max(itertools.accumulate(_STEP[c] for c in brackets), default=0)


def _check(text: str, skipped: re.Pattern, max_depth: int) -> None:
    found = depth(text, skipped)
    if found > max_depth:
        raise TooDeep(f"nested {found} deep, past the limit of {max_depth}")


def load_json(text: str, max_depth: int = MAX_DEPTH) -> object:
    """`json.loads(text)`, or a `ValueError` (never a `RecursionError`) for text that is not
    JSON or is nested past `max_depth`."""
    _check(text, _JSON_STRINGS, max_depth)
    return json.loads(text)


def load_toml(text: str, max_depth: int = MAX_DEPTH) -> dict:
    """`tomllib.loads(text)`, or a `ValueError` (`tomllib.TOMLDecodeError`, `TooDeep`) for text
    that is not TOML or is nested past `max_depth`."""
    _check(text, _TOML_SKIPPED, max_depth)
    return tomllib.loads(text)
