"""Quality gates: one declaration (:class:`~pytest_asiai.gates.verdict.Gate`), thresholds resolved
once (:mod:`~pytest_asiai.gates.thresholds`), pure verdicts (``verdict``, ``phases``, ``reuse``), then
one path: record and conclude (:mod:`~pytest_asiai.gates.path`); user-written gates (``user``).

``evaluate``, ``check`` and ``conclude`` are the public names users' own gates call."""

from pytest_asiai.gates.core import check, evaluate
from pytest_asiai.gates.path import conclude

__all__ = ["check", "conclude", "evaluate"]
