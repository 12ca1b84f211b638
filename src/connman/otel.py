"""OpenTelemetry metrics for a `ConnectionManager` (`pip install 'connman[otel]'`).

Importing this module imports `opentelemetry-api`; importing `connman` does not. connman uses only the
API: the application configures the SDK (a `MeterProvider` with its readers and exporters) as usual.

    import connman.otel

    instrumentation = connman.otel.instrument(manager)   # the global MeterProvider, or pass one
    ...
    instrumentation.uninstrument()

Instruments (meter "connman"), with attributes in the style of the semantic conventions; every one
has `server.address` and `server.port`, and `pool.name` when the connection is pooled:

- `connman.connection.count` (`{connection}`, an observable up-down counter): connections now, by
  `state` (connecting, connected, waiting, failed, closed);
- `connman.connection.resets` (`{reset}`, a counter): established connections lost, by `cause`;
- `connman.connection.attempts` (`{attempt}`, a counter): attempts by `outcome` ("connected", or the
  cause of the failure, which is also in `error.type`);
- `connman.connection.create_time` (`s`, a histogram): the time successful attempts took.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from . import events
from ._metrics import CONNECT_BUCKETS, PoolIndex, connections_by_state, outcome_of, server_of
from ._version import __version__
from .manager import ConnectionManager

__all__ = ["Instrumentation", "instrument"]

_Attributes = dict[str, str | int]


class Instrumentation:
    """The instruments of one manager (from `instrument()`); `uninstrument()` stops them."""

    def __init__(self, manager: ConnectionManager, meter_provider: MeterProvider | None = None) -> None:
        self._manager = manager
        self._active = True
        self._lock = threading.Lock()
        meter = metrics.get_meter("connman", __version__, meter_provider=meter_provider)
        self._resets = meter.create_counter(
            "connman.connection.resets", unit="{reset}", description="Established connections lost, by cause."
        )
        self._attempts = meter.create_counter(
            "connman.connection.attempts",
            unit="{attempt}",
            description='Connection attempts by outcome: "connected" or the cause of the failure.',
        )
        self._create_time = meter.create_histogram(
            "connman.connection.create_time",
            unit="s",
            description="Time successful attempts took (resolution, TCP connect, TLS handshake).",
            explicit_bucket_boundaries_advisory=CONNECT_BUCKETS,
        )
        meter.create_observable_up_down_counter(
            "connman.connection.count",
            callbacks=[self._observe_count],
            unit="{connection}",
            description="Managed connections by state, now.",
        )
        self._pools = PoolIndex()
        self._unsubscribe = manager.subscribe(self._on_event)
        self._pools.scan(manager)

    def uninstrument(self) -> None:
        """Stop recording: unsubscribe, and report no more connection counts.

        The instruments stay registered: the OpenTelemetry API cannot remove one."""
        self._active = False
        self._unsubscribe()

    def _where(self, event: events.Event) -> _Attributes:
        address, port = server_of(event.endpoint)
        attributes: _Attributes = {"server.address": address}
        if port is not None:
            attributes["server.port"] = port
        pool = self._pools.pool_of(event.conn)
        if pool is not None:
            attributes["pool.name"] = pool
        return attributes

    def _on_event(self, event: events.Event) -> None:
        self._pools.update(event)
        if isinstance(event, events.Lost):
            self._resets.add(1, {**self._where(event), "cause": event.cause.value})
        elif isinstance(event, events.AttemptFailed):
            outcome = outcome_of(event)
            self._attempts.add(1, {**self._where(event), "outcome": outcome, "error.type": outcome})
        elif isinstance(event, events.Connected):
            where = self._where(event)
            self._attempts.add(1, {**where, "outcome": outcome_of(event)})
            self._create_time.record(event.latency, where)

    def _observe_count(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self._active:
            return []
        observations = []
        for (host, port, pool, state), count in connections_by_state(self._manager).items():
            attributes: _Attributes = {"server.address": host, "state": state.value}
            if port is not None:
                attributes["server.port"] = port
            if pool is not None:
                attributes["pool.name"] = pool
            observations.append(Observation(count, attributes))
        return observations


def instrument(manager: ConnectionManager, *, meter_provider: MeterProvider | None = None) -> Instrumentation:
    """Record `manager`'s connection metrics with the OpenTelemetry metrics API.

    Args:
        manager: The manager to observe (`connman.default_manager()` for the module-level functions).
        meter_provider: Where the instruments come from; None uses the global one
            (`opentelemetry.metrics.set_meter_provider()`).

    Returns:
        The `Instrumentation`; call `uninstrument()` to stop.
    """
    return Instrumentation(manager, meter_provider)
