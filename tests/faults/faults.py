#!/usr/bin/env python3
"""Fault tests: real fault_service processes, real signals, real Apache Kafka brokers.

    faults.py SCENARIO --service PATH --publisher PATH --work-dir DIR --root REPO

Records carry ids 0..N-1 ({"id": N}); each handler appends its record's id to a file with one
write(2), so a kill -9 loses no written line. Missing and duplicate ids are counted from those
files. Every wait is bounded and waits on a condition. The figures of a run are printed as one
line `FIGURES {...}` and written to <work dir>/figures.json.

The shared broker is CPPFLY_KAFKA_BOOTSTRAP (scripts/test starts it). Scenarios whose fault is a
broker start their own with scripts/kafka, on ports derived from CPPFLY_KAFKA_PORT /
CPPFLY_KAFKA_CONTROLLER_PORT (defaults 19092 / 19093) and run dirs under <root>/build/kafka.
"""
import argparse
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ARGS = None
FIGURES = {}


class Failure(Exception):
    pass


def log(text):
    print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)


def check(condition, text):
    if not condition:
        raise Failure(text)


def wait_until(condition, timeout, what, interval=0.05):
    """Polls `condition` until it is true; fails after `timeout` seconds. Returns the seconds waited."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise Failure(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- brokers


def shared_bootstrap():
    bootstrap = os.environ.get("CPPFLY_KAFKA_BOOTSTRAP", "")
    check(bootstrap, "CPPFLY_KAFKA_BOOTSTRAP is not set: start a broker with scripts/kafka start")
    return bootstrap


class OwnBroker:
    """A broker (or cluster) of this test's own, run by scripts/kafka."""

    def __init__(self, name, port_offset, nodes=1):
        base = int(os.environ.get("CPPFLY_KAFKA_PORT", "19092"))
        controller = int(os.environ.get("CPPFLY_KAFKA_CONTROLLER_PORT", "19093"))
        self.env = dict(os.environ)
        self.env["CPPFLY_KAFKA_PORT"] = str(base + port_offset)
        self.env["CPPFLY_KAFKA_CONTROLLER_PORT"] = str(controller + port_offset)
        self.env["CPPFLY_KAFKA_RUN"] = os.path.join(ARGS.root, "build", "kafka", name)
        self.nodes = nodes
        self.bootstrap = None

    def run(self, *command, timeout=150):
        argv = [os.path.join(ARGS.root, "scripts", "kafka")]
        if self.nodes > 1:
            argv += ["--nodes", str(self.nodes)]
        argv += list(command)
        start = time.monotonic()
        result = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        elapsed = time.monotonic() - start
        log(f"scripts/kafka {' '.join(argv[1:])}: exit {result.returncode} in {elapsed:.1f} s "
            f"{result.stdout.strip()} {result.stderr.strip()[-2000:]}")
        check(result.returncode == 0, f"scripts/kafka {' '.join(command)} failed")
        return elapsed

    def start(self):
        self.run("start")
        sub = "cluster" if self.nodes > 1 else ""
        with open(os.path.join(self.env["CPPFLY_KAFKA_RUN"], sub, "bootstrap")) as f:
            self.bootstrap = f.read().strip()
        return self.bootstrap

    def stop(self):
        try:
            self.run("stop")
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            log(f"stopping the broker failed: {e}")


def create_topic(bootstrap, topic, partitions, replication=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, replication)], operation_timeout=30)
    futures[topic].result(timeout=60)

    def ready():
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        return md is not None and md.error is None and len(md.partitions) == partitions and all(
            p.leader >= 0 for p in md.partitions.values())

    wait_until(ready, 60, f"topic {topic} to have leaders", interval=0.2)


def produce(bootstrap, topic, count, value_of=None):
    """Publishes ids 0..count-1 with Python's confluent-kafka (librdkafka), all acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True,
                         "queue.buffering.max.messages": 200000})
    errors = []

    def done(err, _msg):
        if err is not None:
            errors.append(err)

    start = time.monotonic()
    for i in range(count):
        value = value_of(i) if value_of else json.dumps({"id": i})
        while True:
            try:
                producer.produce(topic, value=value, key=str(i), on_delivery=done)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(120)
    check(left == 0 and not errors, f"producing {count} records: {left} undelivered, errors {errors[:3]}")
    log(f"produced {count} records to {topic} in {time.monotonic() - start:.1f} s")


def committed_total(bootstrap, group, topic, partitions):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
        return sum(max(tp.offset, 0) for tp in offsets)
    finally:
        consumer.close()


def read_all(bootstrap, topic, expected, timeout):
    """Reads `topic` from the beginning until `expected` records came (or the timeout)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "faults-reader-" + uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            records.append(msg)
        # Anything beyond `expected` that is already there: read until 3 s of quiet.
        quiet = time.monotonic() + 3
        while time.monotonic() < quiet:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                records.append(msg)
    finally:
        consumer.close()
    return records


# ---------------------------------------------------------------- the service processes


class LineCounter:
    """Counts the lines of a growing file, reading only what was appended since the last call."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.lines = 0

    def __call__(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        end = data.rfind(b"\n") + 1
        self.lines += data.count(b"\n", 0, end)
        self.offset += end
        return self.lines


def ids_in(*paths):
    counts = collections.Counter()
    for path in paths:
        if os.path.exists(path):
            with open(path) as f:
                counts.update(int(line) for line in f if line.strip())
    return counts


def tally(expected_ids, *paths):
    counts = ids_in(*paths)
    expected = set(expected_ids)
    missing = len(expected - set(counts))
    duplicates = sum(n - 1 for n in counts.values())
    unexpected = len(set(counts) - expected)
    return {"handled": sum(counts.values()), "missing": missing, "duplicates": duplicates, "unexpected": unexpected}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One fault_service (or fault_publisher) process with its own pyfly.yaml."""

    count = 0

    def __init__(self, name, bootstrap, env, kafka=None, consumer_properties=None, publisher=False):
        Service.count += 1
        self.name = name
        self.dir = os.path.join(ARGS.work_dir, name)
        os.makedirs(self.dir, exist_ok=True)
        kafka = {"connect-timeout": "10s", "publish-timeout": "30s", **(kafka or {})}
        lines = ["pyfly:", "  messaging:", "    provider: kafka", "    kafka:",
                 f"      bootstrap-servers: \"{bootstrap}\"", f"      client-id: fault-{name}"]
        lines += [f"      {k}: \"{v}\"" for k, v in kafka.items()]
        # A killed member holds its partitions until its session times out: 6 s (the broker's
        # minimum) instead of 45 s keeps the tests short.
        consumer_properties = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                               **(consumer_properties or {})}
        lines.append("      consumer-properties:")
        lines += [f"        {k}: \"{v}\"" for k, v in consumer_properties.items()]
        self.config = os.path.join(self.dir, "pyfly.yaml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.env = dict(os.environ)
        self.env.update({k: str(v) for k, v in env.items()})
        self.binary = ARGS.publisher if publisher else ARGS.service
        self.proc = None
        self.runs = 0

    def start(self):
        self.runs += 1
        self.stderr_path = os.path.join(self.dir, f"stderr.{self.runs}.log")
        self.stderr = open(self.stderr_path, "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([self.binary, "--config", self.config], env=self.env, cwd=self.dir,
                                     stdout=self.stderr, stderr=subprocess.STDOUT)
        log(f"{self.name}: started pid {self.proc.pid}")
        return self

    def wait_assigned(self, timeout=60):
        wait_until(lambda: "assigned partitions" in self.log_text(), timeout, f"{self.name} to get partitions",
                   interval=0.1)

    def log_text(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        log(f"{self.name}: {signal.Signals(sig).name} to pid {self.proc.pid}")
        self.proc.send_signal(sig)
        self.signalled = time.monotonic()

    def wait_exit(self, timeout):
        """The exit code and the seconds since the signal (or the start)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise Failure(f"{self.name} did not exit within {timeout} s")
        since = getattr(self, "signalled", self.started)
        elapsed = time.monotonic() - since
        self.stderr.close()
        log(f"{self.name}: exited with {code} after {elapsed:.2f} s")
        return code, elapsed

    def stop(self, timeout=30):
        self.signal(signal.SIGTERM)
        code, elapsed = self.wait_exit(timeout)
        check(code == 0, f"{self.name}: exit code {code} after SIGTERM (log {self.stderr_path})")
        return elapsed

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


SERVICES = []


def service(*args, **kwargs):
    s = Service(*args, **kwargs)
    SERVICES.append(s)
    return s


def unique(name):
    return f"faults-{name}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------- scenarios


def scenario_stop_mid_stream(sig):
    """100,000 records over 6 partitions; `sig` to the listener at ~40 % handled; restart; drain."""
    bootstrap = shared_bootstrap()
    n, partitions = 100_000, 6
    topic, group = unique("stream"), unique("group")
    create_topic(bootstrap, topic, partitions)
    produce(bootstrap, topic, n)
    out = os.path.join(ARGS.work_dir, "handled")
    first = service("listener", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": out + ".1"})
    t0 = time.monotonic()
    first.start()
    handled = LineCounter(out + ".1")
    wait_until(lambda: handled() >= 0.4 * n, 120, "40 % handled", interval=0.01)
    first.signal(sig)
    code, exit_s = first.wait_exit(60)
    before = handled()
    committed = committed_total(bootstrap, group, topic, partitions)
    uncommitted = before - committed
    FIGURES.update({"records": n, "partitions": partitions, "signal": signal.Signals(sig).name,
                    "handled_at_exit": before, "committed_at_exit": committed,
                    "uncommitted_at_exit": uncommitted, "exit_code": code, "exit_seconds": round(exit_s, 2)})
    if sig == signal.SIGKILL:
        check(code == -signal.SIGKILL, f"exit code {code}")
    else:
        check(code == 0, f"exit code {code} after SIGTERM")
    second = service("listener2", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": out + ".2"})
    second.start()
    both = LineCounter(out + ".2")
    wait_until(lambda: before + both() >= n and len(ids_in(out + ".1", out + ".2")) >= n, 180,
               "every id handled", interval=0.2)
    second.stop()
    drain_s = time.monotonic() - t0
    result = tally(range(n), out + ".1", out + ".2")
    FIGURES.update(result)
    FIGURES["total_seconds"] = round(drain_s, 1)
    check(result["missing"] == 0, f"{result['missing']} records missing")
    check(result["unexpected"] == 0, "unexpected ids")
    if sig == signal.SIGKILL:
        check(result["duplicates"] <= uncommitted,
              f"{result['duplicates']} duplicates, more than the {uncommitted} handled but uncommitted")
    else:
        check(result["duplicates"] == 0, f"{result['duplicates']} duplicates after a clean stop")


def scenario_kill9():
    scenario_stop_mid_stream(signal.SIGKILL)


def scenario_sigterm():
    scenario_stop_mid_stream(signal.SIGTERM)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario")
    parser.add_argument("--service", required=True)
    parser.add_argument("--publisher", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--root", required=True)
    ARGS = parser.parse_args()
    for name in ("service", "publisher", "work_dir", "root"):
        setattr(ARGS, name, os.path.abspath(getattr(ARGS, name)))
    shutil.rmtree(ARGS.work_dir, ignore_errors=True)
    os.makedirs(ARGS.work_dir)
    run = globals().get("scenario_" + ARGS.scenario)
    if run is None:
        sys.exit(f"unknown scenario {ARGS.scenario}")
    start = time.monotonic()
    status = 0
    try:
        run()
    except Failure as e:
        log(f"FAILED: {e}")
        status = 1
    except Exception:  # noqa: BLE001 - any error fails the test, with its traceback
        traceback.print_exc()
        status = 1
    finally:
        for s in SERVICES:
            s.kill()
        for cleanup in CLEANUPS:
            cleanup()
    FIGURES["scenario"] = ARGS.scenario
    FIGURES["passed"] = status == 0
    FIGURES["runtime_seconds"] = round(time.monotonic() - start, 1)
    print("FIGURES " + json.dumps(FIGURES), flush=True)
    with open(os.path.join(ARGS.work_dir, "figures.json"), "w") as f:
        json.dump(FIGURES, f, indent=1)
    sys.exit(status)


CLEANUPS = []

if __name__ == "__main__":
    main()
