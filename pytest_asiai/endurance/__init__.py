"""Endurance: long tool-call trajectories over a simulated repository with a growing context.

``endurance_fixture`` is the public fixture (README, "Endurance")."""

from pytest_asiai.endurance.suite import endurance_fixture

__all__ = ["endurance_fixture"]
