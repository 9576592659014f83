"""Command-line and ini options, and the typed settings read from them once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from .protocol import DEFAULT_PROFILE, PROFILES


def register(parser: pytest.Parser) -> None:
    """Add the ``asiai`` option group (``pytest --help`` lists it) and the ini keys."""
    group = parser.getgroup("asiai", "pytest-asiai: benchmarks of local LLM inference engines")
    group.addoption(
        "--asiai-engines",
        metavar="PATH",
        default=None,
        help="engine matrix file (default: ini asiai_engines, else engines.toml in the rootdir)",
    )
    group.addoption(
        "--asiai-engine", metavar="NAME", action="append", default=[], help="only cases of this engine (repeatable)"
    )
    group.addoption(
        "--asiai-model", metavar="NAME", action="append", default=[], help="only cases of this model (repeatable)"
    )
    group.addoption(
        "--asiai-mtp",
        metavar="off|on",
        action="append",
        default=[],
        choices=["off", "on"],
        help="only cases with this MTP setting (repeatable)",
    )
    group.addoption(
        "--asiai-json",
        metavar="PATH",
        default=None,
        help="write the JSON report here (written incrementally, finalised atomically)",
    )
    group.addoption("--asiai-html", metavar="PATH", default=None, help="write a self-contained HTML report")
    group.addoption(
        "--asiai-runs",
        metavar="N",
        type=int,
        default=None,
        help="repeat the protocol N times per case (default: ini asiai_runs, else 1)",
    )
    group.addoption(
        "--asiai-profile",
        metavar="NAME",
        default=None,
        choices=sorted(PROFILES),
        help="prompt sizes: 'full' (asiai sizes, ~6K system, 50K long) or 'smoke' (CPU-sized)",
    )
    group.addoption(
        "--asiai-baseline",
        metavar="PATH",
        default=None,
        help="compare with a stored report and fail regressions beyond tolerance",
    )
    group.addoption(
        "--asiai-tolerance",
        metavar="METRIC=PCT",
        action="append",
        default=[],
        help="regression tolerance per metric, e.g. ttft_ms=20%% (repeatable)",
    )
    group.addoption(
        "--asiai-update-baseline", action="store_true", default=False, help="rewrite the baseline file from this run"
    )
    group.addoption(
        "--asiai-replay",
        metavar="PATH",
        action="append",
        default=[],
        help="re-gate recorded results (a report or asiai JSON file, or a directory) without any engine",
    )
    group.addoption(
        "--asiai-gate",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="override a gate threshold, e.g. ttft_ms=1000 (repeatable)",
    )
    parser.addini("asiai_engines", "engine matrix file, relative to the rootdir", default="engines.toml")
    parser.addini("asiai_profile", "default prompt-size profile", default="")
    parser.addini("asiai_runs", "default number of protocol repeats", default="1")
    parser.addini("asiai_json", "default JSON report path", default="")
    parser.addini("asiai_gates", "gate threshold overrides, one NAME=VALUE per line", type="linelist", default=[])
    parser.addini("asiai_tolerances", "regression tolerances, one METRIC=PCT per line", type="linelist", default=[])


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the plugin reads from options and ini, resolved once."""

    engines_path: Path
    engines_path_explicit: bool
    engine_filter: tuple[str, ...]
    model_filter: tuple[str, ...]
    mtp_filter: tuple[str, ...]
    json_path: Path | None
    html_path: Path | None
    runs: int
    profile_override: str | None
    """--asiai-profile: wins over engines.toml."""
    profile_default: str | None
    """ini asiai_profile: used where engines.toml says nothing."""
    baseline: Path | None
    tolerances: tuple[str, ...]
    update_baseline: bool
    replay: tuple[Path, ...]
    gates_ini: tuple[str, ...]
    gates_cli: tuple[str, ...]

    def profile_for(self, case_profile: str | None) -> str:
        """The profile a case runs: command line, then engines.toml, then ini, then ``full``."""
        return self.profile_override or case_profile or self.profile_default or DEFAULT_PROFILE


def _path(value: str | None, root: Path) -> Path | None:
    return (root / value) if value else None


def read(config: pytest.Config) -> Settings:
    """Resolve options over ini values; raise UsageError for values pytest cannot check itself."""
    root = config.rootpath
    opt = config.getoption
    explicit = opt("asiai_engines")
    runs = opt("asiai_runs")
    if runs is None:
        raw = str(config.getini("asiai_runs") or "1")
        if not raw.isdigit():
            raise pytest.UsageError(f"ini asiai_runs: expected a whole number, got {raw!r}")
        runs = int(raw)
    if runs < 1:
        raise pytest.UsageError(f"--asiai-runs: must be at least 1, got {runs}")
    ini_profile = str(config.getini("asiai_profile")) or None
    if ini_profile is not None and ini_profile not in PROFILES:
        raise pytest.UsageError(f"ini asiai_profile: unknown profile {ini_profile!r} (known: {', '.join(PROFILES)})")
    return Settings(
        engines_path=Path(explicit) if explicit else root / str(config.getini("asiai_engines")),
        engines_path_explicit=explicit is not None,
        engine_filter=tuple(opt("asiai_engine")),
        model_filter=tuple(opt("asiai_model")),
        mtp_filter=tuple(opt("asiai_mtp")),
        json_path=Path(opt("asiai_json")) if opt("asiai_json") else _path(str(config.getini("asiai_json")), root),
        html_path=Path(opt("asiai_html")) if opt("asiai_html") else None,
        runs=runs,
        profile_override=opt("asiai_profile"),
        profile_default=ini_profile,
        baseline=Path(opt("asiai_baseline")) if opt("asiai_baseline") else None,
        tolerances=(*config.getini("asiai_tolerances"), *opt("asiai_tolerance")),
        update_baseline=bool(opt("asiai_update_baseline")),
        replay=tuple(Path(p) for p in opt("asiai_replay")),
        gates_ini=tuple(config.getini("asiai_gates")),
        gates_cli=tuple(opt("asiai_gate")),
    )
