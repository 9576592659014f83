"""Measurement beside the request path: metrics over request records (metrics), output validity
(validity), the psutil samplers of swap and engine memory (samplers, locator, solo), power (power,
power_backends), the machine description (machine) and the MTP axis (mtp)."""
