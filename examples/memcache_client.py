"""A memcached client on connman (text protocol: get, set, delete), which survives server restarts.

Run it against a memcached on 127.0.0.1 (default port 11211):

    python examples/memcache_client.py [PORT]

It stores and reads back a few keys, then prints what it got. All that is memcached here is the
splitter (`parse_answer`) and the commands; `connman.Pipeline` matches answers to callers, and fails
the requests in flight when the connection drops.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import connman
from connman import ProtocolError, framing

Answer = bytes | None


class MemcacheError(Exception):
    """memcached answered ERROR, CLIENT_ERROR or SERVER_ERROR."""


def parse_answer(buffer: bytes, start: int) -> tuple[Answer | MemcacheError, int] | None:
    """One answer from `buffer[start:]`: `VALUE key flags size\\r\\n<data>\\r\\nEND\\r\\n` (a hit),
    `END\\r\\n` (a miss), a status line (`STORED`, `DELETED`, ...) or an error line."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    line, after = buffer[start:end], end + 2
    if line.startswith(b"VALUE "):
        fields = line.split()
        if len(fields) < 4 or not fields[3].isdigit():
            raise ProtocolError(f"malformed VALUE line {line!r}")
        size = int(fields[3])
        if len(buffer) < after + size + len(b"\r\nEND\r\n"):
            return None
        if buffer[after + size : after + size + 7] != b"\r\nEND\r\n":
            raise ProtocolError("a value not followed by END (only single-key gets are sent)")
        return buffer[after : after + size], after + size + 7
    if line == b"END":
        return None, after
    if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
        return MemcacheError(line.decode(errors="replace")), after
    return line, after


class Memcache:
    """`await mc.set(key, value)`, `await mc.get(key)`, `await mc.delete(key)` over one managed
    connection. A call fails with `connman.NotConnected` if the server is unreachable for longer than
    `timeout`, and never hangs."""

    def __init__(
        self, port: int = 11211, host: str = "127.0.0.1", *, timeout: float = 2.0, **options: Any
    ) -> None:
        self.pipeline: connman.Pipeline[Answer] = connman.Pipeline(
            lambda on_frame: framing.split_by(on_frame, parse_answer), timeout=timeout
        )
        self.conn = self.pipeline.connect(port, host, **options)

    async def get(self, key: str) -> bytes | None:
        return await self.pipeline.request(b"get %s\r\n" % key.encode())

    async def set(self, key: str, value: bytes, expire: int = 0) -> bool:
        command = b"set %s 0 %d %d\r\n%s\r\n" % (key.encode(), expire, len(value), value)
        return await self.pipeline.request(command) == b"STORED"

    async def delete(self, key: str) -> bool:
        return await self.pipeline.request(b"delete %s\r\n" % key.encode()) == b"DELETED"

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
