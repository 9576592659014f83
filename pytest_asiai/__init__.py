"""pytest-asiai: benchmarks of local LLM inference engines as pytest suites.

PYTEST_DONT_REWRITE: this package module holds no assertions. The marker keeps pytest >= 9.2 from
warning "Module already imported so cannot be rewritten" when pytest runs in-process a second time
(pytester), since 9.2 marks editable-installed plugins for rewriting.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
