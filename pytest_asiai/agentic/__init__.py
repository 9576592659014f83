"""The agentic protocol: prompts, calibration to the engine's tokens, the phases and their results, read
from one of two record sources: the live runner (runner) or a recording (replay, recordings, asiai_format)."""
