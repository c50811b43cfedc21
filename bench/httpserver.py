"""A loopback HTTP/1.1 server for W5: answers every request after DELAY_MS with JSON.

    python bench/httpserver.py DELAY_MS     # prints its port on the first line

One asyncio process (keep-alive, any number of connections at once), so the
server is never what limits W5. `GET /stats` answers the requests served and
the peak number in flight, and resets the peak.
"""

from __future__ import annotations

import asyncio
import json
import sys

stats = {"served": 0, "in_flight": 0, "peak_in_flight": 0}


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1] if " " in lines[0] else "/"
            length = 0
            for line in lines[1:]:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if length:
                await reader.readexactly(length)
            if path == "/stats":
                body = json.dumps(stats).encode()
                stats["peak_in_flight"] = stats["in_flight"]
            else:
                stats["in_flight"] += 1
                stats["peak_in_flight"] = max(stats["peak_in_flight"], stats["in_flight"])
                try:
                    await asyncio.sleep(delay)
                finally:
                    stats["in_flight"] -= 1
                stats["served"] += 1
                body = b'{"ok": true}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(delay_ms: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay_ms / 1000),
                                        "127.0.0.1", 0, backlog=2048)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1])))
