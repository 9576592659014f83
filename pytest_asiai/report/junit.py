"""A few key figures per test as JUnit properties, for CI dashboards that only read ``--junitxml``.

The properties are appended to ``item.user_properties`` from the ``pytest_runtest_makereport``
hook (not through ``record_property``, which warns under the default ``junit_family=xunit2``);
pytest's JUnit writer emits them as ``<properties>`` of the ``<testcase>`` from the test's
teardown report, on the controller under xdist too. Only scalars: the JSON report holds the rest,
and run-level data (machine, versions) lives only there (``record_testsuite_property`` does not
work under xdist).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pytest_asiai.report.model import Stat, parse_stats

PHASE_FIGURES = ("ttft_ms", "decode_tok_s", "cached_tokens", "prompt_tokens")
RESULT_FIGURES = ("value", "threshold", "outcome", "old", "new", "change_pct")
Property = tuple[str, object]


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float | str | bool) and value is not None


def _round(value: object) -> object:
    return round(value, 3) if isinstance(value, float) else value


def phase_properties(name: str, stats: Mapping[str, Stat]) -> list[Property]:
    """``<phase>.ttft_ms`` and friends: the medians of the phase (unmeasured ones are left out)."""
    medians = ((figure, stats[figure].median if figure in stats else None) for figure in PHASE_FIGURES)
    return [(f"{name}.{figure}", _round(value)) for figure, value in medians if value is not None]


def result_properties(events: Iterable[Mapping[str, Any]]) -> list[Property]:
    """``gates.<key>.value``/``threshold``/``outcome`` (and regression old/new/change) from result events."""
    out: list[Property] = []
    for event in events:
        if event.get("type") != "result" or not isinstance(event.get("value"), Mapping):
            continue
        prefix = f"{event['section']}.{event['key']}"
        for figure in RESULT_FIGURES:
            value = event["value"].get(figure)
            if _scalar(value):
                out.append((f"{prefix}.{figure}", _round(value)))
    return out


def properties_for(
    phase_name: str | None, phase_stats: Mapping[str, Mapping[str, Any]] | None, events: Iterable[Mapping[str, Any]]
) -> list[Property]:
    """A phase test's figures (from the measured phase), then every result the test recorded."""
    out = phase_properties(phase_name, parse_stats(phase_stats)) if phase_name and phase_stats else []
    return out + result_properties(events)
