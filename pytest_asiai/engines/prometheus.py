"""Prometheus text exposition: full metric names (llama.cpp's ``llamacpp:`` colons included) and values.

asiai matched names with ``^\\w+``, so every ``llamacpp:prompt_tokens_total`` line was dropped and its
llama.cpp counters were never read. Metric names may contain colons (the Prometheus data model allows
``[a-zA-Z_:][a-zA-Z0-9_:]*``); this parser keeps them whole, with their labels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})?\s+(\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_SPECIAL = {"+inf": math.inf, "-inf": -math.inf, "nan": math.nan, "inf": math.inf}


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line: full name, labels and value."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``name`` or ``name{a="x",b="y"}`` (labels sorted): unique within one scrape."""
        if not self.labels:
            return self.name
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}"


def _value(text: str) -> float | None:
    special = _SPECIAL.get(text.lower())
    if special is not None:
        return special
    try:
        return float(text)
    except ValueError:
        return None


def _unescape(value: str) -> str:
    return value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


def _labels(text: str | None) -> dict[str, str] | None:
    """Labels of ``{a="x",b="y"}``; None when the label block is malformed."""
    if not text or not text.strip():
        return {}
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if m is None or m.end() == pos:
            return None if text[pos:].strip() else out
        out[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return out


def parse(text: str) -> list[Sample]:
    """Every well-formed sample line, in order; comments and malformed lines are skipped."""
    samples: list[Sample] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        value = _value(m.group(3))
        labels = _labels(m.group(2))
        if value is None or labels is None:
            continue
        samples.append(Sample(m.group(1), value, labels))
    return samples


def values(text: str) -> dict[str, float]:
    """``{sample key: value}`` for one scrape (see :attr:`Sample.key`)."""
    return {s.key: s.value for s in parse(text)}


def names(text: str) -> list[str]:
    """The distinct metric names of a scrape, sorted (labels dropped)."""
    return sorted({s.name for s in parse(text)})


def total(samples: Iterable[Sample], name: str) -> float | None:
    """Sum of one metric over all its label sets; None when the scrape has no such metric."""
    found = [s.value for s in samples if s.name == name]
    return math.fsum(found) if found else None
