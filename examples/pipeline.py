"""`connman.Pipeline` in plain synchronous code: threads sharing one pipelined connection.

    python examples/pipeline.py

It starts a line echo server (connman.testing), then four threads send requests over one managed
connection at once; each gets its own answer back, in order, while the server restarts under them.
A request caught by the restart fails with `NotConnected` (or waits for the reconnect, if it was not
sent yet) and never hangs.
"""

from __future__ import annotations

import threading

import connman
from connman.testing import ServerThread

QUICK = connman.Backoff(initial=0.01, cap=0.1, jitter="equal")


def main() -> None:
    with ServerThread() as server:
        pipeline: connman.Pipeline[bytes] = connman.Pipeline(connman.framing.lines, timeout=2.0)
        pipeline.connect(server.port, "127.0.0.1", backoff=QUICK)
        answered, failed = [0] * 4, [0] * 4

        def caller(number: int) -> None:
            for n in range(250):
                request = b"thread %d request %d" % (number, n)
                try:
                    answer = pipeline.request(request + b"\n").result()  # blocks: this is sync code
                except connman.NotConnected:
                    failed[number] += 1
                    continue
                assert answer == request, (answer, request)  # never another thread's answer
                answered[number] += 1
                if number == 0 and n == 100:
                    server.restart()  # drops every client; the connection comes back by itself

        threads = [threading.Thread(target=caller, args=(number,)) for number in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"answered: {sum(answered)}, failed with NotConnected: {sum(failed)}, of {4 * 250}")
        print(f"reconnected: {pipeline.connections[0].stats.resets == 1}")
        pipeline.close()


if __name__ == "__main__":
    main()
