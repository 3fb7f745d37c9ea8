"""Fixtures of the chart tests; the helpers live in chartkit.py (a unique module name: every test
folder's conftest is `conftest`, so importing helpers from it depends on collection order)."""

from chartkit import helm  # noqa: F401  (session fixture: a real helm)
