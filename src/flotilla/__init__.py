"""Flotilla: share LLMs among many users from one spec file."""

__version__ = "0.1.0"
