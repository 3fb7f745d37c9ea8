"""The RabbitMQ dispatcher: many gateway processes, one queue per model, one set of slot counts.

How it works, and why the schedulers live in the gateways: see dispatcher.py, scheduler.py and
watch.py, and README's "Scaling out".
"""

from flotilla.gateway.dispatch.rabbitmq.dispatcher import RabbitMqDispatcher

__all__ = ["RabbitMqDispatcher"]
