"""The ``engine`` fixture's object: one case's engine, started on demand when it is managed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from pytest_asiai.config.matrix import Case
from pytest_asiai.engines import EngineFamily, family_for
from pytest_asiai.engines.managed import EngineManager, ManagedEngine
from pytest_asiai.engines.probe import auth_headers
from pytest_asiai.engines.startup import describe_engine


class EngineHandle:
    """Name, kind, URL, model, MTP, version and capabilities of one case's engine."""

    def __init__(
        self, case: Case, manager: EngineManager, on_start: Callable[[EngineHandle], None], *, solo: str = "check"
    ) -> None:
        self.case = case
        self._family: EngineFamily | None = family_for(case.kind) if case.kind else None
        self.detected = False
        """True when engines.toml gave no kind and detection chose the family at start."""
        self.solo = solo
        """``stop``: before measuring, stop every other engine this plugin started (never others)."""
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
    def family(self) -> EngineFamily:
        """The engine's family; without a kind in engines.toml, asking starts the engine and detects it."""
        if self._family is None and self.case.replay is None and (self.case.base_url or self.case.managed):
            self.ensure_running()
        return self._family or family_for(None)

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
        elif self.solo == "stop":
            self._manager.stop_all()
        url = self.base_url
        assert url is not None, "a case has a base_url or a managed command"
        if not self._described:
            self._described = True
            info = describe_engine(self.case.kind, url, api_key=self.case.api_key)
            self._family, self.detected = info.family, info.detected
            self.version, self.capabilities = info.version, info.capabilities
            self._on_start(self)
        return url

    def reset_cache(self) -> str:
        """Make the next request truly cold; returns the method used (see EngineFamily.cold_method).

        ``request``: the family's cold_fields must go into that request; ``endpoint``/``unload``: done
        now through the engine's API; ``restart``: a managed engine was restarted; ``salt``: nothing
        can be reset, the caller must salt the prompt.
        """
        url = self.ensure_running()
        family = self.family
        if family.cold_fields():
            return "request"
        with httpx.Client(timeout=300.0, trust_env=False, headers=auth_headers(self.case.api_key)) as http:
            done = family.reset_cache(http, url, self.model)
        if done is not None:
            return done
        if self.managed and family.cold_method == "restart":
            self.restart()
            return "restart"
        return "salt"

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
            "detected": self.detected,
            "capabilities": self.capabilities,
            "managed": self.managed,
            "pid": self.pid,
            "settings": self._launch_settings(),
        }

    def _launch_settings(self) -> dict[str, str]:
        """What the family says about the launch (without starting or detecting the engine)."""
        if self._family is None:
            return {}
        spec = self.case.managed
        return self._family.launch_settings(spec.command if spec else None, spec.env if spec else {})
