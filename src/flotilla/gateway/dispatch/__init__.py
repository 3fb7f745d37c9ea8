"""Dispatchers: who gets the next free replica slot."""

from flotilla.gateway.dispatch.base import (
    Dispatcher,
    Lease,
    ModelUnavailable,
    QueueFull,
    QueueTimeout,
    Ticket,
)
from flotilla.gateway.dispatch.local import LocalDispatcher

__all__ = ["Dispatcher", "Lease", "LocalDispatcher", "ModelUnavailable", "QueueFull", "QueueTimeout", "Ticket"]
