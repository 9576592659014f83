"""pytest-asiai: benchmarks of local LLM inference engines as pytest suites."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
