"""The wire: the streaming chat client, SSE framing, burst dispatch, and the per-request records they produce."""
