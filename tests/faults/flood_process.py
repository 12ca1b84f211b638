"""A hostile server in a process of its own: `python flood_process.py BYTES` prints its port, then sends
BYTES to each client as fast as the client takes them, and closes."""

from __future__ import annotations

import socket
import sys
import threading


def flood(client: socket.socket, total: int) -> None:
    chunk = b"\xa5" * (256 * 1024)
    with client:
        sent = 0
        while sent < total:
            client.sendall(chunk[: total - sent])
            sent += min(len(chunk), total - sent)


def main(total: int) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=flood, args=(client, total), daemon=True).start()


if __name__ == "__main__":
    main(int(sys.argv[1]))
