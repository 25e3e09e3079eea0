"""peer_faststream: the FastStream contender of bench/peers, written as a FastStream user writes it:
one @broker.subscriber in group "bench" whose parameter is a pydantic model, FastStream's defaults
(aiokafka underneath, auto-commit, its default logging), broker.publish for publishing.

    PEER_MODE=consume|publish PEER_TOPIC=t PEER_COUNT=N PEER_BOOTSTRAP=host:port python app.py

Protocol and report line: bench/peers/common/peer_common.hpp.
"""

import asyncio
import os
import sys
import time

_START_MS = int(time.time() * 1000)  # before the framework is imported

from faststream import FastStream  # noqa: E402
from faststream.kafka import KafkaBroker, KafkaMessage  # noqa: E402
from pydantic import BaseModel  # noqa: E402

MODE = os.environ.get("PEER_MODE") or "consume"
TOPIC = os.environ.get("PEER_TOPIC") or "peers-orders"
COUNT = int(os.environ.get("PEER_COUNT") or 1_000_000)
LATENCY_FILE = os.environ.get("PEER_LATENCY_FILE") or ""
TIMEOUT_S = float(os.environ.get("PEER_TIMEOUT_S") or 900)


class Order(BaseModel):
    """The order every contender decodes (peers::Order in C++, the Order record in Java)."""

    id: int
    customer: str
    item: str
    quantity: int
    amount: float
    note: str

    @classmethod
    def of(cls, id: int) -> "Order":
        return cls(id=id, customer=f"c-{id % 100000:05d}", item=f"sku-{id % 10000:04d}", quantity=1 + id % 5,
                   amount=(100 + id % 90000) / 4.0, note="xxxxxxxx")


broker = KafkaBroker(os.environ.get("PEER_BOOTSTRAP") or "127.0.0.1:49092", client_id="peer-faststream")
app = FastStream(broker)


class Tally:
    def __init__(self) -> None:
        self.count = 0
        self.sum = 0
        self.sumsq = 0
        self.first_ms = 0
        self.last_ms = 0
        self.latencies = [None] * COUNT if LATENCY_FILE else None
        self.done = asyncio.Event()

    def record(self, id: int, sent_us: str | None) -> None:
        now_us = time.time_ns() // 1000
        if self.latencies is not None and sent_us is not None and 0 <= id < COUNT:
            self.latencies[id] = now_us - int(sent_us)
        self.count += 1
        if self.count == 1:
            self.first_ms = now_us // 1000
        self.last_ms = now_us // 1000
        self.sum += id
        self.sumsq += id * id
        if self.count == COUNT:
            self.done.set()

    def report(self) -> None:
        print(f'{{"count":{self.count},"sum":{self.sum},"sumsq":{self.sumsq},"start_ms":{_START_MS},'
              f'"first_ms":{self.first_ms},"last_ms":{self.last_ms}}}', flush=True)
        if self.latencies is not None:
            with open(LATENCY_FILE, "w") as out:
                out.writelines(f"{id} {lat}\n" for id, lat in enumerate(self.latencies) if lat is not None)


tally = Tally()

if MODE == "consume":

    @broker.subscriber(TOPIC, group_id="bench", auto_offset_reset="earliest")
    async def on_order(order: Order, message: KafkaMessage) -> None:
        tally.record(order.id, message.headers.get("x-sent-us"))


async def publish_all() -> int:
    """N orders through broker.publish (key = id) without waiting one by one, then every acknowledgement."""
    first_ms = int(time.time() * 1000)
    sends = [await broker.publish(Order.of(id), TOPIC, key=str(id).encode(), no_confirm=True) for id in range(COUNT)]
    results = await asyncio.gather(*sends, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"peer_faststream: publish failed: {errors[0]!r}", file=sys.stderr)
    last_ms = int(time.time() * 1000)
    print(f'{{"count":{len(results) - len(errors)},"errors":{len(errors)},"start_ms":{_START_MS},'
          f'"first_ms":{first_ms},"last_ms":{last_ms}}}', flush=True)
    return 0 if not errors else 1


exit_code = 1


async def drive() -> None:
    global exit_code
    try:
        if MODE == "publish":
            exit_code = await publish_all()
        else:
            try:
                await asyncio.wait_for(tally.done.wait(), TIMEOUT_S)
                exit_code = 0
            except asyncio.TimeoutError:
                exit_code = 1
            tally.report()
    finally:
        app.exit()


_driver: "asyncio.Task[None] | None" = None


@app.after_startup
async def start_driver() -> None:
    global _driver
    _driver = asyncio.get_running_loop().create_task(drive())


if __name__ == "__main__":
    asyncio.run(app.run())
    raise SystemExit(exit_code)
