"""Quality gates: thresholds resolved from defaults, ini, engines.toml and the command line, and the verdicts.

``evaluate``, ``check`` and ``conclude`` are the public names users' own gates call."""

from pytest_asiai.gates.core import check, conclude, evaluate

__all__ = ["check", "conclude", "evaluate"]
