"""Fixtures for the analysis tests: the tiny synthetic store of store_factory."""
from tests.analysis.store_factory import tiny, tiny_store  # noqa: F401 (pytest fixtures)
