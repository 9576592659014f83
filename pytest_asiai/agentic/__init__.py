"""The agentic protocol: prompts, calibration to the engine's tokens, the phases and their runner, and replay
of recorded results."""
