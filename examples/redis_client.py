"""A Redis client on connman (RESP2: PING, SET, GET, any command), which survives server restarts.

Run it against a redis-server on 127.0.0.1 (default port 6379):

    python examples/redis_client.py [PORT]

All that is Redis here is the reply parser and the command encoder; `connman.Pipeline` pipelines the
requests and matches each reply to its caller.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import connman
from connman import ProtocolError, framing

Reply = bytes | int | None | list["Reply"]


class RedisError(Exception):
    """Redis answered with an error reply (`-ERR ...`)."""


def parse_reply(buffer: bytes, start: int) -> tuple[Reply | RedisError, int] | None:
    """One RESP2 reply from `buffer[start:]`: (reply, end offset), or None if incomplete."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    kind, line, after = buffer[start : start + 1], buffer[start + 1 : end], end + 2
    if kind == b"+":
        return line, after
    if kind == b"-":
        return RedisError(line.decode(errors="replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            return None
        return buffer[after : after + size], after + size + 2
    if kind == b"*":
        items: list[Reply] = []
        error: RedisError | None = None
        for _ in range(max(0, int(line))):
            parsed = parse_reply(buffer, after)
            if parsed is None:
                return None
            item, after = parsed
            if isinstance(item, RedisError):
                error = error or item  # an error inside an array (EXEC) fails the whole reply
            else:
                items.append(item)
        return (error, after) if error is not None else (items, after)
    raise ProtocolError(f"unexpected RESP reply type {kind!r}")


def encode(*args: bytes | str | int) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class Redis:
    """`await r.execute("SET", "k", "v")`, plus `ping()`, `set()`, `get()`, over one managed connection."""

    def __init__(
        self, port: int = 6379, host: str = "127.0.0.1", *, timeout: float = 2.0, **options: Any
    ) -> None:
        self.pipeline: connman.Pipeline[Reply] = connman.Pipeline(
            lambda on_frame: framing.split_by(on_frame, parse_reply, max_length=16 * 1024 * 1024),
            timeout=timeout,
        )
        self.conn = self.pipeline.connect(port, host, **options)

    async def execute(self, *args: bytes | str | int) -> Reply:
        return await self.pipeline.request(encode(*args))

    async def ping(self) -> bool:
        return await self.execute("PING") == b"PONG"

    async def set(self, key: str, value: bytes) -> bool:
        return await self.execute("SET", key, value) == b"OK"

    async def get(self, key: str) -> bytes | None:
        reply = await self.execute("GET", key)
        assert reply is None or isinstance(reply, bytes)
        return reply

    async def close(self) -> None:
        await self.pipeline.close()


async def main(port: int) -> None:
    redis = Redis(port)
    try:
        print(f"PING: {await redis.ping()}")
        await redis.set("greeting", b"hello")
        print(f"greeting = {await redis.get('greeting')!r}")
    except connman.NotConnected as exc:
        sys.exit(f"redis-server is not reachable: {exc}")
    finally:
        await redis.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 6379))
