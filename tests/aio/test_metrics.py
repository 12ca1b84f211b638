"""The metric exporters against a real server that restarts: Prometheus scraped from a real
`prometheus_client` HTTP endpoint on loopback, and OpenTelemetry through the real SDK's in-memory
reader, both on at once, both telling the same story."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import connman
import connman.otel
import connman.prometheus
from connman.testing import EchoServer
from tests.conftest import FAST, Recorder

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str) -> Samples:
    def get() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body.decode()

    text = await asyncio.to_thread(get)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)


def otel_points(reader: InMemoryMetricReader, name: str) -> list[NumberDataPoint | HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    points: list[NumberDataPoint | HistogramDataPoint] = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    points += metric.data.data_points  # type: ignore[arg-type]
    return points


def otel_sum(reader: InMemoryMetricReader, name: str, **attributes: object) -> float:
    wanted = set(attributes.items())
    return sum(
        point.value
        for point in otel_points(reader, name)
        if isinstance(point, NumberDataPoint) and wanted <= set((point.attributes or {}).items())
    )


@pytest.fixture
def otel() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    """A real SDK meter provider of the test's own (not the global one) and its in-memory reader."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


async def test_three_restarts_are_three_resets_in_the_scrape_and_in_the_otel_reader(
    cm: connman.ConnectionManager, otel: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = otel
    instrumentation = connman.otel.instrument(cm, meter_provider=provider)
    recorder = Recorder()
    cm.subscribe(lambda event: recorder.add(type(event).__name__))
    with connman.prometheus.serve(cm, 0) as endpoint:
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"
        async with EchoServer() as server:
            conn = cm.connect(server.port, "127.0.0.1", backoff=FAST)
            await recorder.wait("Connected")
            for restart in range(1, 4):
                await server.stop()  # down: the client's attempts are refused meanwhile
                await recorder.wait("AttemptFailed", restart)
                await server.start()
                await recorder.wait("Connected", restart + 1)
            samples = await scrape(endpoint.url)
            where = {"server_address": "127.0.0.1", "server_port": str(server.port), "pool": ""}
            assert total(samples, "connman_resets_total") == 3
            assert total(samples, "connman_resets_total", cause="eof", **where) == 3
            assert total(samples, "connman_connections", state="connected", **where) == 1
            assert total(samples, "connman_connections", state="waiting") == 0  # present, and 0
            refused = recorder.count("AttemptFailed")
            assert total(samples, "connman_connect_attempts_total", outcome="connected") == 4
            assert total(samples, "connman_connect_attempts_total", outcome="refused") == refused
            assert total(samples, "connman_connect_seconds_count", **where) == 4
            assert total(samples, "connman_connect_seconds_bucket", le="+Inf") == 4
            assert 0 < total(samples, "connman_connect_seconds_sum") < 4 * 5

            port = server.port
            assert otel_sum(reader, "connman.connection.resets") == 3
            assert otel_sum(reader, "connman.connection.resets", cause="eof", **{"server.port": port}) == 3
            assert otel_sum(reader, "connman.connection.count", state="connected") == 1
            assert otel_sum(reader, "connman.connection.attempts", outcome="connected") == 4
            assert otel_sum(reader, "connman.connection.attempts", outcome="refused") == refused
            assert otel_sum(reader, "connman.connection.attempts", **{"error.type": "refused"}) == refused
            (histogram,) = otel_points(reader, "connman.connection.create_time")
            assert isinstance(histogram, HistogramDataPoint)
            assert histogram.count == 4
            assert dict(histogram.attributes or {}) == {"server.address": "127.0.0.1", "server.port": port}

            await conn.disconnect()
            samples = await scrape(endpoint.url)
            assert total(samples, "connman_connections") == 0  # gone from the manager, gone here
            assert total(samples, "connman_resets_total") == 3  # counters stay
    instrumentation.uninstrument()


async def test_pooled_connections_carry_their_pool_in_both_exporters(
    server: EchoServer, cm: connman.ConnectionManager, otel: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = otel
    connman.otel.instrument(cm, meter_provider=provider)
    registry = CollectorRegistry()
    collector = connman.prometheus.register(cm, registry)
    recorder = Recorder()
    cm.subscribe(lambda event: recorder.add(type(event).__name__))
    pool = cm.create_pool("cache")
    conn = pool.add_connection(server.port, "127.0.0.1", backoff=FAST)
    await recorder.wait("Connected")
    server.drop_clients()
    await recorder.wait("Connected", 2)
    assert (
        registry.get_sample_value(
            "connman_resets_total",
            {"server_address": "127.0.0.1", "server_port": str(server.port), "pool": "cache", "cause": "eof"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "connman_connections",
            {
                "server_address": "127.0.0.1",
                "server_port": str(server.port),
                "pool": "cache",
                "state": "connected",
            },
        )
        == 1
    )
    assert otel_sum(reader, "connman.connection.resets", **{"pool.name": "cache"}) == 1
    assert otel_sum(reader, "connman.connection.count", **{"pool.name": "cache", "state": "connected"}) == 1
    collector.close()
    await conn.disconnect()


async def test_a_collector_made_after_the_pool_knows_its_members(
    server: EchoServer, cm: connman.ConnectionManager
) -> None:
    recorder = Recorder()
    cm.subscribe(lambda event: recorder.add(type(event).__name__))
    pool = cm.create_pool("late")
    pool.add_connection(server.port, "127.0.0.1", backoff=FAST)
    await recorder.wait("Connected")
    registry = CollectorRegistry()
    connman.prometheus.register(cm, registry)  # after the member joined: it scans the pools
    server.drop_clients()
    await recorder.wait("Connected", 2)
    labels = {"server_address": "127.0.0.1", "server_port": str(server.port), "pool": "late", "cause": "eof"}
    assert registry.get_sample_value("connman_resets_total", labels) == 1


async def test_uninstrument_and_close_stop_counting(
    server: EchoServer, cm: connman.ConnectionManager, otel: tuple[MeterProvider, InMemoryMetricReader]
) -> None:
    provider, reader = otel
    instrumentation = connman.otel.instrument(cm, meter_provider=provider)
    registry = CollectorRegistry()
    collector = connman.prometheus.register(cm, registry)
    recorder = Recorder()
    cm.subscribe(lambda event: recorder.add(type(event).__name__))
    cm.connect(server.port, "127.0.0.1", backoff=FAST)
    await recorder.wait("Connected")
    instrumentation.uninstrument()
    collector.close()
    server.drop_clients()
    await recorder.wait("Connected", 2)
    assert otel_sum(reader, "connman.connection.resets") == 0
    assert otel_points(reader, "connman.connection.count") == []
    assert registry.get_sample_value("connman_resets_total", {"cause": "eof"}) is None


def test_serve_refuses_bad_arguments_naming_them() -> None:
    manager = connman.ConnectionManager()
    with pytest.raises(TypeError, match=re.escape("port must be an int in 0..65535, not '9464'")):
        connman.prometheus.serve(manager, "9464")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("port must be in 0..65535, not 70000")):
        connman.prometheus.serve(manager, 70000)
    with pytest.raises(TypeError, match="addr must be a non-empty str"):
        connman.prometheus.serve(manager, 0, addr="")
    with pytest.raises(ValueError, match="buckets must be increasing"):
        connman.prometheus.ManagerCollector(manager, buckets=[1.0, 0.5])


def test_a_port_in_use_is_an_os_error() -> None:
    manager = connman.ConnectionManager()
    with connman.prometheus.serve(manager, 0) as first, pytest.raises(OSError, match="in use"):
        connman.prometheus.serve(manager, first.port)


def test_importing_connman_imports_neither_exporter() -> None:
    code = (
        "import sys, connman, connman.events\n"
        "loaded = [m for m in sys.modules if m.startswith(('prometheus_client', 'opentelemetry'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
