"""Count connection attempts at the wire: the TCP SYNs sent to a port on the loopback interface.

Linux only, and root only (a packet socket). Used by the reconnect-storm test and benchmark: attempts
against a refusing port never reach any server, so only the SYNs show a reconnect storm's shape.
"""

from __future__ import annotations

import socket
import struct
import threading

__all__ = ["SynCounter"]

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ETH_P_ALL = 0x0003


class SynCounter:
    """Kernel timestamps of the TCP SYNs sent to `port` on the loopback interface. Needs root.

    On the `time.time()` scale, SYNs only (not SYN-ACKs), in `times`, collected by a thread until
    `close()`.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.times: list[float] = []
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.1)
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        """The collecting thread's body (started by the constructor): records each SYN's time."""
        while self.running:
            try:
                frame, ancillary, _, address = self.sock.recvmsg(128, 64)
            except TimeoutError:
                continue
            if address[2] != socket.PACKET_HOST:  # each loopback packet shows up twice: keep one
                continue
            # Ethernet header (14 bytes), then IPv4: protocol at 9, header length in the low nibble.
            if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != socket.IPPROTO_TCP:
                continue
            tcp = 14 + (frame[14] & 0x0F) * 4
            destination = struct.unpack_from("!H", frame, tcp + 2)[0]
            flags = frame[tcp + 13]
            if destination == self.port and flags & 0x02 and not flags & 0x10:  # SYN without ACK
                for level, kind, data in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        seconds, nanoseconds = struct.unpack("qq", data[:16])
                        self.times.append(seconds + nanoseconds / 1e9)

    def close(self) -> None:
        """Stop collecting (joins the thread, 5 s at most) and close the packet socket; `times` stays."""
        self.running = False
        self.thread.join(5)
        self.sock.close()
