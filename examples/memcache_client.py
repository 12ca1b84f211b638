"""A memcached client on connman (text protocol: get, set, delete), which survives server restarts.

Run it against a memcached on 127.0.0.1 (default port 11211):

    python examples/memcache_client.py [PORT]

It stores and reads back a few keys, then prints what it got.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from pipeline import Pipeline

import connman

Answer = bytes | None | bool


class MemcacheError(Exception):
    """memcached answered ERROR, CLIENT_ERROR or SERVER_ERROR."""


def _line(buffer: bytearray) -> bytes | None:
    end = buffer.find(b"\r\n")
    return None if end < 0 else bytes(buffer[:end])


def _status(buffer: bytearray) -> tuple[bytes | MemcacheError, int] | None:
    line = _line(buffer)
    if line is None:
        return None
    if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
        return MemcacheError(line.decode(errors="replace")), len(line) + 2
    return line, len(line) + 2


def parse_get(buffer: bytearray) -> tuple[Answer | MemcacheError, int] | None:
    """`VALUE key flags size\\r\\n<data>\\r\\nEND\\r\\n`, or `END\\r\\n` for a miss."""
    parsed = _status(buffer)
    if parsed is None:
        return None
    line, used = parsed
    if isinstance(line, MemcacheError):
        return line, used
    if line == b"END":
        return None, used
    size = int(line.split()[3])
    end = used + size + 2 + len(b"END\r\n")
    if len(buffer) < end:
        return None
    return bytes(buffer[used : used + size]), end


def _word_is(expected: bytes) -> Callable[[bytearray], tuple[Answer | MemcacheError, int] | None]:
    def parse(buffer: bytearray) -> tuple[Answer | MemcacheError, int] | None:
        parsed = _status(buffer)
        if parsed is None or isinstance(parsed[0], MemcacheError):
            return parsed
        return parsed[0] == expected, parsed[1]

    return parse


parse_stored = _word_is(b"STORED")
parse_deleted = _word_is(b"DELETED")


class Memcache:
    """`await mc.set(key, value)`, `await mc.get(key)`, `await mc.delete(key)` over one managed
    connection. A call fails with `connman.NotConnected` if the server is unreachable for longer than
    `timeout`, and never hangs."""

    def __init__(
        self, port: int = 11211, host: str = "127.0.0.1", *, timeout: float = 2.0, **options: object
    ) -> None:
        self.pipeline: Pipeline[Answer] = Pipeline(port, host, timeout=timeout, **options)

    async def get(self, key: str) -> bytes | None:
        answer = await self.pipeline.request(b"get %s\r\n" % key.encode(), parse_get)
        assert answer is None or isinstance(answer, bytes)
        return answer

    async def set(self, key: str, value: bytes, expire: int = 0) -> bool:
        command = b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), expire, len(value), value)
        return bool(await self.pipeline.request(command, parse_stored))

    async def delete(self, key: str) -> bool:
        return bool(await self.pipeline.request(b"delete %s\r\n" % key.encode(), parse_deleted))

    async def close(self) -> None:
        await self.pipeline.close()


async def main(port: int) -> None:
    mc = Memcache(port)
    try:
        for n in range(3):
            await mc.set(f"greeting:{n}", b"hello %d" % n)
        for n in range(3):
            print(f"greeting:{n} = {await mc.get(f'greeting:{n}')!r}")
        print(f"deleted greeting:0: {await mc.delete('greeting:0')}")
        print(f"greeting:0 = {await mc.get('greeting:0')!r}")
    except connman.NotConnected as exc:
        sys.exit(f"memcached is not reachable: {exc}")
    finally:
        await mc.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 11211))
