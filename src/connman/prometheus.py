"""Prometheus metrics for a `ConnectionManager` (`pip install 'connman[prometheus]'`).

Importing this module imports `prometheus_client`; importing `connman` does not.

    import connman.prometheus

    server = connman.prometheus.serve(manager, 9464)   # http://127.0.0.1:9464/metrics
    ...
    server.close()

Or register the collector with a registry you already serve:
`connman.prometheus.register(manager, registry=prometheus_client.REGISTRY)`.

Metrics (every series also has `server_address`, `server_port` and `pool`, "" when not pooled):

- `connman_connections{state}`: connections by state now (connecting, connected, waiting, failed,
  closed), a gauge computed at scrape time;
- `connman_resets_total{cause}`: established connections lost (eof, reset, half-open, reconnect, ...);
- `connman_connect_attempts_total{outcome}`: attempts by outcome: "connected", or the cause of the
  failure (refused, timeout, dns, tls, ...);
- `connman_connect_seconds`: a histogram of the time successful attempts took (resolution, TCP connect,
  TLS handshake), in seconds.

See docs/observability.md for a sample scrape and queries.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from . import events
from ._metrics import CONNECT_BUCKETS, PoolIndex, connections_by_state, outcome_of, server_of
from .manager import ConnectionManager

__all__ = ["ManagerCollector", "MetricsServer", "register", "serve"]

_WHERE: Final = ("server_address", "server_port", "pool")

_Where = tuple[str, str, str]


class ManagerCollector(Collector):
    """A `prometheus_client` collector of one manager's connections; see the module docstring.

    Made by `register()` or `serve()`. It counts from the manager's events (one update per state
    change, under a lock) and reads the connections' states when scraped.

    Args:
        manager: The manager to observe.
        buckets: Upper bounds of the `connman_connect_seconds` buckets, in seconds, increasing.
    """

    def __init__(self, manager: ConnectionManager, *, buckets: Sequence[float] = CONNECT_BUCKETS) -> None:
        bounds = [float(bound) for bound in buckets]
        if not bounds or any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"buckets must be increasing upper bounds in seconds, not {buckets!r}")
        self._manager = manager
        self._bounds = bounds
        self._lock = threading.Lock()
        self._resets: Counter[tuple[_Where, str]] = Counter()
        self._attempts: Counter[tuple[_Where, str]] = Counter()
        #: where -> (count per bucket, not cumulative, +Inf last; sum of the observations)
        self._latency: dict[_Where, tuple[list[int], float]] = {}
        self._pools = PoolIndex()
        self._unsubscribe = manager.subscribe(self._on_event)
        self._pools.scan(manager)

    def close(self) -> None:
        """Stop counting (unsubscribe from the manager); what was counted stays."""
        self._unsubscribe()

    def _where(self, event: events.Event) -> _Where:
        address, port = server_of(event.endpoint)
        return address, "" if port is None else str(port), self._pools.pool_of(event.conn) or ""

    def _on_event(self, event: events.Event) -> None:
        self._pools.update(event)
        if isinstance(event, events.Lost):
            with self._lock:
                self._resets[self._where(event), event.cause.value] += 1
        elif isinstance(event, (events.AttemptFailed, events.Connected)):
            where = self._where(event)
            with self._lock:
                self._attempts[where, outcome_of(event)] += 1
                if isinstance(event, events.Connected):
                    counts, total = self._latency.get(where) or ([0] * (len(self._bounds) + 1), 0.0)
                    counts[bisect.bisect_left(self._bounds, event.latency)] += 1  # "le": bound included
                    self._latency[where] = (counts, total + event.latency)

    def describe(self) -> Iterable[Metric]:
        """The metric families, without samples (so registering does not collect)."""
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        """The metric families with their samples now."""
        connections, resets, attempts, latency = self._families()
        gauge = sorted(
            ((host, "" if port is None else str(port), pool or "", state.value), count)
            for (host, port, pool, state), count in connections_by_state(self._manager).items()
        )
        for labels, count in gauge:
            connections.add_metric(list(labels), count)
        with self._lock:
            reset_counts = sorted(self._resets.items())
            attempt_counts = sorted(self._attempts.items())
            latencies = sorted(
                (where, (list(counts), total)) for where, (counts, total) in self._latency.items()
            )
        for (where, cause), count in reset_counts:
            resets.add_metric([*where, cause], count)
        for (where, outcome), count in attempt_counts:
            attempts.add_metric([*where, outcome], count)
        for where, (counts, total) in latencies:
            cumulative, buckets = 0, []
            for bound, count in zip([*map(_le, self._bounds), "+Inf"], counts, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            latency.add_metric(list(where), buckets, total)
        return [connections, resets, attempts, latency]

    def _families(
        self,
    ) -> tuple[GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily, HistogramMetricFamily]:
        return (
            GaugeMetricFamily(
                "connman_connections", "Managed connections by state, now.", labels=[*_WHERE, "state"]
            ),
            CounterMetricFamily(
                "connman_resets", "Established connections lost, by cause.", labels=[*_WHERE, "cause"]
            ),
            CounterMetricFamily(
                "connman_connect_attempts",
                'Connection attempts by outcome: "connected" or the cause of the failure.',
                labels=[*_WHERE, "outcome"],
            ),
            HistogramMetricFamily(
                "connman_connect_seconds",
                "Time successful attempts took (resolution, TCP connect, TLS handshake).",
                labels=list(_WHERE),
                unit="seconds",
            ),
        )


def _le(bound: float) -> str:
    return repr(bound)


def register(
    manager: ConnectionManager,
    registry: CollectorRegistry,
    *,
    buckets: Sequence[float] = CONNECT_BUCKETS,
) -> ManagerCollector:
    """Make a `ManagerCollector` for `manager` and register it with `registry`.

    Pass `prometheus_client.REGISTRY` to add connman's metrics to the process-wide registry that
    `prometheus_client.start_http_server()` serves by default.
    """
    collector = ManagerCollector(manager, buckets=buckets)
    registry.register(collector)
    return collector


class MetricsServer:
    """A running Prometheus endpoint (from `serve()`): `close()` stops it."""

    def __init__(
        self, manager_collector: ManagerCollector, registry: CollectorRegistry, port: int, addr: str
    ):
        self.collector = manager_collector
        self.registry = registry
        self._server, self._thread = start_http_server(port, addr, registry=registry)
        #: The port it listens on (the one the kernel picked, for port 0).
        self.port: int = self._server.server_port
        self.addr = addr

    @property
    def url(self) -> str:
        """`http://ADDR:PORT/metrics`."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving, free the port and stop counting."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self.collector.close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def serve(manager: ConnectionManager, port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve `manager`'s metrics at `http://ADDR:PORT/metrics` from a daemon thread.

    The endpoint has a registry of its own holding only connman's metrics (no process metrics).
    This is what `connman watch --metrics-port PORT` runs.

    Args:
        manager: The manager to observe.
        port: TCP port, 0..65535 (0 lets the kernel pick: see `MetricsServer.port`).
        addr: Address to listen on; loopback by default. "0.0.0.0" exposes it on every interface.

    Raises:
        TypeError / ValueError: A bad port or address.
        OSError: The port is in use.
    """
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int in 0..65535, not {port!r}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, not {port!r}")
    if not isinstance(addr, str) or not addr:
        raise TypeError(f"addr must be a non-empty str (an address to listen on), not {addr!r}")
    registry = CollectorRegistry(auto_describe=True)
    collector = register(manager, registry)
    try:
        return MetricsServer(collector, registry, port, addr)
    except BaseException:
        collector.close()
        raise
