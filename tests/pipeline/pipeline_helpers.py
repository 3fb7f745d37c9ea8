"""Shared by the pipeline tests (a module of its own: `conftest` names several modules in this suite)."""

from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
