"""Fixtures of the compatibility suite; the helpers live in compatkit.py (a unique module name:
every test folder's conftest is `conftest`, so importing helpers from it depends on collection order)."""

from compatkit import backend, llamacpp_backend, sim_backend  # noqa: F401
