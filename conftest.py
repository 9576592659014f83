"""Root conftest: pytest-asiai itself is loaded through its ``pytest11`` entry point.

Nothing is configured here on purpose, so that ``suites/`` behave exactly as they do in a user's
project with the plugin installed. Add project-wide fixtures for your own gates here.
"""
