"""Endurance: long tool-call trajectories over a simulated repository with a growing context.

suite (the fixture's object, scenarios, figures), trajectory (the turn-by-turn runner), steps (task
list, probes, judging), growth (token plan, calibration, padding), history (messages, tools,
scoring), turns (per-turn report dicts), profiles, simrepo (the simulated repository), gates.

The plugin provides the ``endurance`` fixture (pytest_asiai/runtime/fixtures.py); ``endurance_fixture``
stays importable here for suites written against the earlier documented import."""

from pytest_asiai.runtime.fixtures import endurance as endurance_fixture

__all__ = ["endurance_fixture"]
