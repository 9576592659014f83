"""The pytest runtime: per-session state and per-case contexts, fixtures, xdist scheduling, termination,
progress and the built-in suites."""
