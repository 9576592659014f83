"""Burst mode: simultaneous calls released together and the serialization verdict they earn."""
