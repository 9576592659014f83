"""The wire: how a request is built, sent and measured, the same way for every suite.

requests (the one request builder and its precedence, docs/requests.md), client (the one client:
connection pool, keep-alive policy, ``Timeouts``), exchange, framing and http (one HTTP/1.1
exchange on a socket), stream (the per-stream rules: tokens, usage, classification), failures
(error messages), sse (SSE decoding), dispatch (burst release), records and serialize (the
immutable per-request record and its JSON form).
"""
