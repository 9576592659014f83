"""Measurement beside the request path: metrics over records, output validity, memory and power samplers,
the machine description and the MTP axis."""
