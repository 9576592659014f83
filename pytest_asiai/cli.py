"""``pytest-asiai``: work with reports outside a pytest run.

    pytest-asiai show REPORT.json                 the verdict table
    pytest-asiai compare OLD.json NEW.json        per-metric comparison; exit 1 on a regression
    pytest-asiai html REPORT.json -o FILE         the self-contained HTML report
    pytest-asiai validate REPORT.json|engines.toml
    pytest-asiai rebuild LOG.jsonl -o REPORT.json a report from its events log (after a crash)
    pytest-asiai detect URL                       what engine answers at URL
    pytest-asiai init [--url URL] [--force]       an engines.toml from the engines running here

Exit codes: 0 success, 1 a regression or an invalid file, 2 usage errors (argparse).
Every failure is one line on stderr naming the file and the reason.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pytest_asiai.config.matrix import MatrixError, load_matrix
from pytest_asiai.engines.init import main as init_main
from pytest_asiai.report.baseline import BaselineError, compare_reports, comparison_lines, load_report, parse_tolerances
from pytest_asiai.report.files import atomic_write, dump_report, output_problem
from pytest_asiai.report.fold import rebuild
from pytest_asiai.report.html import write_html
from pytest_asiai.report.schema import schema_problem
from pytest_asiai.report.table import summary_lines


class CliError(Exception):
    """A one-line failure: printed as ``pytest-asiai: <message>``, exit 1."""


def _load(path: Path) -> dict[str, Any]:
    try:
        return load_report(path)
    except BaselineError as exc:
        raise CliError(str(exc)) from None


def cmd_show(args: argparse.Namespace) -> int:
    report = _load(args.report)
    cases = {str(c["id"]): c for c in report["cases"]}
    lines = summary_lines(cases, report.get("machine_id"))
    print("\n".join(lines) if lines else f"{args.report}: no measured case")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    try:
        tolerances = parse_tolerances(args.tolerance)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    comparisons = compare_reports(_load(args.old), _load(args.new), tolerances)
    print("\n".join(comparison_lines(comparisons)))
    return 1 if any(v.outcome == "regressed" for c in comparisons for v in c.verdicts) else 0


def _writable(path: Path) -> None:
    """A one-line CliError before any work when ``-o`` cannot be written (a directory, under a file)."""
    problem = output_problem(path)
    if problem is not None:
        raise CliError(f"-o {path}: {problem}")


def _write(path: Path, writer: Callable[[], None]) -> None:
    try:
        writer()
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_html(args: argparse.Namespace) -> int:
    _writable(args.output)
    report = _load(args.report)
    _write(args.output, lambda: write_html(report, args.output))
    print(f"wrote {args.output}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    path: Path = args.file
    if path.suffix == ".toml":
        try:
            cases = load_matrix(path)
        except MatrixError as exc:
            raise CliError(str(exc)) from None
        print(f"{path}: valid engine matrix ({len(cases)} case(s))")
        return 0
    report = _load(path)
    print(f"{path}: valid pytest-asiai report ({len(report['cases'])} case(s))")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    _writable(args.output)
    try:
        report = rebuild(args.log)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    problem = schema_problem(report)
    if problem is not None:
        raise CliError(f"{args.log}: the rebuilt report is invalid: {problem}")
    _write(args.output, lambda: atomic_write(args.output, dump_report(report)))
    state = "complete" if report["complete"] else "incomplete run"
    print(f"wrote {args.output} ({len(report['cases'])} case(s), {state})")
    return 0


def run_detect(argv: list[str]) -> int:
    """``detect`` belongs to :mod:`pytest_asiai.engines.detect`; its arguments are passed through untouched."""
    try:
        detect = importlib.import_module("pytest_asiai.engines.detect")
    except ImportError as exc:
        raise CliError(f"detect is not available in this installation ({exc})") from None
    entry: Callable[[list[str]], int] = detect.main
    return entry(argv)


def cmd_detect(args: argparse.Namespace) -> int:
    return run_detect(list(args.rest))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pytest-asiai", description="Work with pytest-asiai reports.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    show = sub.add_parser("show", help="print the verdict table of a report")
    show.add_argument("report", type=Path)
    show.set_defaults(func=cmd_show)
    compare = sub.add_parser("compare", help="compare two reports; exit 1 on a regression")
    compare.add_argument("old", type=Path, help="the baseline report")
    compare.add_argument("new", type=Path, help="the report to check")
    compare.add_argument(
        "--tolerance", action="append", default=[], metavar="METRIC=PCT", help="e.g. ttft_ms=20%% (repeatable)"
    )
    compare.set_defaults(func=cmd_compare)
    html = sub.add_parser("html", help="render a report as one self-contained HTML file")
    html.add_argument("report", type=Path)
    html.add_argument("-o", "--output", type=Path, required=True)
    html.set_defaults(func=cmd_html)
    validate = sub.add_parser("validate", help="check a report (.json) or an engine matrix (.toml)")
    validate.add_argument("file", type=Path)
    validate.set_defaults(func=cmd_validate)
    rebuild_p = sub.add_parser("rebuild", help="rebuild a report from its events log (REPORT.json.events.jsonl)")
    rebuild_p.add_argument("log", type=Path)
    rebuild_p.add_argument("-o", "--output", type=Path, required=True)
    rebuild_p.set_defaults(func=cmd_rebuild)
    detect = sub.add_parser("detect", help="identify the engine at a URL", add_help=False)
    detect.add_argument("rest", nargs=argparse.REMAINDER)
    detect.set_defaults(func=cmd_detect)
    init = sub.add_parser("init", help="write an engines.toml from the engines running here", add_help=False)
    init.add_argument("rest", nargs=argparse.REMAINDER)
    init.set_defaults(func=lambda args: init_main(list(args.rest)))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["detect"]:
            return run_detect(argv[1:])
        if argv[:1] == ["init"]:
            return init_main(argv[1:])
        args = parser().parse_args(argv)
        code: int = args.func(args)
    except CliError as exc:
        print(f"pytest-asiai: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
