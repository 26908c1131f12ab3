"""An independent WebSocket server (Python websockets) for regbench's interoperability tests.

/echo     every message comes back
/watch    5 JSON messages 5 ms apart, each with its send time (sent_unix_nanos), then close 1000
/fail     closes with 1011 (server error) on the first message
Prints the port it bound, then serves until killed.
"""
import asyncio
import json
import sys
import time

from websockets.asyncio.server import serve


async def handler(ws):
    path = ws.request.path
    if path == "/echo":
        async for message in ws:
            await ws.send(message)
    elif path == "/watch":
        for seq in range(5):
            if seq:
                await asyncio.sleep(0.005)
            await ws.send(json.dumps({"seq": seq, "sent_unix_nanos": time.time_ns()}))
        await ws.close(1000, "done")
    elif path == "/fail":
        await ws.recv()
        await ws.close(1011, "failing as asked")
    else:
        await ws.close(1008, "no such path")


async def main():
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
