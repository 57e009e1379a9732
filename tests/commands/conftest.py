"""Fixtures of the command tests: the analysis tests' small stores."""
from tests.analysis.store_factory import tiny, tiny_store  # noqa: F401 (pytest fixtures)
