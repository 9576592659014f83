"""The HTML report: self-contained, escaped, and rendered without a console error by headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from real_engine import SUITES
from report_helpers import copy_suite, engines_toml, synthetic_case, synthetic_report
from scripted_engine import Behaviour

from pytest_asiai.report import charts
from pytest_asiai.report.html import READY_SENTINEL, render, write_html
from pytest_asiai.report.model import per_call as burst_latencies

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1200,1800",
)


MAC_CHROME = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", MAC_CHROME):
        if path := shutil.which(name):
            return path
    pytest.fail("chromium is missing: run ./scripts/setup-browser")


def render_in_chromium(page: Path, tmp_path: Path) -> tuple[Path, str]:
    """Screenshot the page; return the PNG and Chromium's log (console messages included)."""
    shot = tmp_path / f"{page.stem}.png"
    args = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}"]
    done = subprocess.run([*args, page.as_uri()], capture_output=True, text=True, timeout=120)
    return shot, done.stdout + done.stderr


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Uncaught" in line or "ERROR:CONSOLE" in line]


@pytest.fixture
def full_report():
    return synthetic_report(synthetic_case("llamacpp"), synthetic_case("mlx", slow=1.5, decode=210.0), burst=True)


def test_page_is_self_contained(full_report):
    page = render(full_report)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "no remote resource"
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page, "a CSP forbids any network access"
    assert (
        page.count("<svg") == 2 + 2 * 2 + 2 + 2
    )  # overview, TTFT and decode per case, burst latency and TTFT, legends
    assert READY_SENTINEL in page


def test_page_shows_verdicts_phases_gates_burst_and_metrics(full_report):
    page = render(full_report)
    for text in (
        "Verdict",
        "TTFT per phase",
        "Decode per phase",
        "expected full hit (warm)",
        "Gates",
        "warm_ttft_ms",
        "burst of 16: latency per call (15 calls)",
        "burst of 16: TTFT per call (16 calls)",
        "latency p95 ms",
        "parallel",
        "Recorded metrics",
        "warm_to_cold",
        "Apple M4 Pro",
        "power mode automatic",
        "0123456789ab (dirty)",
    ):
        assert text in page, text
    # the verdict table ranks the faster-decoding case first
    assert page.index('href="#case-mlx') < page.index('href="#case-llamacpp')


def test_hostile_strings_are_escaped(full_report):
    full_report["cases"][0]["metrics"]["<script>alert(1)</script>"] = "<img src=x onerror=alert(2)>"
    page = render(full_report)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_burst_latencies_accept_the_usual_shapes():
    passes = {
        "calls": 2,
        "passes": [{"calls": [{"latency_ms": 1.0}, {"latency_ms": None}]}, {"calls": [{"total_ms": 2}]}],
    }
    assert burst_latencies(passes) == [1.0, 2.0]
    assert burst_latencies({"calls": [{"ttft_ms": 5.0}]}, "ttft_ms") == [5.0]
    assert burst_latencies({"latencies_ms": [3, 4]}) == [3.0, 4.0]
    assert burst_latencies({"p95_ms": 1.0}) == [] and burst_latencies("x") == []


def test_unmeasured_values_are_not_drawn_as_zero():
    report = synthetic_report(synthetic_case("llamacpp"))
    for phase in report["cases"][0]["phases"].values():
        phase["stats"]["decode_tok_s"]["median"] = None
    page = render(report)
    assert page.count("not measured") == len(report["cases"][0]["phases"])


def test_report_renders_in_headless_chromium_without_console_errors(full_report, tmp_path):
    page = tmp_path / "report.html"
    write_html(full_report, page)
    shot, log = render_in_chromium(page, tmp_path)
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, log[-2000:]
    assert f"{READY_SENTINEL}: 2 case(s)" in log, "the page's script ran"
    assert console_errors(log) == []


def test_the_console_check_catches_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    _, log = render_in_chromium(page, tmp_path)
    assert console_errors(log), "a script error must show up, or the check above proves nothing"


def test_asiai_html_option_writes_the_page(pytester, scripted_engine, tmp_path):
    scripted_engine.behaviour = Behaviour(decode_ms_per_token=1)
    pytester.makefile(".toml", engines=engines_toml(("scripted", scripted_engine.base_url)))
    copy_suite(pytester.path, "test_agentic.py")
    result = pytester.runpytest("-m", "agentic", "-k", "cold or warm", "--asiai-html=out/r.html")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["HTML report: out/r.html"])
    page = pytester.path / "out" / "r.html"
    assert "scripted-m-mtp_off" in page.read_text()
    shot, log = render_in_chromium(page, tmp_path)
    assert shot.exists() and console_errors(log) == [] and f"{READY_SENTINEL}: 1 case(s)" in log


def test_endurance_curve_is_drawn_per_turn_with_context_and_validity():
    report = synthetic_report(synthetic_case("llamacpp"))
    curve = {
        "turn": [1, 2, 3],
        "context_tokens": [1200, 1800, 2400],
        "clean": [True, False, None],
        "latency_ms": [510.0, 640.0, None],
        "ttft_ms": [90.0, 120.0, None],
    }
    report["cases"][0]["results"]["endurance"] = {"straight": {"curve": curve, "summary": {"clean_pct": 50.0}}}
    page = render(report)
    assert "Endurance: stability curve" in page and "straight (3 turns)" in page
    assert "turn 1 · 1,200 tok" in page and "turn 2 · 1,800 tok" in page
    assert 'fill="#5cb85c"><title>turn 1 · 1,200 tok: 510 ms · TTFT 90 ms · clean' in page
    assert 'fill="#d9534f"><title>turn 2 · 1,800 tok: 640 ms · TTFT 120 ms · not clean' in page
    assert page.count("not measured") >= 1  # turn 3 failed: no latency, no zero-length bar


def test_mtp_pairs_are_a_table_with_the_decode_delta():
    report = synthetic_report(synthetic_case("llamacpp"))
    assert "MTP on vs off" not in render(report)
    pair = {"off": 50.0, "on": 80.0, "delta_pct": 60.0, "acceptance": 0.75}
    report["mtp"] = {"llamacpp-qwen": {**pair, "tokens_per_chunk_off": 1.0, "tokens_per_chunk_on": 1.5}}
    page = render(report)
    assert "<h2>MTP on vs off</h2>" in page
    row = re.search(r"<td>llamacpp-qwen</td>(.*?)</tr>", page)
    assert row is not None
    assert re.findall(r">([^<]*)</td>", row.group(1)) == ["50.0", "80.0", "+60.0 %", "0.75", "1.00 → 1.50"]


# ----------------------------------------------------------------------------- machine blocks, in a browser

SEED = Path(__file__).parent / "data" / "seed001"
#: Two rows per machine: reserve and eliminated on the M5, winner and viable on the M4.
TWO_MACHINES = (
    "09-m5-mlxlm-qwopus3.6-27b-mlx-4bit.json",
    "12-m5-mlx_vlm-qwen3.6-27b-mlx-4bit-mtp.json",
    "15-m4-llamacpp-qwen3.6-35b-a3b-q5_k_xl-mtp.json",
    "17-m4-llamacpp-qwen3.6-27b-q5_k_xl.json",
)
#: Injected by the test only: what the browser's DOM and layout hold, logged as one JSON line.
DOM_PROBE = """<script>document.addEventListener('DOMContentLoaded',function(){
var cell=function(r,c){return r.querySelector('td[data-col="'+c+'"]').textContent;};
var blocks=[].map.call(document.querySelectorAll('section.machine-block'),function(b){return {machine:b.dataset.machine,
rows:[].map.call(b.querySelectorAll('tr[data-case]'),function(r){return [r.dataset.case,r.dataset.tier,cell(r,'reuse'),
cell(r,'tsw')];})};});
var clipped=[].filter.call(document.querySelectorAll('svg text'),function(t){var b=t.getBBox();
return b.x<0||b.x+b.width>t.ownerSVGElement.width.baseVal.value+0.5;}).map(function(t){return t.textContent;});
console.log('DOMPROBE '+JSON.stringify({blocks:blocks,clipped:clipped}));});</script>"""


def test_two_machine_replay_renders_ranked_blocks_and_cross_user_reuse_in_chromium(pytester, tmp_path):
    """Each machine is its own block, ranked on its own; "reuse" is the prefix tests' fraction (the
    eliminated mlx_vlm row reads 0.00 although its warm repeat hit the cache fully); no chart text
    leaves its SVG (a long case id used to be clipped on the left)."""
    replay = tmp_path / "replay"
    replay.mkdir()
    for name in TWO_MACHINES:
        shutil.copy(SEED / name, replay / name)
    copy_suite(pytester.path, "test_agentic.py")
    pytester.makepyfile(test_gate_suite=(SUITES / "test_gates.py").read_text(encoding="utf-8"))
    pytester.runpytest(f"--asiai-replay={replay}", "--asiai-html=r.html")
    html = (pytester.path / "r.html").read_text(encoding="utf-8")
    page = tmp_path / "probed.html"
    page.write_text(html.replace("</body>", DOM_PROBE + "</body>"), encoding="utf-8")
    _, log = render_in_chromium(page, tmp_path)
    assert console_errors(log) == [], log[-2000:]
    found = re.search(r'DOMPROBE (\{.*\})", source', log)
    assert found is not None, log[-2000:]
    dom = json.loads(found.group(1))
    assert dom["clipped"] == []
    assert dom["blocks"] == [
        {
            "machine": "Darwin-arm64-Apple M5 Max-18c-128g",
            "rows": [
                ["mlxlm-qwopus3.6-27b-mlx-4bit-mtp_off", "reserve", "1.00", "0.461"],
                ["mlx_vlm-qwen3.6-27b-mlx-4bit-mtp-mtp_on", "eliminated", "0.00", "—"],
            ],
        },
        {
            "machine": "Darwin-arm64-Apple M4 Pro-14c-64g",
            "rows": [
                ["llamacpp-qwen3.6-35b-a3b-q5-k-xl-mtp-mtp_on", "winner", "0.80", "1.557"],
                ["llamacpp-qwen3.6-27b-q5-k-xl-mtp_off", "viable", "0.80", "0.279"],
            ],
        },
    ]


def test_bar_chart_label_column_fits_the_longest_case_id():
    long_id = "llamacpp-qwen3.6-35b-a3b-q5-k-xl-mtp-mtp_on"
    svg = charts.bar_chart("t", [charts.Bar(long_id, 1.0), charts.Bar("x", 2.0)], "ms")
    label_w = charts.label_width([long_id])
    assert label_w >= len(long_id) * 7.5
    assert f'<text x="{label_w - 8}"' in svg and f'width="{label_w + charts.SPAN_W + charts.VALUE_W}"' in svg
