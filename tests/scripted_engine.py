"""The scripted test engine: a real OpenAI-compatible HTTP server whose behaviour each test scripts.

Why: the plugin's HTTP and SSE code must be tested against a real socket, with exact and fast
timings, prefix-cache effects, usage shapes and failures that a real inference server only shows
by accident. The server is standard-library only (``asyncio.start_server`` in a dedicated thread),
listens on 127.0.0.1 on a free port, and speaks minimal HTTP/1.1: keep-alive, ``Content-Length``
request bodies, and ``Transfer-Encoding: chunked`` for streamed responses (as llama.cpp does), so
an abrupt disconnect is visible to the client as an incomplete body.

Tokenizer, deliberately trivial so tests can predict every count exactly:

* a token is a maximal run of non-whitespace characters (regex ``\\S+``);
* a chat prompt is the token list ``<|role|>, *content tokens, <|end|>`` for each message, then
  ``<|assistant|>`` (the generation prompt): ``sum(2 + tokens(content)) + 1`` tokens. Content
  given as a list of parts counts its ``text`` parts; an assistant message's ``tool_calls`` add
  the tokens of each function name and arguments string; request ``tools`` are not counted;
* ``Behaviour.default_system_prompt``: the template inserts this system message before a request
  that has none (as SmolLM2's does);
* so two prompts with the same system message share ``2 + tokens(system) + 1`` leading tokens
  (system marker, system words, end marker, user marker).

Output: every streamed token is one word followed by a space, so ``count_tokens(content)`` equals
the number of content tokens. ``usage.completion_tokens`` counts every streamed token (reasoning,
content, and one per tool-call fragment). The first chunk is sent right after prefill; before each
later chunk of ``k`` tokens the server sleeps ``k * decode_ms_per_token``.

Prefix cache (per slot, like llama.cpp): a slot remembers its last prompt's tokens; ``cached`` is
the common prefix with the new prompt, capped at ``prompt_tokens - 1``; the prefill delay is
``(prompt_tokens - cached) * prefill_ms_per_token``. Unpinned requests take the idle slot with the
longest common prefix if it covers more than 10 % of the prompt (llama.cpp's default slot prompt
similarity), else the least recently used idle slot (ties: lowest id); they queue in strict FIFO
order when all slots are busy. ``id_slot`` pins a slot; ``"cache_prompt": false`` disables reuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, NoReturn

_TOKEN_RE = re.compile(r"\S+")

#: Words of the default deterministic output; non-ASCII ones exercise multi-byte UTF-8 splits.
VOCABULARY: tuple[str, ...] = tuple(
    """
    the river carries light across old stone bridges while café owners sweep morning dust → toward
    quiet streets 日本 gardens bloom naïve travellers notice small details every season brings new
    colours and sounds lanterns glow softly near harbour boats drift under clouds children laugh
    over warm bread maps show distant mountains résumé pages rustle in wind … señora counts
    """.split()
)

#: llama.cpp's default ``--slot-prompt-similarity``: below it a request goes to the LRU idle slot.
SLOT_PROMPT_SIMILARITY = 0.1
CONTENT_SEED = 7
REASONING_SEED = 11


@dataclass
class Behaviour:
    """What the scripted test engine does for each chat request; tests may mutate it at any time."""

    # timing
    prefill_ms_per_token: float = 0.0  # per uncached prompt token, before the first token
    decode_ms_per_token: float = 0.0  # before each later chunk: tokens in it x this
    headers_delay_ms: float = 0.0  # before the response headers (and before any HTTP error)
    # prefix cache and usage dialects
    prefix_cache: bool = True
    cross_user_reuse: bool = True  # False: only an identical prompt hits (hybrid-model style)
    report_cached: bool = True
    store_delay_ms: float = 0.0  # the prompt is reusable only this long after its response ends (oMLX)
    cached_field: str = "prompt_tokens_details"  # or "top_level" (usage.cached_tokens)
    send_usage: bool = True  # usage chunk, only when stream_options.include_usage is true
    send_timings: bool = False  # llama.cpp "timings": in the usage chunk, else in the last token chunk
    usage_object: str = "chat.completion.chunk"  # mlx-lm says "chat.completion"
    # output
    completion_tokens: int | None = None  # all output tokens incl. reasoning; None: the request budget
    finish_reason: str | None = None  # override of length / stop / tool_calls
    reasoning_tokens: int = 0  # streamed before content, within the budget
    reasoning_field: str = "reasoning_content"  # or "reasoning" (mlx-lm, Ollama)
    honour_thinking_off: bool = True  # enable_thinking=False, think=False, reasoning_effort="none"
    tokens_per_chunk: int = 1  # >1 simulates speculative / MTP batching
    content_text: str | None = None  # whitespace-split and cycled; None: scripted_words()
    tool_calls: list[dict[str, str]] | None = None  # [{"name", "arguments"}], used if the request has tools
    tool_args_piece: int = 7  # argument characters per tool-call fragment
    # failures; "after N tokens" fires at the first point where N tokens were streamed
    http_500_after: int | None = None  # after N accepted chat requests
    http_status: int | None = None  # every chat request (metadata endpoints keep working)
    error_in_stream_after_tokens: int | None = None  # error event, then [DONE]
    malformed_sse_after_tokens: int | None = None  # one `data: {not json` line, then normal
    disconnect_after_tokens: int | None = None  # socket aborted: no [DONE], no terminating chunk
    drip_bytes: int | None = None  # each write split into pieces this size (splits UTF-8 too)
    drip_delay_ms: float = 0.0
    sse_comments: bool = False  # `: ping` before every event
    no_space_after_colon: bool = False  # `data:{...}`
    role_chunk: bool = True  # role-only chunk, written together with the first token
    default_system_prompt: str | None = None  # the template's own, before a request without one (SmolLM2)
    # concurrency
    slots: int = 1  # parallel slots; more requests queue in strict FIFO order


# --------------------------------------------------------------------------- tokenizer


def count_tokens(text: str) -> int:
    """Number of tokens in ``text`` (maximal runs of non-whitespace)."""
    return len(_TOKEN_RE.findall(text))


def token_id(piece: str) -> int:
    """Stable integer id of a token, so /tokenize answers are reproducible."""
    return zlib.crc32(piece.encode("utf-8")) % 150_000


def _message_text(message: dict[str, Any]) -> str:
    """Text a chat template would render for one message (content parts and tool calls)."""
    content = message.get("content")
    parts: list[str] = []
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
    for call in message.get("tool_calls") or []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        parts += [str(function.get("name", "")), str(function.get("arguments", ""))]
    return " ".join(parts)


def prompt_tokens(messages: list[dict[str, Any]], default_system: str | None = None) -> list[str]:
    """Token list of a chat prompt; template markers make common prefixes behave like a real cache.

    ``default_system``: a system message the template inserts when the request has none (SmolLM2's
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face")."""
    tokens: list[str] = []
    if default_system is not None and not (messages and messages[0].get("role") == "system"):
        tokens += ["<|system|>", *_TOKEN_RE.findall(default_system), "<|end|>"]
    for message in messages:
        tokens.append(f"<|{message.get('role', 'user')}|>")
        tokens += _TOKEN_RE.findall(_message_text(message))
        tokens.append("<|end|>")
    tokens.append("<|assistant|>")
    return tokens


def scripted_words(n: int, seed: int = CONTENT_SEED) -> list[str]:
    """``n`` deterministic, varied words (a full stop every 9th) so output looks like prose."""
    rng = random.Random(seed)
    words = [rng.choice(VOCABULARY) for _ in range(n)]
    return [w + "." if i % 9 == 8 else w for i, w in enumerate(words)]


def _common_prefix(a: list[str], b: list[str]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


# --------------------------------------------------------------------------- slots


@dataclass
class _Waiter:
    prompt: list[str]
    pinned: int | None
    future: asyncio.Future[int]


class _SlotPool:
    """Parallel slots with per-slot prompt memory and a strict FIFO queue, like llama.cpp's server."""

    def __init__(self, n: int) -> None:
        self.memory: list[list[str]] = [[] for _ in range(n)]
        self.busy: list[bool] = [False] * n
        self.last_used: list[int] = [-1] * n
        self._uses = 0
        self._waiters: deque[_Waiter] = deque()

    def resize(self, n: int) -> None:
        """Follow ``Behaviour.slots`` changes; shrinking only drops idle trailing slots."""
        while len(self.memory) < n:
            self.memory.append([])
            self.busy.append(False)
            self.last_used.append(-1)
        while len(self.memory) > max(n, 1) and not self.busy[-1]:
            for column in (self.memory, self.busy, self.last_used):
                column.pop()
        self._dispatch()

    async def acquire(self, prompt: list[str], pinned: int | None) -> int:
        """Wait (FIFO) for a slot and return its id."""
        waiter = _Waiter(prompt, pinned, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._dispatch()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise

    def release(self, slot: int) -> None:
        """Free a slot and hand it to the next waiter."""
        if slot < len(self.busy):
            self.busy[slot] = False
        self._dispatch()

    def _abandon(self, waiter: _Waiter) -> None:
        """A cancelled waiter either leaves the queue or gives back the slot it just got."""
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        elif waiter.future.done() and not waiter.future.cancelled():
            self.release(waiter.future.result())

    def _dispatch(self) -> None:
        """Serve waiters in arrival order; a pinned waiter never blocks later ones."""
        for waiter in list(self._waiters):
            slot = self._pick(waiter)
            if slot is None:
                continue
            self.busy[slot] = True
            self._uses += 1
            self.last_used[slot] = self._uses
            self._waiters.remove(waiter)
            waiter.future.set_result(slot)

    def _pick(self, waiter: _Waiter) -> int | None:
        """Pinned slot if idle; else llama.cpp's choice: the idle slot whose common prefix covers more
        than ``SLOT_PROMPT_SIMILARITY`` of the prompt (longest wins), else the least recently used
        idle slot; ties go to the lowest id."""
        if waiter.pinned is not None:
            return waiter.pinned if not self.busy[waiter.pinned] else None
        idle = [i for i, b in enumerate(self.busy) if not b]
        if not idle:
            return None
        shared = {i: _common_prefix(self.memory[i], waiter.prompt) for i in idle}
        best = max(idle, key=lambda i: (shared[i], -i))
        if shared[best] > SLOT_PROMPT_SIMILARITY * len(waiter.prompt):
            return best
        return min(idle, key=lambda i: (self.last_used[i], i))

    def reset(self) -> None:
        """Forget every slot's prompt."""
        self.memory = [[] for _ in self.memory]


def _cached_tokens(b: Behaviour, body: dict[str, Any], memory: list[str], prompt: list[str]) -> int:
    """How many prompt tokens the slot can reuse, per the scripted cache semantics."""
    if not b.prefix_cache or body.get("cache_prompt") is False or not prompt:
        return 0
    if not b.cross_user_reuse:
        return len(prompt) - 1 if memory == prompt else 0
    return min(_common_prefix(memory, prompt), len(prompt) - 1)


# --------------------------------------------------------------------------- output plan


@dataclass
class _Unit:
    """One SSE chunk's delta and how many tokens it carries."""

    delta: dict[str, Any]
    tokens: int


@dataclass
class _Output:
    """Everything one response will contain, decided before any byte is sent."""

    units: list[_Unit]
    finish_reason: str
    reasoning_tokens: int
    completion_tokens: int
    reasoning: str = ""
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _max_tokens(body: dict[str, Any]) -> int | None:
    """The request's output budget (OpenAI or llama.cpp spelling), ``None`` if unlimited."""
    for key in ("max_completion_tokens", "max_tokens", "n_predict"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def _thinking_off(body: dict[str, Any]) -> bool:
    """Whether the request asks to disable thinking in any of the common dialects."""
    kwargs = body.get("chat_template_kwargs")
    if isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False:
        return True
    return body.get("think") is False or body.get("reasoning_effort") == "none"


def _pieces(b: Behaviour, n: int) -> list[str]:
    """Content pieces: ``content_text`` words (cycled) or the default deterministic words."""
    words = (b.content_text or "").split()
    if not words:
        return [w + " " for w in scripted_words(n)]
    return [words[i % len(words)] + " " for i in range(n)]


def _text_units(key: str, pieces: list[str], per_chunk: int) -> list[_Unit]:
    """Group token pieces into chunks of ``per_chunk`` tokens under one delta key."""
    step = max(1, per_chunk)
    return [_Unit({key: "".join(pieces[i : i + step])}, len(pieces[i : i + step])) for i in range(0, len(pieces), step)]


def _full_calls(calls: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The scripted calls as a non-streamed message's ``tool_calls`` (with fresh ids)."""
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": c["name"], "arguments": c.get("arguments", "")},
        }
        for c in calls
    ]


def _tool_units(calls: list[dict[str, Any]], piece: int) -> list[_Unit]:
    """OpenAI-style tool-call fragments: name (with id) first, then arguments in small pieces."""
    units: list[_Unit] = []
    step = max(1, piece)
    for index, call in enumerate(calls):
        name = call["function"]["name"]
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        units.append(_Unit({"tool_calls": [head]}, 1))
        args: str = call["function"]["arguments"]
        for i in range(0, len(args), step):
            fragment = {"index": index, "function": {"arguments": args[i : i + step]}}
            units.append(_Unit({"tool_calls": [fragment]}, 1))
    return units


def _finish(b: Behaviour, max_req: int | None, want: int, tools: bool) -> str:
    """Override, else tool_calls, else length when the budget was reached, else stop."""
    if b.finish_reason is not None:
        return b.finish_reason
    if tools:
        return "tool_calls"
    return "length" if max_req is not None and want >= max_req else "stop"


def plan_output(b: Behaviour, body: dict[str, Any], default_tokens: int) -> _Output:
    """Decide the whole response (reasoning, then content or tool calls) from behaviour and request."""
    max_req = _max_tokens(body)
    want = b.completion_tokens if b.completion_tokens is not None else max_req
    want = default_tokens if want is None else want
    n = max(0, min(want, max_req) if max_req is not None else want)
    thinking = not (b.honour_thinking_off and _thinking_off(body))
    reasoning = [w + " " for w in scripted_words(min(b.reasoning_tokens, n) if thinking else 0, REASONING_SEED)]
    units = _text_units(b.reasoning_field, reasoning, b.tokens_per_chunk)
    calls = _full_calls(b.tool_calls or []) if body.get("tools") else []
    content = [] if calls else _pieces(b, n - len(reasoning))
    units += _tool_units(calls, b.tool_args_piece)
    units += _text_units("content", content, b.tokens_per_chunk)
    out = _Output(units, _finish(b, max_req, want, bool(calls)), len(reasoning), sum(u.tokens for u in units))
    out.reasoning, out.content, out.tool_calls = "".join(reasoning), "".join(content), calls
    return out


def _rate(n: int, ms: float) -> float:
    """Tokens per second, 0 when no time was simulated."""
    return n * 1000.0 / ms if ms > 0 else 0.0


def _timings(b: Behaviour, prompt_n: int, cached: int, out: _Output) -> dict[str, Any]:
    """llama.cpp ``timings``: prompt_n is the uncached part; predicted_ms excludes the first chunk."""
    prompt_ms = float(prompt_n * b.prefill_ms_per_token)
    first = out.units[0].tokens if out.units else 0
    predicted_ms = float((out.completion_tokens - first) * b.decode_ms_per_token)
    return {
        "cache_n": cached,
        "prompt_n": prompt_n,
        "prompt_ms": prompt_ms,
        "prompt_per_second": _rate(prompt_n, prompt_ms),
        "predicted_n": out.completion_tokens,
        "predicted_ms": predicted_ms,
        "predicted_per_second": _rate(out.completion_tokens, predicted_ms),
    }


def _usage(b: Behaviour, prompt_n: int, cached: int, out: _Output) -> dict[str, Any]:
    """OpenAI usage object in the scripted dialect (cached field placement, reasoning details)."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_n,
        "completion_tokens": out.completion_tokens,
        "total_tokens": prompt_n + out.completion_tokens,
    }
    if b.report_cached and b.cached_field == "top_level":
        usage["cached_tokens"] = cached
    elif b.report_cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if out.reasoning_tokens:
        usage["completion_tokens_details"] = {"reasoning_tokens": out.reasoning_tokens}
    return usage


# --------------------------------------------------------------------------- HTTP plumbing


class _Aborted(Exception):
    """The scripted test engine dropped the connection on purpose."""


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    received_ns: int


@dataclass
class _Route:
    status: int
    body: bytes
    headers: dict[str, str]


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """Parse one HTTP/1.1 request; ``None`` at a clean end of connection."""
    line = await reader.readline()
    if not line:
        return None
    method, target, version = line.decode("latin-1").split()
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return _Request(method, target.split("?", 1)[0], headers, body, keep, time.perf_counter_ns())


def _parse_chat(raw: bytes) -> dict[str, Any] | None:
    """The chat request body if it is a JSON object with a list of message objects."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    return body if all(isinstance(m, dict) for m in body["messages"]) else None


def _head(status: int, headers: dict[str, str]) -> bytes:
    """Status line and headers."""
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "Server: scripted-test-engine"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str], keep: bool) -> None:
    """Send a complete response with ``Content-Length``."""
    all_headers = {"Content-Type": "application/json", **headers}
    all_headers |= {"Content-Length": str(len(body)), "Connection": "keep-alive" if keep else "close"}
    writer.write(_head(status, all_headers) + body)
    await writer.drain()


def _dumps(obj: Any) -> str:
    """Compact JSON with raw UTF-8, as llama.cpp emits it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _error_body(status: int, message: str) -> bytes:
    """OpenAI-style error object."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return _dumps({"error": {"code": status, "message": message, "type": kind}}).encode()


async def _sleep_ms(ms: float) -> None:
    """Precise-enough simulated work; zero costs nothing."""
    if ms > 0:
        await asyncio.sleep(ms / 1000.0)


class _SseWriter:
    """Writes SSE events as HTTP chunks, with the scripted framing quirks (drip, comments, no space)."""

    def __init__(self, writer: asyncio.StreamWriter, b: Behaviour) -> None:
        self._writer = writer
        self._b = b

    async def send(self, payloads: list[str]) -> None:
        """Send events together (one write unless dripping), flushing after each write."""
        sep = "" if self._b.no_space_after_colon else " "
        ping = ": ping\n\n" if self._b.sse_comments else ""
        data = "".join(f"{ping}data:{sep}{p}\n\n" for p in payloads).encode("utf-8")
        step = self._b.drip_bytes
        if not step:
            await self._chunk(data)
            return
        for i in range(0, len(data), max(1, step)):
            if i:
                await _sleep_ms(self._b.drip_delay_ms)
            await self._chunk(data[i : i + step])

    async def _chunk(self, data: bytes) -> None:
        self._writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await self._writer.drain()

    async def close(self) -> None:
        """Terminate the chunked body cleanly."""
        self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()

    def abort(self) -> NoReturn:
        """Drop the socket mid-body (RST-style), so no [DONE] and no terminating chunk arrive."""
        self._writer.transport.abort()
        raise _Aborted


class _Triggers:
    """Scripted mid-stream failures, each firing once at the first point N tokens were streamed."""

    def __init__(self, b: Behaviour) -> None:
        self._b = b
        self._malformed_sent = False

    async def fire(self, sse: _SseWriter, emitted: int) -> bool:
        """Run due failures; True when the stream has ended (error event + [DONE])."""
        b = self._b
        if b.disconnect_after_tokens is not None and emitted >= b.disconnect_after_tokens:
            sse.abort()
        if b.error_in_stream_after_tokens is not None and emitted >= b.error_in_stream_after_tokens:
            error = {"error": {"message": "scripted stream error", "code": 500}}
            await sse.send([_dumps(error), "[DONE]"])
            return True
        due = b.malformed_sse_after_tokens is not None and emitted >= b.malformed_sse_after_tokens
        if due and not self._malformed_sent:
            self._malformed_sent = True
            await sse.send(["{not json"])
        return False


# --------------------------------------------------------------------------- the server


@dataclass
class _Job:
    """One accepted chat request on its way through slot, prefill and decode."""

    body: dict[str, Any]
    b: Behaviour
    prompt: list[str]
    out: _Output
    cid: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))
    cached: int = 0
    stored: tuple[int, list[str]] | None = None
    """(slot, prompt) to remember after the response ends: ``store_delay_ms``."""


class ScriptedEngine:
    """The scripted test engine: start it, script ``behaviour``, point the plugin at ``base_url``."""

    def __init__(
        self, behaviour: Behaviour | None = None, *, model: str = "scripted-model", owned_by: str = "llamacpp"
    ) -> None:
        self.behaviour = behaviour or Behaviour()
        self.model = model
        self.owned_by = owned_by
        self.n_ctx = 8192
        self.default_completion_tokens = 16
        self.base_url = ""
        self.requests: list[dict[str, Any]] = []
        self.behaviour_for: Callable[[dict[str, Any]], Behaviour | None] | None = None
        """Per-request script: called with each chat body; a Behaviour it returns replaces ``behaviour``
        for that request only (None keeps ``behaviour``). Lets a test change the answer turn by turn."""
        self._routes: dict[tuple[str, str], _Route] = {}
        self._pool = _SlotPool(self.behaviour.slots)
        self._successes = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- public API

    @staticmethod
    def count_tokens(text: str) -> int:
        """Tokens the scripted tokenizer finds in ``text``."""
        return count_tokens(text)

    @staticmethod
    def count_prompt_tokens(messages: list[dict[str, Any]], default_system: str | None = None) -> int:
        """Prompt tokens the scripted tokenizer assigns to these chat messages."""
        return len(prompt_tokens(messages, default_system))

    def start(self) -> ScriptedEngine:
        """Bind a free loopback port and serve from a background thread."""
        if self._thread is not None:
            return self
        self._started.clear()
        self.base_url, self._startup_error = "", None
        self._thread = threading.Thread(target=self._run, name="scripted-test-engine", daemon=True)
        self._thread.start()
        self._started.wait(timeout=5)
        if self._startup_error is not None or not self.base_url:
            self._thread.join(timeout=2)
            self._thread = None
            raise RuntimeError("scripted test engine failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Cancel in-flight streams, close the socket and join the thread (within 2 s)."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)
        thread.join(timeout=2.0)
        self._thread = None
        if thread.is_alive():
            raise RuntimeError("scripted test engine thread did not stop within 2 s")

    def __enter__(self) -> ScriptedEngine:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reset_cache(self) -> None:
        """Forget every slot's remembered prompt (cold cache)."""
        self._pool.reset()

    def set_route(
        self,
        method: str,
        path: str,
        status: int,
        body: dict[str, Any] | str | bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serve a canned response (dict as JSON, str as text, bytes as they are, even invalid UTF-8);
        overrides built-in endpoints."""
        kind = "application/json" if isinstance(body, dict) else "text/plain; charset=utf-8"
        raw = body if isinstance(body, bytes) else (_dumps(body) if isinstance(body, dict) else body).encode()
        headers = {k.title(): v for k, v in (headers or {}).items()}
        self._routes[(method.upper(), path)] = _Route(status, raw, {"Content-Type": kind, **headers})

    # ---- thread and loop

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start(); a server thread must not die silently
            self._startup_error = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0, backlog=1024)
        self.base_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._started.set()
        await self._stop_event.wait()
        server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while (req := await _read_request(reader)) is not None:
                await self._dispatch(req, writer)
                if not req.keep_alive:
                    break
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError, _Aborted, ValueError):
            pass  # client went away, scripted abort, garbage request, or shutdown
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    # ---- routing

    async def _dispatch(self, req: _Request, writer: asyncio.StreamWriter) -> None:
        route = self._routes.get((req.method, req.path))
        if route is not None:
            await _respond(writer, route.status, route.body, route.headers, req.keep_alive)
        elif (req.method, req.path) == ("POST", "/v1/chat/completions"):
            await self._chat(req, writer)
        else:
            status, payload = self._builtin(req)
            await _respond(writer, status, _dumps(payload).encode(), {}, req.keep_alive)

    def _builtin(self, req: _Request) -> tuple[int, Any]:
        """llama.cpp-like metadata endpoints."""
        key = (req.method, req.path)
        if key == ("GET", "/health"):
            return 200, {"status": "ok"}
        if key == ("GET", "/v1/models"):
            return 200, {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "owned_by": self.owned_by}],
            }
        if key == ("GET", "/props"):
            settings = {"n_ctx": self.n_ctx}
            slots = self.behaviour.slots
            return 200, {
                "build_info": "b11434-scripted",
                "total_slots": slots,
                "default_generation_settings": settings,
            }
        if key == ("POST", "/tokenize"):
            content = str(json.loads(req.body or b"{}").get("content", ""))
            return 200, {"tokens": [token_id(t) for t in _TOKEN_RE.findall(content)]}
        return 404, {"error": {"code": 404, "message": f"no route {req.method} {req.path}", "type": "not_found_error"}}

    # ---- chat completions

    async def _chat(self, req: _Request, writer: asyncio.StreamWriter) -> None:
        body = _parse_chat(req.body)
        if body is None:
            await _respond(writer, 400, _error_body(400, "invalid chat request"), {}, req.keep_alive)
            return
        scripted = self.behaviour_for(body) if self.behaviour_for is not None else None
        b = scripted or self.behaviour
        self.requests.append({**body, "_received_ns": req.received_ns})
        await _sleep_ms(b.headers_delay_ms)
        prompt = prompt_tokens(body["messages"], b.default_system_prompt)
        status, message = self._refusal(b, body, prompt)
        if status:
            await _respond(writer, status, _error_body(status, message), {}, req.keep_alive)
            return
        self._successes += 1
        job = _Job(body, b, prompt, plan_output(b, body, self.default_completion_tokens))
        if body.get("stream") is True:
            await self._stream(job, writer)
        else:
            await self._complete(job, writer, req.keep_alive)

    def _refusal(self, b: Behaviour, body: dict[str, Any], prompt: list[str]) -> tuple[int, str]:
        """Scripted HTTP failures and llama.cpp's own request errors; (0, "") to proceed."""
        if b.http_status is not None:
            return b.http_status, f"scripted status {b.http_status}"
        if b.http_500_after is not None and self._successes >= b.http_500_after:
            return 500, "scripted failure"
        slot = body.get("id_slot", -1)
        if not isinstance(slot, int) or not -1 <= slot < max(b.slots, 1):
            return 400, f"invalid id_slot {slot!r}"
        if len(prompt) > self.n_ctx:
            return 400, "the request exceeds the available context size, try increasing it"
        return 0, ""

    async def _acquire(self, job: _Job) -> int:
        """Take a slot (FIFO), compute the cache hit, remember this prompt, and simulate prefill."""
        self._pool.resize(max(job.b.slots, 1))
        pinned = job.body.get("id_slot", -1)
        slot = await self._pool.acquire(job.prompt, None if pinned == -1 else pinned)
        job.cached = _cached_tokens(job.b, job.body, self._pool.memory[slot], job.prompt)
        if job.b.store_delay_ms > 0:  # stored asynchronously after the response, like oMLX's cache
            self._pool.memory[slot], job.stored = [], (slot, job.prompt)
        else:
            self._pool.memory[slot] = job.prompt
        try:
            await _sleep_ms((len(job.prompt) - job.cached) * job.b.prefill_ms_per_token)
        except BaseException:
            self._pool.release(slot)
            raise
        return slot

    def _store_later(self, job: _Job) -> None:
        """Remember the prompt ``store_delay_ms`` after the response (its slot may be reused by then)."""
        if job.stored is not None:
            slot, prompt = job.stored
            loop = asyncio.get_running_loop()
            loop.call_later(job.b.store_delay_ms / 1000, self._pool.memory.__setitem__, slot, prompt)

    async def _stream(self, job: _Job, writer: asyncio.StreamWriter) -> None:
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        writer.write(_head(200, headers | {"Transfer-Encoding": "chunked", "Connection": "keep-alive"}))
        await writer.drain()
        sse = _SseWriter(writer, job.b)
        slot = await self._acquire(job)
        try:
            await self._stream_units(job, sse)
            await sse.close()
        finally:
            self._pool.release(slot)
            self._store_later(job)

    def _chunk(self, job: _Job, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {
            "id": job.cid,
            "object": "chat.completion.chunk",
            "created": job.created,
            "model": self.model,
            "choices": [choice],
        }

    async def _stream_units(self, job: _Job, sse: _SseWriter) -> None:
        """Token chunks with decode pacing and scripted failures, then usage and [DONE]."""
        b, out, triggers = job.b, job.out, _Triggers(job.b)
        units = out.units or [_Unit({}, 0)]
        options = job.body.get("stream_options") or {}
        usage_chunk = options.get("include_usage") is True and b.send_usage
        emitted = 0
        for i, unit in enumerate(units):
            if await triggers.fire(sse, emitted):
                return
            if i:
                await _sleep_ms(unit.tokens * b.decode_ms_per_token)
            last = i == len(units) - 1
            chunk = self._chunk(job, unit.delta, out.finish_reason if last else None)
            if last and b.send_timings and not usage_chunk:
                chunk["timings"] = _timings(b, len(job.prompt) - job.cached, job.cached, out)
            role = [_dumps(self._chunk(job, {"role": "assistant"}, None))] if i == 0 and b.role_chunk else []
            await sse.send([*role, _dumps(chunk)])
            emitted += unit.tokens
        if await triggers.fire(sse, emitted):
            return
        if usage_chunk:
            await sse.send([_dumps(self._usage_chunk(job))])
        await sse.send(["[DONE]"])

    def _usage_chunk(self, job: _Job) -> dict[str, Any]:
        prompt_n = len(job.prompt)
        chunk = {
            "id": job.cid,
            "object": job.b.usage_object,
            "created": job.created,
            "model": self.model,
            "choices": [],
            "usage": _usage(job.b, prompt_n, job.cached, job.out),
        }
        if job.b.send_timings:
            chunk["timings"] = _timings(job.b, prompt_n - job.cached, job.cached, job.out)
        return chunk

    async def _complete(self, job: _Job, writer: asyncio.StreamWriter, keep: bool) -> None:
        """Non-streamed chat.completion after the same simulated prefill and decode time."""
        slot = await self._acquire(job)
        try:
            first = job.out.units[0].tokens if job.out.units else 0
            await _sleep_ms((job.out.completion_tokens - first) * job.b.decode_ms_per_token)
        finally:
            self._pool.release(slot)
            self._store_later(job)
        await _respond(writer, 200, _dumps(self._completion(job)).encode(), {}, keep)

    def _completion(self, job: _Job) -> dict[str, Any]:
        b, out = job.b, job.out
        message: dict[str, Any] = {"role": "assistant", "content": out.content or None}
        if out.reasoning:
            message[b.reasoning_field] = out.reasoning
        if out.tool_calls:
            message["tool_calls"] = out.tool_calls
        result: dict[str, Any] = {
            "id": job.cid,
            "object": "chat.completion",
            "created": job.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": out.finish_reason}],
        }
        if b.send_usage:
            result["usage"] = _usage(b, len(job.prompt), job.cached, out)
        if b.send_timings:
            result["timings"] = _timings(b, len(job.prompt) - job.cached, job.cached, out)
        return result
