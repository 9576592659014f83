"""The report's schema (``schemas/report.schema.json``): validators built once, and a violation as one line.

Validation is the strict door into the report: the collector validates before every write, a
baseline and a replayed recording are validated when read, a report that fails is never written
over a good one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

SCHEMA_ID = "pytest-asiai/report-v1"


@cache
def report_schema() -> dict[str, Any]:
    text = resources.files("pytest_asiai").joinpath("schemas/report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validators() -> tuple[
    jsonschema.Draft202012Validator, jsonschema.Draft202012Validator, jsonschema.Draft202012Validator
]:
    """The whole report, the report without its cases, and one case (validators are built once)."""
    schema = report_schema()
    envelope = {**schema, "properties": {**schema["properties"], "cases": {"type": "array"}}}
    case = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/case"}
    return tuple(jsonschema.Draft202012Validator(s) for s in (schema, envelope, case))  # type: ignore[return-value]


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError when the report does not match the shipped schema."""
    _validators()[0].validate(report)


def validate_partial(report: Mapping[str, Any], case_ids: Iterable[str]) -> None:
    """Validate the report but only the named cases (the others were validated before and did not change).

    Validating a fleet-sized report costs seconds of CPU (jsonschema walks every token timestamp); a
    run rewrites its report often, so only the final write pays for a full validation.
    """
    _, envelope, case = _validators()
    envelope.validate(report)
    wanted = set(case_ids)
    for item in report["cases"]:
        if item.get("id") in wanted:
            case.validate(item)


def schema_problem(report: Any) -> str | None:
    """The most relevant schema violation as one line (``cases[0].phases.cold: ...``), or None."""
    validator = jsonschema.Draft202012Validator(report_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(report))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    return f"{where or '(top level)'}: {error.message}"


def case_problem(case: Any) -> str | None:
    """The most relevant schema violation of one report case (``phases.cold.runs[0].ttft_ms: ...``)."""
    error = jsonschema.exceptions.best_match(_validators()[2].iter_errors(case))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    return f"{where or '(case)'}: {error.message}"
