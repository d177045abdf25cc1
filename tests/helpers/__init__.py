"""Plain helper modules the tests share (no fixtures: those are in tests/conftest.py).

``tests/`` is on the import path (``pythonpath`` in pyproject.toml), so any test imports them as
``from helpers.tiny_models import tiny_whisper_dir``. No test module imports another test module.
"""
