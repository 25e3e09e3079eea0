#!/usr/bin/python3
"""A Python Kafka client that talks to cppfly the way a PyFly service would.

Run with Debian's /usr/bin/python3 (python3-confluent-kafka), invoked by interop_test.cpp:

  pyfly_client.py check
      exit 0 when confluent_kafka imports (prints its and librdkafka's versions), else 3.

  pyfly_client.py produce BOOTSTRAP TOPIC
      reads JSON lines from stdin, each {"key": str|null, "headers": [[name, value], ...],
      "payload": <any JSON>}, and publishes each as PyFly does: value json.dumps(payload)
      encoded UTF-8, key encoded UTF-8, headers a list of (str, bytes). Prints one JSON line
      per record once delivered, in input order:
      {"index": N, "key": str|null, "partition": P, "offset": O}. Exit 1 on any delivery error.

  pyfly_client.py consume BOOTSTRAP TOPIC GROUP COUNT TIMEOUT_SECONDS
      reads COUNT records from the beginning (a new group, auto.offset.reset=earliest) and
      prints one JSON line per record: {"key": str|null, "headers": [[name, value|null], ...],
      "payload": <json.loads(value)>, "value_hex": hex, "partition": P, "offset": O}.
      Exit 2 when fewer than COUNT arrived within TIMEOUT_SECONDS.

  pyfly_client.py consume-pyfly BOOTSTRAP TOPIC GROUP COUNT TIMEOUT_SECONDS
      the same, but "headers" is what PyFly 26.7's Kafka adapter hands a handler: a dict of
      str -> str, each value decoded as UTF-8, an undecodable one as its hex text, a missing one
      as str(None); a name that repeats keeps its last value.
"""

import json
import sys
import time


def fail(code, message):
    print("pyfly_client: " + message, file=sys.stderr, flush=True)
    sys.exit(code)


try:
    import confluent_kafka
except ImportError as error:  # pragma: no cover - the environment's fault, reported clearly
    fail(3, "cannot import confluent_kafka with %s (%s); install Debian's python3-confluent-kafka"
         % (sys.executable, error))


def text(data):
    return None if data is None else data.decode("utf-8")


def check():
    print(json.dumps({"confluent_kafka": confluent_kafka.version()[0],
                      "librdkafka": confluent_kafka.libversion()[0]}))


def produce(bootstrap, topic):
    producer = confluent_kafka.Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "pyfly-interop-producer",
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": 20000,
    })
    results = []
    errors = []

    def delivered(index, err, msg):
        if err is not None:
            errors.append("record %d: %s" % (index, err))
        else:
            results.append({"index": index, "key": text(msg.key()),
                            "partition": msg.partition(), "offset": msg.offset()})

    lines = [line for line in sys.stdin if line.strip()]
    for index, line in enumerate(lines):
        record = json.loads(line)
        key = record.get("key")
        headers = [(name, value.encode("utf-8")) for name, value in record.get("headers", [])]
        producer.produce(topic,
                         value=json.dumps(record["payload"]).encode("utf-8"),
                         key=None if key is None else key.encode("utf-8"),
                         headers=headers,
                         on_delivery=lambda err, msg, index=index: delivered(index, err, msg))
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining or errors:
        fail(1, "not delivered: %d record(s) still queued, errors: %s" % (remaining, errors))
    for result in sorted(results, key=lambda r: r["index"]):
        print(json.dumps(result))


def pyfly_headers(pairs):
    """Headers as PyFly's KafkaAdapter._consume_loop builds them (pyfly/messaging/adapters/kafka.py)."""
    headers = {}
    for name, data in pairs or []:
        try:
            headers[name] = data.decode()
        except (UnicodeDecodeError, AttributeError):
            headers[name] = data.hex() if isinstance(data, bytes) else str(data)
    return headers


def consume(bootstrap, topic, group, count, timeout, as_pyfly=False):
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap,
        "client.id": "pyfly-interop-consumer",
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    received = 0
    try:
        while received < count and time.monotonic() < deadline:
            msg = consumer.poll(min(1.0, max(0.0, deadline - time.monotonic())))
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    continue
                print("pyfly_client: consumer error: %s" % msg.error(), file=sys.stderr, flush=True)
                continue
            value = msg.value()
            print(json.dumps({
                "key": text(msg.key()),
                "headers": pyfly_headers(msg.headers()) if as_pyfly else
                           [[name, text(data)] for name, data in (msg.headers() or [])],
                "payload": json.loads(value.decode("utf-8")),
                "value_hex": value.hex(),
                "partition": msg.partition(),
                "offset": msg.offset(),
            }), flush=True)
            received += 1
    finally:
        consumer.close()
    if received < count:
        fail(2, "received %d of %d record(s) from %s within %s s" % (received, count, topic, timeout))


def main(argv):
    if len(argv) >= 1 and argv[0] == "check":
        check()
    elif len(argv) == 3 and argv[0] == "produce":
        produce(argv[1], argv[2])
    elif len(argv) == 6 and argv[0] in ("consume", "consume-pyfly"):
        consume(argv[1], argv[2], argv[3], int(argv[4]), float(argv[5]), argv[0] == "consume-pyfly")
    else:
        fail(64, "usage: pyfly_client.py check | produce BOOTSTRAP TOPIC | "
                 "consume|consume-pyfly BOOTSTRAP TOPIC GROUP COUNT TIMEOUT_SECONDS")


if __name__ == "__main__":
    main(sys.argv[1:])
