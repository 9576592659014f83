"""``pytest-asiai init``: write an engines.toml from the engines already running on this machine.

It knocks on the loopback ports the engine families listen on by default (each family module in
``pytest_asiai/engines/`` has a ``default_port``: 8080 llama.cpp and mlx-lm, 1234 LM Studio, 11434
Ollama, 8000 the others) and on every ``--url``; each server that answers is named by
:func:`pytest_asiai.engines.detect.detect` and its models listed from ``/v1/models``. The file holds one
engine per server (``kind``, ``base_url``, one model entry per listed model) with comments on what to
edit, is checked with the plugin's own loader before it is written, and never replaces an existing
file without ``--force``. ``pytest -m agentic`` then runs on it unchanged.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pytest_asiai.config.matrix import MatrixError, cases_from_document
from pytest_asiai.engines import DETECTION_ORDER
from pytest_asiai.engines.detect import Detection, detect

DEFAULT_PORTS: tuple[int, ...] = tuple(dict.fromkeys(f.default_port for f in DETECTION_ORDER))
"""Every family's default port, in detection order (8080, 1234, 11434, 8000 today)."""

HEADER = """\
# pytest-asiai engine matrix, written by `pytest-asiai init` on {date} from the engines running here.
# Every engine x model below is one case; `pytest -m agentic` measures them as they run.
# Reference: docs/engines-toml.md in pytest-asiai. Check an edited file: `pytest-asiai validate engines.toml`.
#
# What to edit:
#  - profile: "smoke" (small prompts, minutes on a CPU) or "full" (asiai's sizes: a 50K-token long
#    context, which needs a 64K context window; the long phases say so when it is smaller).
#  - Delete the engines and models you do not want to measure; rename `name` (it is the case id).
#  - mtp = "both" on a model also measures speculative decoding (with mtp_on = {{ request = {{...}} }}).
#  - api_key_env = "NAME" if a server wants a key (the key itself stays in that variable).
#  - To let the plugin start and stop an engine itself (a true restart for `restart-prefix`), replace
#    its base_url by an [engines.managed] command (docs/engines-toml.md).
#  - Engines are measured while the others keep running: the `solo` gate reports them; stop them for
#    clean figures.

profile = "smoke"
"""


class InitError(Exception):
    """A one-line failure: printed as ``pytest-asiai init: <message>``, exit 1."""


def candidate_urls(urls: Sequence[str], ports: Sequence[int], host: str) -> list[str]:
    """The base URLs to try: the given ones, then ``http://host:port`` for each port (no duplicates)."""
    found = [u.rstrip("/").removesuffix("/v1") for u in urls]
    found += [f"http://{host}:{port}" for port in ports]
    return list(dict.fromkeys(found))


def listening(url: str, timeout_s: float) -> bool:
    """Does anything accept a TCP connection at the URL's host and port (a cheap first knock)?"""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def scan(urls: Sequence[str], timeout_s: float) -> tuple[list[Detection], list[str]]:
    """The servers that answer as LLM engines, and one note per URL that was skipped and why."""
    engines, notes = [], []
    for url in urls:
        if not listening(url, timeout_s):
            continue
        found = detect(url, timeout_s=timeout_s)
        if not found.reachable:
            notes.append(f"{url}: skipped: {found.error}")
        elif not found.models:
            notes.append(f"{url}: skipped: a server answers but lists no model at /v1/models")
        else:
            engines.append(found)
    return engines, notes


def slug(text: str) -> str:
    """A case-id name (engines.schema.json ``name``) from a model id, a file path or an Ollama tag."""
    base = text.rstrip("/").rsplit("/", 1)[-1].removesuffix(".gguf")
    name = re.sub(r"[^a-z0-9_.]+", "-", base.lower()).strip("-.")
    return (name or "model")[:64].rstrip("-")


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name[:60]}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def _engine_names(detections: Sequence[Detection]) -> list[str]:
    """``kind``, or ``kind-PORT`` when two servers of one family run."""
    kinds = [d.kind for d in detections]
    names = [d.kind if kinds.count(d.kind) == 1 else f"{d.kind}-{urlsplit(d.base_url).port}" for d in detections]
    taken: set[str] = set()
    return [_unique(n, taken) for n in names]


def _q(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def _engine_block(name: str, d: Detection) -> str:
    title = d.family.title if d.recognised else "an OpenAI-compatible server of no known family (kind openai)"
    lines = [f"# {title} {d.version or '(version unknown)'} at {d.base_url}"]
    lines.append(f"#   found by: {d.evidence or 'no family signature; measured as a generic OpenAI server'}")
    if d.pid is not None:
        lines.append(f"#   process: pid {d.pid}: {' '.join(d.command)[:150]}")
    lines += ["[[engines]]", f"name = {_q(name)}", f"kind = {_q(d.kind)}", f"base_url = {_q(d.base_url)}"]
    taken: set[str] = set()
    for model in d.models:
        lines += ["", "[[engines.models]]", f"name = {_q(_unique(slug(model), taken))}", f"id = {_q(model)}"]
    return "\n".join(lines) + "\n"


def render(detections: Sequence[Detection], now: datetime | None = None) -> str:
    """The engines.toml text for these servers (header comments, then one block per engine)."""
    date = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    blocks = [_engine_block(n, d) for n, d in zip(_engine_names(detections), detections, strict=True)]
    return HEADER.format(date=date) + "\n" + "\n".join(blocks)


def check(text: str, path: Path) -> int:
    """Load the text as the plugin will; the number of cases (an InitError if the plugin would refuse it)."""
    try:
        return len(cases_from_document(tomllib.loads(text), str(path), path.parent))
    except (MatrixError, tomllib.TOMLDecodeError) as exc:
        raise InitError(f"the generated matrix is invalid ({exc}); please report this") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-asiai init",
        description="Write an engines.toml from the LLM engines running on this machine.",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("engines.toml"), help="default: ./engines.toml")
    parser.add_argument("--force", action="store_true", help="replace an existing file")
    parser.add_argument("--url", action="append", default=[], metavar="URL", help="also try this server (repeatable)")
    parser.add_argument(
        "--port",
        action="append",
        type=int,
        default=None,
        metavar="N",
        help=f"loopback ports to scan instead of the families' defaults ({', '.join(map(str, DEFAULT_PORTS))})",
    )
    parser.add_argument("--no-scan", action="store_true", help="only the --url servers, no port scan")
    parser.add_argument("--host", default="127.0.0.1", help="host to scan (default 127.0.0.1)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per request (default 3)")
    return parser


def run(args: argparse.Namespace) -> int:
    path: Path = args.output
    if path.exists() and not args.force:
        raise InitError(f"{path} exists; use --force to replace it, or -o OTHER.toml")
    ports = [] if args.no_scan else (args.port or list(DEFAULT_PORTS))
    urls = candidate_urls(args.url, ports, args.host)
    detections, notes = scan(urls, args.timeout)
    for note in notes:
        print(note, file=sys.stderr)
    if not detections:
        where = ", ".join(urls) or "no URL"
        raise InitError(f"no engine answered at {where} (start one, or give --url URL)")
    text = render(detections)
    cases = check(text, path)
    for d in detections:
        print(f"found {d.kind} {d.version or '(version unknown)'} at {d.base_url}: {len(d.models)} model(s)")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InitError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path} ({len(detections)} engine(s), {cases} case(s)); next: pytest -m agentic")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``pytest-asiai init``: 0 when a file was written, 1 otherwise (one line on stderr)."""
    try:
        return run(_parser().parse_args(argv))
    except InitError as exc:
        print(f"pytest-asiai init: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
