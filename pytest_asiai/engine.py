"""The ``engine`` fixture's object: one case's engine, started on demand when it is managed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from .engines import EngineFamily, family_for
from .managed import EngineManager, ManagedEngine
from .matrix import Case


class EngineHandle:
    """Name, kind, URL, model, MTP, version and capabilities of one case's engine."""

    def __init__(self, case: Case, manager: EngineManager, on_start: Callable[[EngineHandle], None]) -> None:
        self.case = case
        self.family: EngineFamily = family_for(case.kind)
        self._manager = manager
        self._on_start = on_start
        self._managed: ManagedEngine | None = None
        self.version: str | None = None
        self.capabilities: dict[str, Any] = {}
        self._described = False

    name = property(lambda self: self.case.engine)
    model = property(lambda self: self.case.model_id)
    mtp = property(lambda self: self.case.mtp)

    @property
    def kind(self) -> str:
        return self.family.kind

    @property
    def managed(self) -> bool:
        return self.case.managed is not None

    @property
    def base_url(self) -> str | None:
        if self._managed is not None:
            return self._managed.base_url
        return self.case.base_url

    @property
    def pid(self) -> int | None:
        return self._managed.pid if self._managed else None

    def ensure_running(self) -> str:
        """Start a managed engine if needed (stopping any other one); return the base URL."""
        if self.case.managed is not None:
            self._managed = self._manager.ensure(self.case)
        url = self.base_url
        assert url is not None, "a case has a base_url or a managed command"
        if not self._described:
            self._described = True
            with httpx.Client(timeout=5.0) as http:
                self.version = self.family.version(http, url)
            self._on_start(self)
        return url

    def restart(self) -> str:
        """Restart a managed engine (its in-memory caches are lost)."""
        if self.case.managed is None:
            raise RuntimeError(f"engine {self.case.engine} is not managed by pytest-asiai: it cannot be restarted")
        self._managed = self._manager.ensure(self.case)
        return self._managed.restart()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "model": self.model,
            "mtp": self.mtp,
            "version": self.version,
            "capabilities": self.capabilities,
            "managed": self.managed,
            "pid": self.pid,
        }
