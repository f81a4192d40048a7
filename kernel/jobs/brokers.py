"""The job queue's broker: taskiq in process (embedded default) or on RabbitMQ (scale-out).

RabbitMQ through ``taskiq-aio-pika``: a durable quorum queue, messages persisted, and a message is
acknowledged only after the job ran (taskiq's default acknowledgement), so a worker that dies
mid-job leaves the message to be redelivered to another worker — the job itself is idempotent
(``kernel.jobs.runner``). The exchange and queue names come from settings so that two deployments on
one RabbitMQ never consume each other's jobs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from taskiq import AsyncBroker, InMemoryBroker
from taskiq_aio_pika import AioPikaBroker, Exchange, Queue

from kernel.settings import JobsSettings

NETWORKED_SCHEMES = ("amqp", "amqps")


def make_broker(settings: JobsSettings) -> AsyncBroker:
    if settings.broker_url is None:
        return InMemoryBroker()
    url = settings.broker_url.get_secret_value()
    scheme = urlsplit(url).scheme
    if scheme not in NETWORKED_SCHEMES:
        raise ValueError(
            f"jobs.broker_url: unsupported scheme {scheme!r} (use amqp:// or amqps://)"
        )
    return AioPikaBroker(
        url,
        qos=settings.concurrency,
        exchange=Exchange(name=settings.queue),
        task_queues=[Queue(name=settings.queue)],
    )


def runs_in_process(broker: AsyncBroker) -> bool:
    return isinstance(broker, InMemoryBroker)
