"""The built-in suites; the wheel ships them as ``pytest_asiai.suites`` (see pytest_asiai/runtime/suites.py)."""
