"""Plain helper modules shared by tests (fixtures stay in conftest.py)."""
