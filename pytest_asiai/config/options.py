"""Command-line and ini options, and the typed settings read from them once per session."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_asiai.agentic.protocol import DEFAULT_PROFILE, PROFILES
from pytest_asiai.measure.power_backends import MODES as POWER_MODES
from pytest_asiai.measure.power_backends import mode_from_env


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
        help="prompt sizes: 'full' (asiai's: ~6K system, 50K long), 'smoke' (CPU-sized) or 'tiny' (slow servers)",
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
        "--asiai-require-baseline",
        action="store_true",
        default=False,
        help="fail test_regression when the baseline file or a case in it is missing (default: warn and skip)",
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
        help="override a gate threshold, e.g. ttft=1000 or memory=4096 (repeatable)",
    )
    group.addoption(
        "--asiai-solo",
        metavar="check|stop",
        default="check",
        choices=["check", "stop"],
        help="SOLO: 'check' reports other resident engines (default); 'stop' also stops, before measuring, "
        "every other engine this plugin started (never engines it did not start)",
    )
    group.addoption(
        "--asiai-burst-sizes",
        metavar="N,N,...",
        default=None,
        help="burst sizes (default: engines.toml burst_sizes, ini asiai_burst_sizes, else 30,60,80 in the "
        "full profile and 4,8 in smoke)",
    )
    group.addoption(
        "--asiai-burst-runs",
        metavar="N",
        default=None,
        help="passes per burst size (default: ini asiai_burst_runs, else 1)",
    )
    group.addoption(
        "--asiai-endurance-turns",
        metavar="N",
        type=_at_least_one,
        default=None,
        help="tool calls in the endurance suite's straight trajectory (default: 80 in the full profile, 10 in smoke)",
    )
    group.addoption(
        "--asiai-suites",
        metavar="auto|all|none|NAME,...",
        default=None,
        help="built-in suites to run beside yours: agentic, gates, regression, burst, toolcall, endurance "
        "(default: env ASIAI_SUITES, ini asiai_suites, else auto: all of them unless you name test paths)",
    )
    group.addoption(
        "--asiai-power",
        metavar="MODE",
        default=None,
        choices=list(POWER_MODES),
        help="power backend: auto (IOReport on macOS, no sudo), ioreport, powermetrics (needs sudo -n), off "
        "(default: env ASIAI_POWER, else auto; elsewhere than macOS power is 'not measured')",
    )
    parser.addini("asiai_engines", "engine matrix file, relative to the rootdir", default="engines.toml")
    parser.addini("asiai_profile", "default prompt-size profile", default="")
    parser.addini("asiai_runs", "default number of protocol repeats", default="1")
    parser.addini("asiai_json", "default JSON report path", default="")
    parser.addini("asiai_gates", "gate threshold overrides, one NAME=VALUE per line", type="linelist", default=[])
    parser.addini("asiai_tolerances", "regression tolerances, one METRIC=PCT per line", type="linelist", default=[])
    parser.addini("asiai_burst_sizes", "default burst sizes, e.g. 30,60,80", default="")
    parser.addini("asiai_burst_runs", "default passes per burst size", default="1")
    parser.addini("asiai_suites", "built-in suites to run: auto, all, none or NAME,NAME", default="auto")


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
    burst_sizes_override: tuple[int, ...] | None = None
    """--asiai-burst-sizes: wins over engines.toml."""
    burst_sizes_default: tuple[int, ...] | None = None
    """ini asiai_burst_sizes: used where engines.toml says nothing."""
    burst_runs: int = 1
    endurance_turns: int | None = None
    """--asiai-endurance-turns: the straight trajectory's tool calls (None: the profile's)."""
    solo: str = "check"
    """--asiai-solo: ``stop`` stops the plugin's own other engines before a case is measured."""
    power: str = "auto"
    """--asiai-power, else env ASIAI_POWER: the power backend (power.py)."""

    def profile_for(self, case_profile: str | None) -> str:
        """The profile a case runs: command line, then engines.toml, then ini, then ``full``."""
        return self.profile_override or case_profile or self.profile_default or DEFAULT_PROFILE


def _path(value: str | None, root: Path) -> Path | None:
    return (root / value) if value else None


MAX_BURST_SIZE = 500


def burst_sizes(raw: str | None, where: str) -> tuple[int, ...] | None:
    """``"30,60,80"`` → (30, 60, 80); None when empty; a usage error naming ``where`` when malformed."""
    if raw is None or not raw.strip():
        return None
    parts = [p.strip() for p in raw.split(",")]
    if not all(p.isdigit() and 1 <= int(p) <= MAX_BURST_SIZE for p in parts):
        raise pytest.UsageError(f"{where}: {raw!r}: expected comma-separated whole numbers from 1 to {MAX_BURST_SIZE}")
    return tuple(dict.fromkeys(int(p) for p in parts))


def _at_least_one(raw: str) -> int:
    """argparse type of a count option: the error names the option and the value."""
    if not raw.strip().isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {raw!r}")
    return int(raw)


def whole_number(raw: str, where: str) -> int:
    """A count of at least 1, or a usage error naming ``where``."""
    if not raw.strip().isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"{where}: expected a whole number of at least 1, got {raw!r}")
    return int(raw)


def _burst_runs(config: pytest.Config) -> int:
    raw = config.getoption("asiai_burst_runs")
    if raw is not None:
        return whole_number(raw, "--asiai-burst-runs")
    return whole_number(str(config.getini("asiai_burst_runs") or "1"), "ini asiai_burst_runs")


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
    settings = Settings(
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
        burst_sizes_override=burst_sizes(opt("asiai_burst_sizes"), "--asiai-burst-sizes"),
        burst_sizes_default=burst_sizes(str(config.getini("asiai_burst_sizes")), "ini asiai_burst_sizes"),
        burst_runs=_burst_runs(config),
        endurance_turns=opt("asiai_endurance_turns"),
        solo=str(opt("asiai_solo")),
        power=_power_mode(opt("asiai_power")),
    )
    check_outputs(settings)
    return settings


def _power_mode(option: str | None) -> str:
    if option is not None:
        return option
    try:
        return mode_from_env()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def check_outputs(settings: Settings) -> None:
    """Every file the run will write must be writable now: finding out after the benchmark loses it."""
    from pytest_asiai.report.files import output_problem  # report imports much of the package; options stays light

    outputs = [("--asiai-json", settings.json_path), ("--asiai-html", settings.html_path)]
    if settings.update_baseline:
        outputs.append(("--asiai-baseline", settings.baseline))
    for option, path in outputs:
        problem = output_problem(path) if path is not None else None
        if problem is not None:
            raise pytest.UsageError(f"{option}: {problem}")
