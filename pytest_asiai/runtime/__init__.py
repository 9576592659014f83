"""The pytest runtime: per-session state, fixtures, xdist scheduling, termination, progress and the built-in
suites."""
