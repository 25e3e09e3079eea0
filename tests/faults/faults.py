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
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
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
    """A broker (or cluster) of this test's own, run by scripts/kafka. A single node takes its client
    port to client port + 4 (PLAINTEXT, SSL, SASL PLAIN, SASL SCRAM) and its controller port; node I of
    a cluster takes client port + 10*I and controller port + 10*I (PLAINTEXT only)."""

    def __init__(self, name, port_offset, nodes=1):
        base = int(os.environ.get("CPPFLY_KAFKA_PORT", "19092"))
        controller = int(os.environ.get("CPPFLY_KAFKA_CONTROLLER_PORT", "19093"))
        self.env = dict(os.environ)
        self.env["CPPFLY_KAFKA_PORT"] = str(base + port_offset)
        self.env["CPPFLY_KAFKA_CONTROLLER_PORT"] = str(controller + port_offset)
        self.env["CPPFLY_KAFKA_RUN"] = os.path.join(ARGS.root, "build", "kafka", name)
        for listener in ("SSL", "SASL_PLAIN", "SASL_SCRAM"):  # derived from the client port, not shared
            self.env.pop(f"CPPFLY_KAFKA_{listener}_PORT", None)
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


def produce(bootstrap, topic, count, value_of=None, key_of=None):
    """Publishes ids 0..count-1 with Python's confluent-kafka (librdkafka), all acknowledged; key str(id)
    unless `key_of` says otherwise."""
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
                producer.produce(topic, value=value, key=key_of(i) if key_of else str(i), on_delivery=done)
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


def attempts_of(events, record_id):
    """How many failed attempts of `record_id` the service's events file shows ("fail <id> <attempt>")."""
    if not os.path.exists(events):
        return 0
    with open(events) as f:
        return sum(1 for line in f if line.split()[:2] == ["fail", str(record_id)])


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

    def __init__(self, name, bootstrap, env, kafka=None, consumer_properties=None, publisher=False,
                 shutdown_timeout=None, listener=None, management=None):
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
        if listener:
            lines.append("    listener:")
            lines += [f"      {k}: {v}" for k, v in listener.items()]
        if shutdown_timeout:
            lines += ["  context:", f"    shutdown-timeout: {shutdown_timeout}"]
        if management:
            lines.append("  management:")
            lines += [f"    {k}: \"{v}\"" for k, v in management.items()]
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


KEYS = 500  # key ordering scenarios: records of one key are id % KEYS


def key_of(i):
    return f"key-{i % KEYS}"


def key_order_violations(*paths):
    """Records handled before an earlier record of their key (ids ascend within a key), over the files in order."""
    last, violations = {}, 0
    for path in paths:
        for i in read_ids(path):
            k = i % KEYS
            if k in last and i < last[k]:
                violations += 1
            last[k] = max(i, last.get(k, -1))
    return violations


def scenario_stop_mid_stream(sig, ordering="partition"):
    """100,000 records over 6 partitions; `sig` to the listener at ~40 % handled; restart; drain.
    ordering "key": 500 keys, concurrency 16, and each key's records handled in order."""
    bootstrap = shared_bootstrap()
    n, partitions = 100_000, 6
    topic, group = unique("stream"), unique("group")
    create_topic(bootstrap, topic, partitions)
    keyed = ordering == "key"
    produce(bootstrap, topic, n, key_of=key_of if keyed else None)
    out = os.path.join(ARGS.work_dir, "handled")
    # 50 µs (at least) per record: the stream lasts some seconds, so offsets were committed (every
    # commit-interval, 1 s) before the signal comes.
    env = {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_DELAY_US": 50}
    if keyed:
        env.update({"FAULT_ORDERING": "key", "FAULT_CONCURRENCY": 16, "FAULT_DELAY_US": 400})
    first = service("listener", bootstrap, {**env, "FAULT_OUT": out + ".1"})
    t0 = time.monotonic()
    first.start()
    handled = LineCounter(out + ".1")
    wait_until(lambda: handled() >= 0.4 * n, 120, "40 % handled", interval=0.01)
    first.signal(sig)
    code, exit_s = first.wait_exit(60)
    before = handled()
    committed = committed_total(bootstrap, group, topic, partitions)
    uncommitted = before - committed
    FIGURES.update({"records": n, "partitions": partitions, "signal": signal.Signals(sig).name, "ordering": ordering,
                    "signal_after_seconds": round(first.signalled - first.started, 1),
                    "handled_at_exit": before, "committed_at_exit": committed,
                    "uncommitted_at_exit": uncommitted, "exit_code": code, "exit_seconds": round(exit_s, 2)})
    if sig == signal.SIGKILL:
        check(code == -signal.SIGKILL, f"exit code {code}")
    else:
        check(code == 0, f"exit code {code} after SIGTERM")
    second = service("listener2", bootstrap, {**env, "FAULT_OUT": out + ".2"})
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
    if keyed:
        # A record run again after the restart follows later records of its key that the first run
        # finished (kill -9): only for duplicates. Without duplicates, order must hold across both runs.
        FIGURES["key_order_violations"] = key_order_violations(out + ".1", out + ".2")
        if result["duplicates"] == 0:
            check(FIGURES["key_order_violations"] == 0, f"{FIGURES['key_order_violations']} records out of key order")
        check(key_order_violations(out + ".1") == 0, "records out of key order in the first run")
    if sig == signal.SIGKILL:
        check(result["duplicates"] <= uncommitted,
              f"{result['duplicates']} duplicates, more than the {uncommitted} handled but uncommitted")
    else:
        # Key order too: records finished past a partition's lowest unsettled offset are in the commit's
        # metadata, and the restart skips them.
        check(result["duplicates"] == 0, f"{result['duplicates']} duplicates after a clean stop")


def scenario_kill9():
    scenario_stop_mid_stream(signal.SIGKILL)


def scenario_sigterm():
    scenario_stop_mid_stream(signal.SIGTERM)


def scenario_kill9_key():
    scenario_stop_mid_stream(signal.SIGKILL, "key")


def scenario_sigterm_key():
    scenario_stop_mid_stream(signal.SIGTERM, "key")


def scenario_key_retry():
    """1 partition; key A's record fails 5 times (fixed 1 s apart) while key B's 1,000 records all finish."""
    bootstrap = shared_bootstrap()
    n = 1001
    topic, group = unique("keyretry"), unique("group")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, n, key_of=lambda i: "A" if i == 0 else "B")
    out, events = os.path.join(ARGS.work_dir, "handled"), os.path.join(ARGS.work_dir, "events")
    listener = service("listener", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": out,
                                               "FAULT_EVENTS": events, "FAULT_ORDERING": "key",
                                               "FAULT_CONCURRENCY": 4, "FAULT_FAIL_ID": 0, "FAULT_FAIL_ATTEMPTS": 5,
                                               "FAULT_RETRIES": 5, "FAULT_RETRY_DELAY_MS": 1000,
                                               "FAULT_BACKOFF": "fixed", "FAULT_DELAY_US": 200})
    t0 = time.monotonic()
    listener.start()
    wait_handled(range(n), [out], 90)
    total_s = time.monotonic() - t0
    listener.stop()
    ids = read_ids(out)
    fails = [line for line in open(events) if line.startswith("fail ")]
    result = tally(range(n), out)
    FIGURES.update({"records": n, "a_failed_attempts": len(fails), "a_position_in_output": ids.index(0),
                    "b_handled_before_a": ids.index(0), "seconds": round(total_s, 1), **result})
    check(len(fails) == 5, f"{len(fails)} failed attempts of A, expected 5")
    check(ids.index(0) == n - 1, f"A was handled at position {ids.index(0)}: B waited for it")
    check(result["missing"] == 0 and result["duplicates"] == 0, f"{result}")
    check(ids[:-1] == list(range(1, n)), "B out of order")


class Sampler:
    """Samples a LineCounter every 20 ms on a thread: how many were handled at a past moment."""

    def __init__(self, counter):
        self.counter, self.samples, self.running = counter, [], True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            self.samples.append((time.monotonic(), self.counter()))
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join(5)

    def at(self, moment):
        """The count sampled last at or before `moment` (0 before the first sample)."""
        seen = [count for when, count in self.samples if when <= moment]
        return seen[-1] if seen else 0


def scenario_retry_restart(sig=signal.SIGTERM):
    """Key order, concurrency 16, 3 partitions: key A's record fails 5 times (fixed 2 s apart) while the
    10,000 records after it (other keys) finish; `sig` to the listener; restart. SIGTERM: 0 missing,
    0 duplicates, A's attempts go on counting (5 failures in all). kill -9 (while records flow, once A's
    second attempt ran: a retry starts only after the commit that carries its count): 0 missing,
    duplicates at most what was handled in the last commit interval (1 s, + 0.5 s) and in flight, A's
    attempts go on counting (at most 5 failures in all: the attempt the kill interrupted counts)."""
    bootstrap = shared_bootstrap()
    n, partitions, concurrency = 10_001, 3, 16
    topic, group = unique("retryrestart"), unique("group")
    create_topic(bootstrap, topic, partitions)
    produce(bootstrap, topic, n, key_of=lambda i: "A" if i == 0 else f"k{i % 500}")
    out, events = os.path.join(ARGS.work_dir, "handled"), os.path.join(ARGS.work_dir, "events")
    killed = sig == signal.SIGKILL
    env = {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_EVENTS": events, "FAULT_ORDERING": "key",
           "FAULT_CONCURRENCY": concurrency, "FAULT_FAIL_ID": 0, "FAULT_FAIL_ATTEMPTS": 5, "FAULT_RETRIES": 5,
           "FAULT_RETRY_DELAY_MS": 2000, "FAULT_BACKOFF": "fixed",
           # kill -9 comes while records flow: 10 ms each, 16 at once, ~6 s for the 10,000.
           "FAULT_DELAY_US": 10000 if killed else 200}
    first = service("listener", bootstrap, {**env, "FAULT_OUT": out + ".1"})
    first.start()
    handled = LineCounter(out + ".1")
    sampler = Sampler(handled)
    if killed:
        # Half of the records, and A's second attempt: the first attempt's count is then committed
        # (the container starts a retry only once the commit carrying its count is acknowledged).
        wait_until(lambda: handled() >= (n - 1) // 2 and attempts_of(events, 0) >= 2, 120,
                   "half of the records handled and A's second attempt made", interval=0.01)
    else:
        wait_until(lambda: handled() >= n - 1, 120, "every record but A handled", interval=0.01)
    failures_before = sum(1 for line in open(events) if line.startswith("fail "))
    check(0 not in ids_in(out + ".1"), "A was handled before the signal: the scenario proved nothing")
    check(failures_before >= 1, "A was never tried before the signal: the scenario proved nothing")
    first.signal(sig)
    code, _ = first.wait_exit(60)
    sampler.stop()
    before = handled()
    recent = before - sampler.at(first.signalled - 1.5)
    check(code == (-signal.SIGKILL if killed else 0), f"exit code {code}")
    second = service("listener2", bootstrap, {**env, "FAULT_OUT": out + ".2"})
    second.start()
    wait_handled(range(n), [out + ".1", out + ".2"], 120)
    second.stop()
    result = tally(range(n), out + ".1", out + ".2")
    fails = [line.split() for line in open(events) if line.startswith("fail ")]
    a_attempts_second = sorted(int(f[2]) for f in fails[failures_before:])
    FIGURES.update({"records": n, "partitions": partitions, "signal": signal.Signals(sig).name,
                    "handled_at_signal": before, "handled_in_last_1_5_s": recent, "in_flight_bound": recent + concurrency,
                    "a_failures_before_signal": failures_before, "a_failures_after_restart": len(a_attempts_second),
                    "a_attempts_after_restart": a_attempts_second, **result})
    check(result["missing"] == 0, f"{result['missing']} records missing")
    check(ids_in(out + ".2")[0] == 1, "A was not handled once after the restart")
    if killed:
        # A retry starts once the commit that counts it as made is acknowledged: after the restart A
        # goes on past the attempts it failed, and has no failed attempt left after 4 of them.
        check(a_attempts_second[0] > failures_before if a_attempts_second else failures_before >= 4,
              f"A's attempts started again after {failures_before} failures: {a_attempts_second}")
        check(result["duplicates"] <= recent + concurrency,
              f"{result['duplicates']} duplicates, more than the {recent} handled in the last 1.5 s + {concurrency} in flight")
        check(len(fails) <= 5, f"A failed {len(fails)} times in all, more than its 5 counted attempts")
    else:
        check(a_attempts_second and a_attempts_second[0] > 1, f"A's attempts started again at 1: {a_attempts_second}")
        check(result["duplicates"] == 0, f"{result['duplicates']} duplicates after a clean stop")
        check(len(fails) == 5, f"A failed {len(fails)} times in all, expected 5 (its count survives the restart)")


def scenario_retry_restart_kill9():
    scenario_retry_restart(signal.SIGKILL)


def scenario_poison_abort():
    """A record whose handler kills the process (std::abort) in its 2nd attempt, retries 3 (no delay:
    each retry waits for the commit of its count), a dead-letter topic; restart: dead-lettered after
    exactly 4 attempts in all, x-retry-count 3."""
    bootstrap = shared_bootstrap()
    n, poison = 20, 5
    topic, group = unique("abort"), unique("group")
    dlq = topic + "-dlq"
    create_topic(bootstrap, topic, 1)
    create_topic(bootstrap, dlq, 1)
    produce(bootstrap, topic, n)
    out, events = os.path.join(ARGS.work_dir, "handled"), os.path.join(ARGS.work_dir, "events")
    env = {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": out, "FAULT_EVENTS": events,
           "FAULT_FAIL_ID": poison, "FAULT_ABORT_ATTEMPT": 2, "FAULT_RETRIES": 3, "FAULT_RETRY_DELAY_MS": 0,
           "FAULT_BACKOFF": "fixed", "FAULT_DLQ": dlq}
    first = service("listener", bootstrap, env)
    first.start()
    code, _ = first.wait_exit(60)
    check(code == -signal.SIGABRT, f"exit code {code}: the poison record did not kill the process")
    second = service("listener2", bootstrap, env)
    second.start()
    good = [i for i in range(n) if i != poison]
    wait_handled(good, [out], 90)
    dead = read_all(bootstrap, dlq, 1, 60)
    second.stop()
    attempts = [(line.split()[0], int(line.split()[2])) for line in open(events)]
    headers = {k: v.decode() for k, v in (dead[0].headers() or [])} if dead else {}
    result = tally(good, out)
    FIGURES.update({"attempts": attempts, "dead_letters": len(dead), "x_retry_count": headers.get("x-retry-count"),
                    **result})
    check(attempts == [("fail", 1), ("abort", 2), ("fail", 3), ("fail", 4)],
          f"attempts {attempts}, expected fail 1, abort 2, fail 3, fail 4")
    check(len(dead) == 1 and json.loads(dead[0].value())["id"] == poison, "the poison record is not the dead letter")
    check(headers.get("x-retry-count") == "3", f"x-retry-count {headers.get('x-retry-count')}, expected 3")
    check(poison not in ids_in(out), "the poison record counts as handled")
    check(result["missing"] == 0 and result["duplicates"] == 0, f"{result}")


def scenario_metadata_overflow():
    """1 partition, key order: key S (every even id) waits behind its first record's retry while the
    50,000 odd ids (other keys) finish: 50,000 scattered completed offsets, far more than the commit
    metadata holds. SIGTERM, restart: 0 missing; the completions that fit are skipped, the rest run again."""
    bootstrap = shared_bootstrap()
    n = 100_000
    topic, group = unique("overflow"), unique("group")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, n, key_of=lambda i: "S" if i % 2 == 0 else f"k{i % 500}")
    out = os.path.join(ARGS.work_dir, "handled")
    env = {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_ORDERING": "key", "FAULT_CONCURRENCY": 16,
           "FAULT_FAIL_ID": 0, "FAULT_FAIL_ATTEMPTS": 1, "FAULT_RETRIES": 1, "FAULT_RETRY_DELAY_MS": 60000}
    listener = {"max-buffered-records": 200000}
    first = service("listener", bootstrap, {**env, "FAULT_OUT": out + ".1"}, listener=listener)
    first.start()
    handled = LineCounter(out + ".1")
    wait_until(lambda: handled() >= n // 2, 120, "every odd id handled", interval=0.01)
    first.stop()
    check("do not fit in the commit metadata" in first.log_text(), "no warning that the metadata was cut")
    second = service("listener2", bootstrap, {**env, "FAULT_OUT": out + ".2"}, listener=listener)
    second.start()
    wait_handled(range(n), [out + ".1", out + ".2"], 120)
    second.stop()
    result = tally(range(n), out + ".1", out + ".2")
    FIGURES.update({"records": n, "completed_at_stop": n // 2, **result,
                    "skipped_after_restart": n // 2 - result["duplicates"]})
    check(result["missing"] == 0, f"{result['missing']} records missing")
    check(0 < result["duplicates"] < n // 2,
          f"{result['duplicates']} duplicates: expected some (what did not fit) and fewer than {n // 2}")


def scenario_keys_order():
    """1 partition, 50 keys, concurrency 8, 2 ms per record: each key in order, handlers at once."""
    bootstrap = shared_bootstrap()
    n, keys = 5000, 50
    topic, group = unique("keys"), unique("group")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, n, key_of=lambda i: f"k{i % keys}")
    out, inflight = os.path.join(ARGS.work_dir, "handled"), os.path.join(ARGS.work_dir, "inflight")
    listener = service("listener", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": out,
                                               "FAULT_INFLIGHT": inflight, "FAULT_ORDERING": "key",
                                               "FAULT_CONCURRENCY": 8, "FAULT_DELAY_US": 2000})
    t0 = time.monotonic()
    listener.start()
    wait_handled(range(n), [out], 90)
    total_s = time.monotonic() - t0
    listener.stop()
    ids = read_ids(out)
    last, violations = {}, 0
    for i in ids:
        if i < last.get(i % keys, -1):
            violations += 1
        last[i % keys] = i
    most = max(read_ids(inflight) or [0])
    result = tally(range(n), out)
    FIGURES.update({"records": n, "keys": keys, "concurrency": 8, "most_at_once": most, "order_violations": violations,
                    "seconds": round(total_s, 1), "records_per_second": round(n / total_s), **result})
    check(violations == 0, f"{violations} records out of key order")
    check(most > 1, "never more than one handler at once")
    check(result["missing"] == 0 and result["duplicates"] == 0, f"{result}")


def wait_handled(expected_ids, paths, timeout, what="every id handled"):
    """Until every id of `expected_ids` is in the handled files."""
    expected = set(expected_ids)
    counters = [LineCounter(p) for p in paths]
    return wait_until(lambda: sum(c() for c in counters) >= len(expected) and expected <= set(ids_in(*paths)),
                      timeout, what, interval=0.2)


def read_ids(path):
    return [int(line) for line in open(path) if line.strip()] if os.path.exists(path) else []


def publish_errors(path):
    """[(id, elapsed ms, error)] of a publisher's error file."""
    rows = []
    if os.path.exists(path):
        for line in open(path):
            ident, ms, error = line.rstrip("\n").split(" ", 2)
            rows.append((int(ident), int(ms), error))
    return rows


def scenario_broker_restart():
    """A publisher (sync publish) and a listener while the broker is down for 10 s."""
    broker = OwnBroker("fault-restart", 40)
    CLEANUPS.append(broker.stop)
    bootstrap = broker.start()
    topic, group = unique("restart"), unique("group")
    create_topic(bootstrap, topic, 3)
    publish_timeout_s = 5
    kafka = {"publish-timeout": f"{publish_timeout_s}s", "connect-timeout": "5s"}
    files = {k: os.path.join(ARGS.work_dir, k) for k in ("handled", "acked", "errors", "done")}
    n, rate = 4000, 100  # 40 s of publishing at 100 records/s, one sync publish at a time
    listener = service("listener", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group,
                                               "FAULT_OUT": files["handled"]}, kafka=kafka)
    listener.start().wait_assigned()
    publisher = service("publisher", bootstrap, {"FAULT_TOPIC": topic, "FAULT_PUBLISH_COUNT": n,
                                                 "FAULT_PUBLISH_RATE": rate, "FAULT_ACKED": files["acked"],
                                                 "FAULT_PUBLISH_ERRORS": files["errors"],
                                                 "FAULT_PUBLISH_DONE": files["done"]}, kafka=kafka, publisher=True)
    publisher.start()
    acked = LineCounter(files["acked"])
    wait_until(lambda: acked() >= 1000, 60, "1000 acknowledged publishes")
    stop_s = broker.run("stop")
    down_since = time.monotonic()
    acked_at_stop = acked()
    time.sleep(10)  # the outage itself: the broker stays down for 10 s
    resume_s = broker.run("resume")
    down_s = time.monotonic() - down_since
    wait_until(lambda: os.path.exists(files["done"]) and os.path.getsize(files["done"]) > 0, 120,
               "the publisher to finish")
    acked_ids = read_ids(files["acked"])
    wait_handled(acked_ids, [files["handled"]], 90, "every acknowledged record handled")
    listener_stop_s = listener.stop()
    publisher_stop_s = publisher.stop()
    errors = publish_errors(files["errors"])
    done_acked, done_failed, slowest_ms = (int(x) for x in open(files["done"]).read().split())
    result = tally(acked_ids, files["handled"])
    FIGURES.update({"published": n, "acknowledged": len(acked_ids), "acknowledged_before_stop": acked_at_stop,
                    "failed_publishes": len(errors), "slowest_publish_ms": slowest_ms,
                    "slowest_failed_publish_ms": max((e[1] for e in errors), default=0),
                    "publish_timeout_ms": publish_timeout_s * 1000, "broker_down_seconds": round(down_s, 1),
                    "broker_stop_seconds": round(stop_s, 1), "broker_resume_seconds": round(resume_s, 1),
                    "acknowledged_missing": result["missing"], "duplicates": result["duplicates"],
                    "listener_stop_seconds": round(listener_stop_s, 2),
                    "publisher_stop_seconds": round(publisher_stop_s, 2),
                    "first_error": errors[0][2] if errors else ""})
    check(done_acked == len(acked_ids) and done_failed == len(errors), "publisher totals disagree with its files")
    check(done_acked + done_failed == n, f"{n - done_acked - done_failed} publishes neither acked nor failed")
    check(result["missing"] == 0, f"{result['missing']} acknowledged records not handled")
    # Every publish ends within its bound: publish-timeout, plus up to 1 s because librdkafka checks
    # message timeouts once a second (0.5 s more for a busy machine).
    check(slowest_ms <= publish_timeout_s * 1000 + 1500, f"a publish took {slowest_ms} ms")
    for ident, ms, error in errors:
        check("publish to" in error, f"unclear publish error for {ident}: {error}")


def scenario_leader_crash():
    """kill -9 the leader of partition 0 of a 3-node cluster while publishing 50,000 records."""
    cluster = OwnBroker("fault-cluster", 0, nodes=3)
    CLEANUPS.append(cluster.stop)
    bootstrap = cluster.start()
    topic, group = unique("leader"), unique("group")
    create_topic(bootstrap, topic, 6, replication=3)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    files = {k: os.path.join(ARGS.work_dir, k) for k in ("handled", "acked", "errors", "done")}
    n = 50_000
    kafka = {"publish-timeout": "60s", "connect-timeout": "10s"}
    listener = service("listener", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group,
                                               "FAULT_OUT": files["handled"]}, kafka=kafka)
    listener.start().wait_assigned()
    publisher = service("publisher", bootstrap, {"FAULT_TOPIC": topic, "FAULT_PUBLISH_COUNT": n,
                                                 "FAULT_PUBLISH_WINDOW": 200, "FAULT_PUBLISH_RATE": 2500,
                                                 "FAULT_ACKED": files["acked"],
                                                 "FAULT_PUBLISH_ERRORS": files["errors"],
                                                 "FAULT_PUBLISH_DONE": files["done"]}, kafka=kafka, publisher=True)
    publisher.start()
    acked = LineCounter(files["acked"])
    wait_until(lambda: acked() >= 10_000, 90, "10,000 acknowledged publishes")
    leader = admin.list_topics(topic, timeout=10).topics[topic].partitions[0].leader
    acked_at_kill = acked()
    cluster.run("--node", str(leader), "kill")
    killed_at = time.monotonic()

    def new_leader():
        md = admin.list_topics(topic, timeout=5).topics[topic].partitions[0]
        return md.leader not in (-1, leader)

    failover_s = wait_until(new_leader, 60, "a new leader of partition 0", interval=0.2)
    wait_until(lambda: acked() >= acked_at_kill + 5000, 90, "5,000 more acknowledged publishes after the kill")
    acked_while_down = acked() - acked_at_kill
    resume_s = cluster.run("--node", str(leader), "resume")
    down_s = time.monotonic() - killed_at
    wait_until(lambda: os.path.exists(files["done"]) and os.path.getsize(files["done"]) > 0, 120,
               "the publisher to finish")
    acked_ids = read_ids(files["acked"])
    wait_handled(acked_ids, [files["handled"]], 120, "every acknowledged record handled")
    listener.stop()
    publisher.stop()
    errors = publish_errors(files["errors"])
    # Every acknowledged record is in the log: read it back with another client.
    records = read_all(bootstrap, topic, len(acked_ids), 120)
    in_log = {json.loads(m.value())["id"] for m in records}
    lost = len(set(acked_ids) - in_log)
    result = tally(range(n), files["handled"])
    done_acked, done_failed, slowest_ms = (int(x) for x in open(files["done"]).read().split())
    FIGURES.update({"published": n, "acknowledged": len(acked_ids), "failed_publishes": len(errors),
                    "killed_node": leader, "acknowledged_at_kill": acked_at_kill,
                    "acknowledged_while_node_down": acked_while_down, "failover_seconds": round(failover_s, 1),
                    "node_down_seconds": round(down_s, 1), "node_resume_seconds": round(resume_s, 1),
                    "acknowledged_lost": lost, "log_records": len(records), "listener_missing": result["missing"],
                    "duplicates": result["duplicates"], "slowest_publish_ms": slowest_ms,
                    "first_error": errors[0][2] if errors else ""})
    check(lost == 0, f"{lost} acknowledged records are not in the log")
    check(len(errors) == 0, f"{len(errors)} publishes failed: {errors[:3]}")
    check(result["missing"] == 0, f"the listener misses {result['missing']} records")


def scenario_rebalance(ordering="partition"):
    """Three processes of one group join and leave (start, start, SIGTERM) over 100,000 records."""
    bootstrap = shared_bootstrap()
    n, partitions = 100_000, 6
    topic, group = unique("rebalance"), unique("group")
    create_topic(bootstrap, topic, partitions)
    keyed = ordering == "key"
    produce(bootstrap, topic, n, key_of=key_of if keyed else None)
    outs = [os.path.join(ARGS.work_dir, f"handled.{i}") for i in range(3)]
    # Each record takes 0.15 ms at least: the stream lasts long enough for the group to change under it.
    extra = {"FAULT_ORDERING": "key", "FAULT_CONCURRENCY": 16, "FAULT_DELAY_US": 3000} if keyed else {}
    members = [service(f"member{i}", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": outs[i],
                                                 "FAULT_DELAY_US": 150, **extra},
                       consumer_properties={"queued.min.messages": 1000}) for i in range(3)]
    counters = [LineCounter(o) for o in outs]
    total = lambda: sum(c() for c in counters)  # noqa: E731
    t0 = time.monotonic()
    members[0].start()
    wait_until(lambda: total() >= 0.2 * n, 120, "20 % handled")
    members[1].start()
    wait_until(lambda: "assigned partitions" in members[1].log_text() and total() >= 0.4 * n, 120,
               "member 1 in the group, 40 % handled")
    members[2].start()
    wait_until(lambda: "assigned partitions" in members[2].log_text() and total() >= 0.6 * n, 120,
               "member 2 in the group, 60 % handled")
    at_leave = total()
    leave_s = members[1].stop()
    wait_handled(range(n), outs, 180)
    drain_s = time.monotonic() - t0
    members[0].stop()
    members[2].stop()
    result = tally(range(n), *outs)
    FIGURES.update({"records": n, "partitions": partitions, **result,
                    "per_member": [len(read_ids(o)) for o in outs], "handled_when_member_left": at_leave,
                    "leave_seconds": round(leave_s, 2), "drain_seconds": round(drain_s, 1)})
    check(result["missing"] == 0, f"{result['missing']} records missing")
    check(all(FIGURES["per_member"]), "a member handled nothing: the group did not change under load")


def scenario_rebalance_key():
    scenario_rebalance("key")


def scenario_slow_handler():
    """max.poll.interval.ms = 10 s; one handler call takes 25 s: the fetch loop keeps polling, no rebalance."""
    bootstrap = shared_bootstrap()
    n, partitions, slow_id = 2000, 3, 100
    topic, group = unique("slow"), unique("group")
    create_topic(bootstrap, topic, partitions)
    produce(bootstrap, topic, n)
    out, events = os.path.join(ARGS.work_dir, "handled"), os.path.join(ARGS.work_dir, "events")
    listener = service("listener", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": out,
                                               "FAULT_EVENTS": events, "FAULT_SLOW_ID": slow_id,
                                               "FAULT_SLOW_MS": 25000},
                       consumer_properties={"max.poll.interval.ms": 10000})
    t0 = time.monotonic()
    listener.start()
    wait_until(lambda: os.path.exists(events) and "slow" in open(events).read(), 60, "the slow call")
    drain_s = wait_handled(range(n), [out], 120)
    still_alive = listener.alive()
    stop_s = listener.stop()
    result = tally(range(n), out)
    text = listener.log_text()
    FIGURES.update({"records": n, "slow_call_ms": 25000, "max_poll_interval_ms": 10000, **result,
                    "left_group": "poll interval" in text,
                    "drain_seconds": round(time.monotonic() - t0, 1), "drain_after_slow_seconds": round(drain_s, 1),
                    "stop_seconds": round(stop_s, 2)})
    check(still_alive, "the listener process ended")
    check(result["missing"] == 0, f"{result['missing']} records missing")
    check(result["duplicates"] == 0, f"{result['duplicates']} duplicates")
    check(not FIGURES["left_group"] and text.count("assigned partitions") == 1, "the consumer left its group")


def scenario_unreachable():
    """A closed port: non-zero exit, one clear line, within connect-timeout + 1 s. A broker that goes away:
    a sync publish fails within publish-timeout."""
    port = free_port()
    connect_timeout_s = 2
    s = service("unreachable", f"127.0.0.1:{port}", {"FAULT_TOPIC": "faults-unreachable"},
                kafka={"connect-timeout": f"{connect_timeout_s}s"})
    s.start()
    code, elapsed = s.wait_exit(connect_timeout_s + 10)
    lines = [line for line in s.log_text().splitlines() if line.startswith("cppfly: ")]
    FIGURES.update({"closed_port_exit_code": code, "closed_port_exit_seconds": round(elapsed, 2),
                    "closed_port_line": lines[0] if lines else ""})
    check(code == 3, f"exit code {code}, expected 3 (broker unreachable)")
    check(len(lines) == 1 and "cannot reach Kafka" in lines[0], f"reason lines: {lines}")
    check(elapsed <= connect_timeout_s + 1, f"exited after {elapsed:.2f} s")

    broker = OwnBroker("fault-gone", 50)
    CLEANUPS.append(broker.stop)
    bootstrap = broker.start()
    topic = unique("gone")
    create_topic(bootstrap, topic, 1)
    publish_timeout_s = 3
    files = {k: os.path.join(ARGS.work_dir, k) for k in ("acked", "errors", "done")}
    publisher = service("publisher", bootstrap, {"FAULT_TOPIC": topic, "FAULT_PUBLISH_COUNT": 100000,
                                                 "FAULT_PUBLISH_RATE": 50, "FAULT_ACKED": files["acked"],
                                                 "FAULT_PUBLISH_ERRORS": files["errors"],
                                                 "FAULT_PUBLISH_DONE": files["done"]},
                        kafka={"publish-timeout": f"{publish_timeout_s}s", "connect-timeout": "2s"}, publisher=True)
    publisher.start()
    acked = LineCounter(files["acked"])
    wait_until(lambda: acked() >= 50, 60, "50 acknowledged publishes")
    broker.run("kill")
    errors = LineCounter(files["errors"])
    wait_until(lambda: errors() >= 3, publish_timeout_s * 3 + 20, "3 failed publishes")
    stop_s = publisher.stop(publish_timeout_s + 30)
    rows = publish_errors(files["errors"])
    slowest = max(ms for _, ms, _ in rows)
    FIGURES.update({"gone_acknowledged": acked(), "gone_failed_publishes": len(rows), "gone_slowest_failure_ms": slowest,
                    "publish_timeout_ms": publish_timeout_s * 1000, "gone_error": rows[0][2],
                    "gone_stop_seconds": round(stop_s, 2)})
    # librdkafka checks message timeouts once a second: a report comes up to 1 s after publish-timeout
    # (0.5 s more for a busy machine).
    check(slowest <= publish_timeout_s * 1000 + 1500, f"a failed publish took {slowest} ms")
    check(all("publish to" in e for _, _, e in rows), f"unclear errors: {rows[:2]}")


def scenario_retry_stop():
    """SIGTERM while a record waits 60 s for its retry: exit within the shutdown timeout + 2 s, not lost."""
    bootstrap = shared_bootstrap()
    n, fail_id = 20, 7
    topic, group = unique("retrystop"), unique("group")
    create_topic(bootstrap, topic, 1)
    produce(bootstrap, topic, n)
    out, events = os.path.join(ARGS.work_dir, "handled"), os.path.join(ARGS.work_dir, "events")
    env = {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": out, "FAULT_EVENTS": events,
           "FAULT_RETRIES": 5, "FAULT_RETRY_DELAY_MS": 60000}
    shutdown_s = 5
    first = service("listener", bootstrap, {**env, "FAULT_FAIL_ID": fail_id}, shutdown_timeout=f"{shutdown_s}s")
    first.start()
    fails = LineCounter(events)
    wait_until(lambda: fails() >= 1, 60, "the first failed attempt")
    first.signal(signal.SIGTERM)
    code, exit_s = first.wait_exit(30)
    handled_first = read_ids(out)
    bound_s = shutdown_s + 2.0
    check(code == 0, f"exit code {code}")
    check(exit_s <= bound_s, f"the stop took {exit_s:.2f} s, more than {bound_s} s")
    check(fail_id not in handled_first and max(handled_first) < fail_id, "records after the failing one were handled")
    # The fault is gone: the restarted service gets the record again.
    second = service("listener2", bootstrap, env)
    second.start()
    wait_handled(range(n), [out], 60)
    second.stop()
    result = tally(range(n), out)
    FIGURES.update({"records": n, "retries": 5, "retry_delay_ms": 60000, "failed_attempts": fails(),
                    "exit_seconds_after_sigterm": round(exit_s, 2), "exit_bound_seconds": bound_s,
                    "handled_before_stop": len(handled_first), **result})
    check(result["missing"] == 0, f"{result['missing']} records missing (the one under retry is lost?)")
    check(result["duplicates"] == 0, f"{result['duplicates']} duplicates")


def transform_pipeline(transactional):
    """A consume-transform-produce listener (each input id published to an output topic) killed with -9
    mid-stream, restarted, drained: the output as a read_committed consumer sees it."""
    bootstrap = shared_bootstrap()
    n = 400
    tag = "eos" if transactional else "plain"
    topic, output, group = unique(tag), unique(tag + "-out"), unique("group")
    create_topic(bootstrap, topic, 2)
    create_topic(bootstrap, output, 1)
    produce(bootstrap, topic, n)
    out = os.path.join(ARGS.work_dir, tag + "-handled")
    hold = int(0.4 * n)
    env = {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_FORWARD": output, "FAULT_DELAY_US": 5000}
    kafka = {}
    if transactional:
        env["FAULT_TRANSACTIONAL"] = 1
        kafka["transactional-id-prefix"] = "fault-eos"
    else:
        # Nothing committed before the kill: every record handled by then runs again.
        kafka["commit-interval"] = "60s"
    # The first process holds inside the handling of its hold-th record (its output published, its
    # transaction open, nothing committed for it) and is killed there.
    first = service(tag + "-pipeline", bootstrap, {**env, "FAULT_OUT": out + ".1", "FAULT_HOLD_AFTER": hold},
                    kafka=kafka)
    first.start()
    handled = LineCounter(out + ".1")
    wait_until(lambda: handled() >= hold, 120, "40 % handled", interval=0.01)
    first.signal(signal.SIGKILL)
    first.wait_exit(30)
    before = handled()
    second = service(tag + "-pipeline2", bootstrap, {**env, "FAULT_OUT": out + ".2"}, kafka=kafka)
    second.start()
    wait_handled(range(n), [out + ".1", out + ".2"], 180)
    second.stop()
    records = read_all(bootstrap, output, n, 60)
    ids = [json.loads(m.value())["id"] for m in records]
    counts = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    result = {"transactional": transactional, "inputs": n, "handled_before_kill": before,
              "handler_runs": len(read_ids(out + ".1")) + len(read_ids(out + ".2")),
              "outputs": len(ids), "distinct_outputs": len(counts),
              "duplicate_outputs": len(ids) - len(counts), "missing_outputs": n - len(counts),
              "checksum_ok": sum(counts) == n * (n - 1) // 2 and set(counts) == set(range(n))}
    FIGURES.update(result)
    return result


def scenario_eos():
    """Exactly once: the transactional pipeline yields one output per input after a kill -9; the same
    pipeline without transactions shows duplicates."""
    plain = transform_pipeline(False)
    FIGURES.clear()
    eos = transform_pipeline(True)
    FIGURES.clear()
    FIGURES.update({"plain": plain, "transactional": eos})
    check(plain["missing_outputs"] == 0, f"plain pipeline: {plain['missing_outputs']} outputs missing")
    check(plain["duplicate_outputs"] > 0, "plain pipeline: no duplicates, the kill proved nothing")
    check(eos["missing_outputs"] == 0 and eos["checksum_ok"], f"transactional pipeline: {eos}")
    check(eos["duplicate_outputs"] == 0, f"transactional pipeline: {eos['duplicate_outputs']} duplicate outputs")
    check(eos["handler_runs"] > eos["inputs"], "the kill did not interrupt a transaction (no handler ran twice)")


def scenario_poison():
    """1,000 records: one undecodable, one whose handler always throws (retries 2, DLQ): 2 dead letters."""
    bootstrap = shared_bootstrap()
    n, bad_id, fail_id, partitions = 1000, 300, 700, 3
    topic, group = unique("poison"), unique("group")
    dlq = topic + "-dlq"
    create_topic(bootstrap, topic, partitions)
    create_topic(bootstrap, dlq, 1)
    produce(bootstrap, topic, n, value_of=lambda i: "{not json" if i == bad_id else json.dumps({"id": i}))
    out = os.path.join(ARGS.work_dir, "handled")
    listener = service("listener", bootstrap, {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": out,
                                               "FAULT_FAIL_ID": fail_id, "FAULT_RETRIES": 2,
                                               "FAULT_RETRY_DELAY_MS": 100, "FAULT_DLQ": dlq})
    listener.start()
    good = [i for i in range(n) if i not in (bad_id, fail_id)]
    wait_handled(good, [out], 90)
    dead = read_all(bootstrap, dlq, 2, 60)
    listener.stop()
    result = tally(good, out)
    headers = {m.key().decode(): {k: v.decode() for k, v in (m.headers() or [])} for m in dead}
    FIGURES.update({"records": n, "handled": result["handled"], "missing": result["missing"],
                    "duplicates": result["duplicates"], "dead_letters": len(dead), "dead_letter_headers": headers})
    check(len(dead) == 2, f"{len(dead)} dead letters, expected 2")
    check(result["missing"] == 0 and result["handled"] == n - 2, f"handled {result['handled']}, expected {n - 2}")
    check(str(fail_id) not in set(map(str, ids_in(out))), "the failing record counts as handled")
    by_key = {m.key().decode(): m for m in dead}
    check(set(by_key) == {str(bad_id), str(fail_id)}, f"dead-letter keys {sorted(by_key)}")
    expected = {
        str(bad_id): {"x-exception": "cppfly::messaging::PayloadDecodeError", "x-retry-count": "0",
                      "value": "{not json"},
        str(fail_id): {"x-exception": "std::runtime_error", "x-retry-count": "2",
                       "x-exception-message": f"record {fail_id} always fails", "value": json.dumps({"id": fail_id})},
    }
    for key, want in expected.items():
        m, h = by_key[key], headers[key]
        for name in ("x-original-topic", "x-exception", "x-exception-message", "x-original-partition",
                     "x-original-offset", "x-original-timestamp", "x-original-group", "x-retry-count"):
            check(name in h, f"dead letter {key} lacks {name}: {h}")
        check(h["x-original-topic"] == topic, f"x-original-topic {h['x-original-topic']}")
        check(m.value().decode() == want.pop("value"), f"dead letter {key}: value {m.value()!r}")
        for name, value in want.items():
            check(h[name] == value, f"dead letter {key}: {name} = {h[name]!r}, expected {value!r}")
        check(0 <= int(h["x-original-partition"]) < partitions, "x-original-partition")
        check(int(h["x-original-offset"]) >= 0, "x-original-offset")
        check(int(h["x-original-timestamp"]) > 0, "x-original-timestamp")
        check(h["x-original-group"] == group, f"x-original-group {h['x-original-group']}")
        check(len(h["x-exception-message"].encode()) <= 1024, "x-exception-message longer than 1,024 bytes")


def http_get(url, timeout=5):
    """(status, body) of a GET; status -1 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return -1, str(e)


class PrometheusServer:
    """Debian's prometheus, scraping one target every second, with its own data folder."""

    def __init__(self, target, metrics_path):
        self.dir = os.path.join(ARGS.work_dir, "prometheus")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: cppfly\n"
                    f"    metrics_path: {metrics_path}\n"
                    f"    static_configs:\n      - targets: ['{target}']\n")
        self.log_path = os.path.join(self.dir, "prometheus.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        CLEANUPS.append(self.stop)
        wait_until(lambda: http_get(f"{self.url()}/-/ready", 2)[0] == 200, 60, "prometheus to be ready", interval=0.2)
        log(f"prometheus: ready on port {self.port}, scraping {target}{metrics_path}")

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql):
        """The value of an instant query's first sample, or None when it has no sample."""
        status, body = http_get(f"{self.url()}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        check(status == 200, f"prometheus query {promql}: HTTP {status} {body[:300]}")
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def scenario_actuator():
    """The management server of a listener on a real broker: a real Prometheus scrapes its metrics and
    sees the counters move; promtool accepts the exposition; readiness goes DOWN while the broker is
    stopped and UP once it is back; DOWN again when the lag passes health.readiness.max-lag."""
    broker = OwnBroker("fault-actuator", 60)
    CLEANUPS.append(broker.stop)
    bootstrap = broker.start()
    topic, group = unique("actuator"), unique("group")
    create_topic(bootstrap, topic, 1)
    handled = os.path.join(ARGS.work_dir, "handled")
    first, max_lag = 200, 50
    listener = service("listener", bootstrap,
                       {"FAULT_TOPIC": topic, "FAULT_GROUP": group, "FAULT_OUT": handled,
                        "FAULT_HOLD_AFTER": first + 1},
                       kafka={"connect-timeout": "5s"},
                       consumer_properties={"statistics.interval.ms": 500},
                       management={"server.port": 0, "server.address": "127.0.0.1",
                                   "endpoints.web.exposure.include": "health,info,prometheus",
                                   "health.readiness.max-lag": max_lag})
    listener.start().wait_assigned()
    port = None

    def management_port():
        nonlocal port
        for line in listener.log_text().splitlines():
            if "management server: http://127.0.0.1:" in line:
                port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
                return True
        return False

    wait_until(management_port, 30, "the management server's address in the log")
    base = f"http://127.0.0.1:{port}/actuator"

    def readiness():
        status, body = http_get(f"{base}/health/readiness")
        return status, (json.loads(body) if status in (200, 503) else {})

    wait_until(lambda: readiness()[0] == 200, 30, "readiness UP")
    status, body = http_get(f"{base}/info")
    check(status == 200 and json.loads(body)["listeners"][0]["topics"] == [topic], f"info: {status} {body}")

    prometheus = PrometheusServer(f"127.0.0.1:{port}", "/actuator/prometheus")
    wait_until(lambda: prometheus.query('up{job="cppfly"}') == 1.0, 30, "prometheus to scrape the service")
    handled_query = f'sum(cppfly_records_handled_total{{topic="{topic}",outcome="success"}})'
    before = prometheus.query(handled_query)
    check(before in (None, 0.0), f"records handled before any was published: {before}")
    produce(bootstrap, topic, first)
    counter = LineCounter(handled)
    wait_until(lambda: counter() >= first, 60, f"{first} records handled")
    waited = wait_until(lambda: prometheus.query(handled_query) == float(first), 30,
                        f"prometheus to see {first} records handled")
    received = prometheus.query(f'sum(cppfly_records_received_total{{topic="{topic}"}})')
    check(received == float(first), f"records received: {received}")
    check(prometheus.query(f'sum(cppfly_handler_duration_seconds_count{{topic="{topic}"}})') == float(first),
          "handler duration histogram count")
    FIGURES["prometheus_saw_counters_after_s"] = round(waited, 1)

    # promtool lints the exposition as served.
    status, exposition = http_get(f"{base}/prometheus")
    check(status == 200, f"prometheus endpoint: HTTP {status}")
    lint = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True,
                          timeout=30)
    check(lint.returncode == 0, f"promtool check metrics: exit {lint.returncode}: {lint.stdout} {lint.stderr}")
    wait_until(lambda: any(line.startswith("cppfly_consumer_lag{") and f'topic="{topic}"' in line
                           for line in http_get(f"{base}/prometheus")[1].splitlines()), 30, "a consumer lag series")

    # The broker goes away: readiness DOWN (503, broker DOWN); back: UP.
    wait_until(lambda: readiness()[0] == 200, 30, "readiness UP before the broker stops")
    broker.run("stop")
    down = wait_until(lambda: readiness()[0] == 503 and readiness()[1]["components"]["broker"]["status"] == "DOWN",
                      30, "readiness DOWN while the broker is stopped")
    check(http_get(f"{base}/health/liveness")[0] == 200, "liveness stays UP while the broker is away")
    broker.run("resume")
    up = wait_until(lambda: readiness()[0] == 200, 60, "readiness UP once the broker is back")
    FIGURES.update({"readiness_down_after_s": round(down, 1), "readiness_up_after_resume_s": round(up, 1)})

    # The next record's handler holds: the records behind it are lag, above max-lag readiness is DOWN.
    produce(bootstrap, topic, 2 * max_lag)
    wait_until(lambda: readiness()[0] == 503 and readiness()[1]["components"]["lag"]["status"] == "DOWN", 30,
               f"readiness DOWN with the lag above {max_lag}")
    lag = readiness()[1]["components"]["lag"]["details"]["partitions"]
    check(any(v > max_lag for v in lag.values()), f"lag details: {lag}")
    lag_seen = wait_until(lambda: (prometheus.query(f'max(cppfly_consumer_lag{{topic="{topic}"}})') or 0) > max_lag,
                          30, "prometheus to see the lag")
    FIGURES["prometheus_saw_lag_after_s"] = round(lag_seen, 1)


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
