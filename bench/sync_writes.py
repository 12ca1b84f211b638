"""W7: 64-byte records written from one plain thread: `python bench/sync_writes.py connman|sendall PORT N`.

connman: `conn.write()` from the main thread (no event loop here), handed to connman's loop thread in
batches; done when the transport's buffer has gone to the kernel. sendall: a blocking socket and one
`sendall()` per record. Both write to the benchmark server's sink port. Prints JSON: records/s.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

RECORD = b"r" * 63 + b"\n"


def with_connman(port: int, count: int) -> float:
    import connman

    conn = connman.connect(port, "127.0.0.1")
    assert conn.wait_connected(10)
    write = conn.write
    started = time.perf_counter()
    for _ in range(count):
        write(RECORD)

    assert conn.wait_flushed(60)  # empty, not just below the low-water mark (what drain() waits for)
    elapsed = time.perf_counter() - started
    connman.disconnect_all()
    return elapsed


def with_sendall(port: int, count: int) -> float:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sendall = sock.sendall
    started = time.perf_counter()
    for _ in range(count):
        sendall(RECORD)
    elapsed = time.perf_counter() - started
    sock.close()
    return elapsed


if __name__ == "__main__":
    mode, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {0})
    elapsed = with_connman(port, count) if mode == "connman" else with_sendall(port, count)
    print(json.dumps({"value": count / elapsed, "unit": "records/s"}))
