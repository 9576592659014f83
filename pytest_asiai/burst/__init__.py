"""Burst mode: simultaneous calls released together and the serialization verdict they earn.

``runner`` (the ``burst`` fixture's object and the sizes), ``calls`` (each call's prompt, answer and
record), ``analysis`` (one pass, then all passes), ``serialization`` (the verdict), ``gates``."""
