"""bench/peers harness: cppfly against Spring for Apache Kafka, FastStream and raw librdkafka on one
real Apache Kafka broker. Started by bench/peers/run (which installs and builds everything first);
see `bench/peers/run --help` and docs/benchmarks.md.

Workloads, each repeated (rounds; the contenders' order rotates from round to round):
  drain    a fresh 6-partition topic filled with N 100-byte JSON orders; each contender drains it from
           offset 0 in group "bench" (the harness resets the group's offsets between contenders);
           time from process start to the last message, CPU seconds and peak RSS of the process
  publish  each contender's own publish API sends N orders to a fresh topic and waits for every
           acknowledgement; messages/s from the first send to the last acknowledgement
  latency  a paced producer (linger.ms=5) sends RATE msg/s to a fresh topic for WARMUP + SECONDS; each
           message carries the producer's clock in header x-sent-us; latency = handler clock - that, for
           the messages after the warm-up; p50 / p99 / p99.9 / max
  latency-linger1
           the same stream with the producer at linger.ms=1 (the low-latency setting)
  slow     a fresh 6-partition topic filled with N orders keyed key-0..key-(KEYS-1), header x-seq
           counting 0, 1, 2, ... within each key; each contender drains it in group "bench" while each
           handler call waits SLEEP_MS as for I/O, and checks the order of every key; records/s from
           process start to the last record. Contenders: cppfly-key (ordering key, concurrency 64),
           cppfly-partition (ordering partition, concurrency 64: at most one record a partition),
           spring (@KafkaListener, concurrency 6), parallel (Confluent Parallel Consumer, KEY order,
           maxConcurrency 64).
  slow-retry
           the same contenders and handler, fed by a paced producer: RETRY_RATE keyed records/s (header
           x-sent-us) for WARMUP + RETRY_SECONDS; the first record of key-0 after the warm-up fails its
           first 5 handler calls and is retried 5 times, retry N after 200 ms × N (cppfly's linear
           backoff; Spring's DefaultErrorHandler and Parallel Consumer's retryDelayProvider given the
           same schedule); p50 / p99 / max latency of the other keys' records after the warm-up.
The paced producer's linger.ms: at 0 (this harness's earlier setting) every record of the stream is an
acks=all produce request of its own, and a broker on 2 shared cores falls behind on those: every
contender's p99 then measures the broker's backlog. 5 ms is librdkafka's default (and cppfly's); the
linger1 row shows what a latency-minded producer gets. linger.ms is a producer setting and the latency
contenders only consume, so their own settings stay as they are in both rows (their fetch wait,
fetch.wait.max.ms / fetch.max.wait.ms, is 500 ms in every client and returns as soon as data is there).
A figure is void when the contender did not see every message: count, Σ id and Σ id² must match; in the
slow workload also no record of a key may come after a later one of that key (violations = 0).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "bench" / "peers"
BUILD = ROOT / "build"
BIN = BUILD / "peers" / "bench" / "peers"
SPRING_JAR = BUILD / "peers-spring" / "peer-spring.jar"
PARALLEL_JAR = BUILD / "peers-parallel" / "peer-parallel.jar"
VENV_PYTHON = BUILD / "peers-venv" / "bin" / "python"
KAFKA_RUN = BUILD / "kafka-peers"
PARTITIONS = 6
GROUP = "bench"
CONTENDERS = ["cppfly", "raw", "spring", "faststream"]  # drain, publish, latency, latency-linger1
SLOW_CONTENDERS = ["cppfly-key", "cppfly-partition", "spring", "parallel"]  # slow
ALL_CONTENDERS = CONTENDERS + [c for c in SLOW_CONTENDERS if c not in CONTENDERS]
WORKLOADS = ["drain", "publish", "latency", "latency-linger1", "slow", "slow-retry"]
# The paced producer's linger.ms in each latency workload (see the module's docstring).
LATENCY_LINGER_MS = {"latency": 5, "latency-linger1": 1}
SLOW_KEYS = 1000
# Concurrency of each slow contender (PEER_CONCURRENCY): cppfly and Parallel Consumer 64 records at
# once; Spring one consumer thread a partition.
SLOW_CONCURRENCY = {"cppfly-key": 64, "cppfly-partition": 64, "spring": 6, "parallel": 64}


def slow_bound(name: str, sleep_ms: int) -> int:
    """Records/s the waits alone allow: handler calls at once (partition order: one a partition) / wait."""
    at_once = min(SLOW_CONCURRENCY[name], PARTITIONS) if name in ("cppfly-partition", "spring") else min(
        SLOW_CONCURRENCY[name], SLOW_KEYS)
    return at_once * 1000 // sleep_ms
LABELS = {
    "cppfly": "cppfly",
    "raw": "raw librdkafka",
    "spring": "Spring for Apache Kafka",
    "faststream": "FastStream",
    "cppfly-key": "cppfly, ordering key",
    "cppfly-partition": "cppfly, ordering partition",
    "parallel": "Confluent Parallel Consumer",
}


def log(message: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of all cores busy over `seconds` (0..1), from /proc/stat."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(total1 - total0, 1)


def dirty_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Dirty:"):
            return int(line.split()[1]) / 1024
    return 0.0


def settle(limit_s: float = 45, busy_below: float = 0.25) -> float:
    """Before each measurement: written data on disk (a broker appending while the kernel writes back the
    previous run's gigabyte stalls for seconds), and the cores idle (our broker alone is ~5 %). Returns the
    CPU share that was busy when the measurement started."""
    os.sync()
    deadline = time.time() + limit_s
    while dirty_mb() > 64 and time.time() < deadline:
        time.sleep(0.5)
    busy = cpu_busy()
    while busy >= busy_below and time.time() < deadline:
        busy = cpu_busy(5.0)
    if busy >= busy_below:
        log(f"the cores are still {busy:.0%} busy after {limit_s:.0f} s; measuring anyway (recorded)")
    return busy


# ---------------------------------------------------------------------------------------------------
# Broker


class Broker:
    """Our own scripts/kafka broker on ports nobody else uses."""

    def __init__(self, port: int | None) -> None:
        self.port = port
        self.env: dict[str, str] = {}
        self.started = False

    @staticmethod
    def _in_use(port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    def _script(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(ROOT / "scripts" / "kafka"), command], env={**os.environ, **self.env},
                              check=check, text=True, capture_output=True)

    def start(self) -> str:
        candidates = [self.port] if self.port else [49092, 49192, 49292, 49392, 49492]
        # A broker of ours left by an interrupted run is stopped first (its pid file is in our run dir).
        self.env = {"CPPFLY_KAFKA_RUN": str(KAFKA_RUN)}
        self._script("stop", check=False)
        for port in candidates:
            if self._in_use(port) or self._in_use(port + 1):
                log(f"ports {port}/{port + 1} are in use by another process; trying the next pair")
                continue
            self.port = port
            self.env = {"CPPFLY_KAFKA_PORT": str(port), "CPPFLY_KAFKA_CONTROLLER_PORT": str(port + 1),
                        "CPPFLY_KAFKA_RUN": str(KAFKA_RUN)}
            result = self._script("start", check=False)
            if result.returncode != 0:
                sys.stderr.write(result.stdout + result.stderr)
                raise SystemExit("bench/peers: the Kafka broker did not start")
            self.started = True
            log(result.stdout.strip())
            return f"127.0.0.1:{port}"
        raise SystemExit("bench/peers: no free port pair for the broker (tried " + ", ".join(map(str, candidates)) + ")")

    def stop(self) -> None:
        if not self.started:
            return
        result = self._script("stop", check=False)
        log(result.stdout.strip() or result.stderr.strip())
        self.started = False
        # The topics written by the run (a few GB) are of no further use.
        subprocess.run(["rm", "-rf", str(KAFKA_RUN / "data")], check=False)


class Admin:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def create_topic(self, name: str, partitions: int = PARTITIONS) -> None:
        for future in self.admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30).values():
            future.result()
        # Wait until every partition has a leader.
        deadline = time.time() + 30
        while time.time() < deadline:
            md = self.admin.list_topics(name, timeout=10).topics.get(name)
            if md is not None and md.error is None and len(md.partitions) == partitions and all(
                    p.leader >= 0 for p in md.partitions.values()):
                return
            time.sleep(0.2)
        raise RuntimeError(f"topic {name} has no leaders after 30 s")

    def group_state(self) -> tuple[str, int]:
        groups = self.admin.list_groups(group=GROUP, timeout=10)
        if not groups:
            return "", 0
        return groups[0].state, len(groups[0].members)

    def wait_group_idle(self, timeout: float = 90) -> None:
        """A member left behind (a killed process) would stall the next join for a session timeout."""
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            state, members = self.group_state()
            if members == 0 and state in ("", "Empty", "Dead"):
                return
            time.sleep(1)
        log(f"warning: group {GROUP} still {state} after {timeout:.0f} s")

    def wait_group_stable(self, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            state, members = self.group_state()
            if state == "Stable" and members > 0:
                return True
            time.sleep(0.25)
        return False

    def _consumer(self, group: str) -> Consumer:
        return Consumer({"bootstrap.servers": self.bootstrap, "group.id": group, "enable.auto.commit": False})

    def reset_group(self, topic: str) -> None:
        """Group "bench" back to offset 0 of the topic, so the next contender drains all of it."""
        consumer = self._consumer(GROUP)
        try:
            offsets = [TopicPartition(topic, p, 0) for p in range(PARTITIONS)]
            consumer.commit(offsets=offsets, asynchronous=False)
            committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
            if any(tp.offset != 0 for tp in committed):
                raise RuntimeError(f"group {GROUP} offsets not reset on {topic}: {committed}")
        finally:
            consumer.close()

    def message_count(self, topic: str) -> int:
        consumer = self._consumer("peers-harness")
        try:
            total = 0
            for p in range(PARTITIONS):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                total += high - low
            return total
        finally:
            consumer.close()


# ---------------------------------------------------------------------------------------------------
# Processes


@dataclass
class Outcome:
    exit_code: int
    spawn_ms: float
    wall_s: float
    cpu_s: float
    rss_mb: float
    report: dict | None
    timed_out: bool
    log_prefix: str


class Running:
    """A started contender (own process group, so a timeout kills it and whatever it started)."""

    current: "Running | None" = None

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path, tag: str) -> None:
        self.name = name
        self.log_prefix = str(logs / tag)
        self.out = open(self.log_prefix + ".out", "wb")
        self.err = open(self.log_prefix + ".err", "wb")
        # CPU and peak RSS come from GNU time: the rusage of a child forked from this (large) Python
        # process would count the parent's pages in ru_maxrss.
        self.usage_file = self.log_prefix + ".time"
        Path(self.usage_file).unlink(missing_ok=True)
        self.spawn_ms = time.time() * 1000
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(["/usr/bin/time", "-o", self.usage_file, "-f", "%U %S %M", *argv], env=env,
                                     stdout=self.out, stderr=self.err, cwd=str(ROOT), start_new_session=True)
        self.timed_out = False
        Running.current = self

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def finish(self, timeout: float) -> Outcome:
        def expire() -> None:
            self.timed_out = True
            self.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            timer.cancel()
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - self.t0
        self.out.close()
        self.err.close()
        Running.current = None
        report = None
        with open(self.log_prefix + ".out", "rb") as out:
            for line in out:
                if line.startswith(b'{"count"'):
                    report = json.loads(line)
        trim_log(self.log_prefix + ".out")
        trim_log(self.log_prefix + ".err")
        cpu, rss_mb = usage.ru_utime + usage.ru_stime, float("nan")
        try:
            fields = Path(self.usage_file).read_text().split()[-3:]
            cpu, rss_mb = float(fields[0]) + float(fields[1]), int(fields[2]) / 1024
        except (OSError, ValueError, IndexError):
            pass  # killed: GNU time wrote nothing
        return Outcome(self.proc.returncode, self.spawn_ms, wall, cpu, rss_mb, report, self.timed_out,
                       self.log_prefix)


def trim_log(path: str, keep: int = 400) -> None:
    """FastStream logs every message: keep the head and the tail of big logs."""
    p = Path(path)
    if p.stat().st_size < 2_000_000:
        return
    lines = p.read_bytes().splitlines(keepends=True)
    p.write_bytes(b"".join(lines[:keep // 2]) + f"... {len(lines) - keep} lines cut ...\n".encode() +
                  b"".join(lines[-keep // 2:]))


def contender_argv(name: str) -> list[str]:
    if name in ("cppfly", "cppfly-key", "cppfly-partition"):
        # PEERS_CPPFLY_CONFIG: try another pyfly.yaml (e.g. extra librdkafka properties) without editing ours.
        config = os.environ.get("PEERS_CPPFLY_CONFIG") or str(PEERS / "cppfly" / "pyfly.yaml")
        return [str(BIN / "peer_cppfly"), "--config", config]
    if name == "raw":
        return [str(BIN / "peer_raw")]
    if name == "spring":
        return ["java", "-jar", str(SPRING_JAR)]
    if name == "faststream":
        return [str(VENV_PYTHON), str(PEERS / "faststream" / "app.py")]
    if name == "parallel":
        return ["java", "-jar", str(PARALLEL_JAR)]
    raise ValueError(name)


def contender_env(bootstrap: str, mode: str, topic: str, count: int, timeout: float,
                  latency_file: str = "", extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("PEER_", "PYFLY_", "SPRING_", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")):
            del env[key]
    env.update({
        "PEER_MODE": mode, "PEER_TOPIC": topic, "PEER_COUNT": str(count), "PEER_BOOTSTRAP": bootstrap,
        "PEER_IDLE_TOPIC": "peers-idle", "PEER_TIMEOUT_S": str(int(timeout)),
        "PYFLY_MESSAGING_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "PEER_LATENCY_FILE": latency_file,
    })
    env.update(extra or {})
    return env


def expected_sums(n: int) -> tuple[int, int]:
    return n * (n - 1) // 2, (n - 1) * n * (2 * n - 1) // 6


def check_consumed(report: dict | None, n: int) -> str:
    """Empty when the contender saw every message exactly as sent; else why the figure is void."""
    if report is None:
        return "no report line"
    want_sum, want_sumsq = expected_sums(n)
    problems = []
    if report.get("count") != n:
        problems.append(f"count {report.get('count')} != {n}")
    if report.get("sum") != want_sum:
        problems.append(f"sum {report.get('sum')} != {want_sum}")
    if report.get("sumsq") != want_sumsq:
        problems.append(f"sumsq {report.get('sumsq')} != {want_sumsq}")
    return "; ".join(problems)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 100)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# ---------------------------------------------------------------------------------------------------
# Workloads


@dataclass
class Settings:
    drain_n: int
    faststream_drain_n: int
    publish_n: int
    rate: int
    seconds: int
    warmup: int
    repeats: int
    contenders: list[str]  # drain, publish, latency, latency-linger1
    workloads: list[str]
    slow_n: int = 50_000
    slow_sleep_ms: int = 2
    slow_contenders: list[str] = field(default_factory=list)
    retry_rate: int = 500
    retry_seconds: int = 20


@dataclass
class Bench:
    settings: Settings
    admin: Admin
    bootstrap: str
    logs: Path
    runs: list[dict] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: time.strftime("%H%M%S"))

    def producer(self, args: list[str]) -> dict:
        env = {**os.environ, "PEER_BOOTSTRAP": self.bootstrap}
        result = subprocess.run([str(BIN / "peer_producer"), *args], env=env, capture_output=True, text=True,
                                timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"peer_producer {' '.join(args)} failed: {result.stderr.strip()}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def fill(self, topic: str, n: int, keys: int = 0) -> None:
        """N orders; keys > 0: keyed "key-0".."key-(keys-1)" with header x-seq (the slow workload)."""
        self.admin.create_topic(topic)
        t0 = time.monotonic()
        report = self.producer(["keyed", topic, str(n), str(keys)] if keys else ["fill", topic, str(n)])
        if report["count"] != n or self.admin.message_count(topic) != n:
            raise RuntimeError(f"filling {topic}: {report} / {self.admin.message_count(topic)} messages")
        log(f"filled {topic} with {n:,} orders in {time.monotonic() - t0:.1f} s")

    def record(self, workload: str, contender: str, round_: int, outcome: Outcome, void: str, busy: float,
               **figures) -> dict:
        run = {"workload": workload, "contender": contender, "round": round_, "void": void,
               "busy_before": round(busy, 3),
               "exit_code": outcome.exit_code, "timed_out": outcome.timed_out, "cpu_s": round(outcome.cpu_s, 3),
               "rss_mb": round(outcome.rss_mb, 1), "wall_s": round(outcome.wall_s, 3), "load1": load1(),
               "log": os.path.relpath(outcome.log_prefix, ROOT), **figures}
        self.runs.append(run)
        shown = {k: v for k, v in figures.items() if not isinstance(v, list)}
        log(f"{workload:8s} {contender:16s} round {round_}: " +
            (f"VOID ({void})" if void else ", ".join(f"{k}={v}" for k, v in shown.items())) +
            f", cpu {outcome.cpu_s:.2f} s, rss {outcome.rss_mb:.0f} MB, cores busy before {busy:.0%}, "
            f"load {load1():.2f}")
        return run

    # -- drain ---------------------------------------------------------------------------------------
    def drain(self, round_: int, order: list[str]) -> None:
        s = self.settings
        topic = f"peers-drain-{self.run_id}-r{round_}"
        small_topic = f"peers-drain-{self.run_id}-r{round_}-small"
        self.fill(topic, s.drain_n)
        if "faststream" in order and s.faststream_drain_n != s.drain_n:
            self.fill(small_topic, s.faststream_drain_n)
        for name in order:
            n = s.faststream_drain_n if name == "faststream" else s.drain_n
            t = small_topic if name == "faststream" and s.faststream_drain_n != s.drain_n else topic
            self.admin.wait_group_idle()
            self.admin.reset_group(t)
            busy = settle()
            timeout = 120 + n / 1000
            running = Running(name, contender_argv(name), contender_env(self.bootstrap, "consume", t, n, timeout),
                              self.logs, f"drain-r{round_}-{name}")
            outcome = running.finish(timeout + 30)
            void = check_consumed(outcome.report, n) or ("timed out" if outcome.timed_out else "")
            figures: dict = {"n": n}
            if not void and outcome.report:
                r = outcome.report
                drain_s = (r["last_ms"] - outcome.spawn_ms) / 1000
                figures.update(drain_s=round(drain_s, 3), msgs_per_s=round(n / drain_s),
                               startup_s=round((r["first_ms"] - outcome.spawn_ms) / 1000, 3),
                               steady_msgs_per_s=round(n / max((r["last_ms"] - r["first_ms"]) / 1000, 1e-3)),
                               cpu_us_per_msg=round(outcome.cpu_s * 1e6 / n, 2))
            self.record("drain", name, round_, outcome, void, busy, **figures)

    # -- publish -------------------------------------------------------------------------------------
    def publish(self, round_: int, order: list[str]) -> None:
        n = self.settings.publish_n
        for name in order:
            topic = f"peers-publish-{self.run_id}-r{round_}-{name}"
            self.admin.create_topic(topic)
            self.admin.wait_group_idle()
            busy = settle()
            timeout = 120 + n / 1000
            running = Running(name, contender_argv(name),
                              contender_env(self.bootstrap, "publish", topic, n, timeout), self.logs,
                              f"publish-r{round_}-{name}")
            outcome = running.finish(timeout + 30)
            r = outcome.report
            stored = self.admin.message_count(topic)
            void = ""
            if r is None:
                void = "no report line"
            elif r.get("count") != n or r.get("errors"):
                void = f"acknowledged {r.get('count')} of {n} ({r.get('errors')} errors)"
            elif stored != n:
                void = f"topic holds {stored} messages, not {n}"
            figures: dict = {"n": n}
            if not void and r:
                publish_s = (r["last_ms"] - r["first_ms"]) / 1000
                figures.update(publish_s=round(publish_s, 3), msgs_per_s=round(n / max(publish_s, 1e-3)),
                               cpu_us_per_msg=round(outcome.cpu_s * 1e6 / n, 2))
            self.record("publish", name, round_, outcome, void, busy, **figures)

    # -- broker warm-up (not measured) ---------------------------------------------------------------
    def warm_broker(self, label: str, seconds: int, linger_ms: int) -> None:
        """The first paced stream after the broker started (or after the publish workload wrote gigabytes)
        sees seconds of latency whoever consumes it: the broker's JVM warms up to many small requests.
        A stream consumed by peer_raw that nobody measures takes that hit instead."""
        s = self.settings
        topic = f"peers-warmup-{self.run_id}-{label}"
        n = s.rate * seconds
        self.admin.create_topic(topic)
        self.admin.wait_group_idle()
        settle()
        running = Running("raw", contender_argv("raw"), contender_env(self.bootstrap, "consume", topic, n, 120),
                          self.logs, f"warmup-{label}")
        if self.admin.wait_group_stable(60):
            try:
                self.producer(["paced", topic, str(n), str(s.rate), str(linger_ms)])
            except Exception as error:  # noqa: BLE001
                log(f"warm-up producer failed: {error}")
        outcome = running.finish(150)
        log(f"broker warm-up {label}: {n:,} messages at {s.rate:,}/s " +
            ("done" if not check_consumed(outcome.report, n) else "incomplete (ignored)"))

    # -- latency -------------------------------------------------------------------------------------
    def latency(self, round_: int, order: list[str], workload: str = "latency") -> None:
        """workload latency (producer linger.ms=5) or latency-linger1 (linger.ms=1)."""
        s = self.settings
        linger_ms = LATENCY_LINGER_MS[workload]
        warm_n = s.rate * s.warmup
        n = s.rate * (s.warmup + s.seconds)
        # The first paced stream after the broker started shows a multi-second transient, whoever is
        # measured first (seen with raw as well as cppfly): a long warm-up before the first latency
        # workload of round 1, short ones after.
        first = round_ == 1 and workload == next(w for w in s.workloads if w in LATENCY_LINGER_MS)
        self.warm_broker(f"r{round_}-{workload}", (30 if s.seconds >= 20 else 15) if first else 10, linger_ms)
        for name in order:
            topic = f"peers-{workload}-{self.run_id}-r{round_}-{name}"
            self.admin.create_topic(topic)
            self.admin.wait_group_idle()
            latency_file = self.logs / f"{workload}-r{round_}-{name}.txt"
            latency_file.unlink(missing_ok=True)
            busy = settle()
            # A contender slower than the offered rate drains its backlog after the producer stops.
            timeout = 180 + s.warmup + s.seconds + n / 1000
            running = Running(name, contender_argv(name),
                              contender_env(self.bootstrap, "consume", topic, n, timeout, str(latency_file)),
                              self.logs, f"{workload}-r{round_}-{name}")
            producer = None
            if self.admin.wait_group_stable(120):
                time.sleep(1.0)  # partitions assigned; let the first fetch start
                try:
                    producer = self.producer(["paced", topic, str(n), str(s.rate), str(linger_ms)])
                except Exception as error:  # noqa: BLE001 - reported as a void figure
                    log(f"paced producer failed: {error}")
                    running.kill()
            else:
                log(f"{name}: group {GROUP} not stable within 120 s")
                running.kill()
            outcome = running.finish(timeout + 30)
            void = check_consumed(outcome.report, n) or ("timed out" if outcome.timed_out else "")
            if producer is None and not void:
                void = "the paced producer did not run"
            figures: dict = {"n": n}
            if not void and latency_file.exists():
                values = []
                for line in latency_file.read_text().splitlines():
                    ident, micros = line.split()
                    if int(ident) >= warm_n:
                        values.append(int(micros) / 1000.0)
                values.sort()
                if len(values) != n - warm_n:
                    void = f"{len(values)} latencies recorded, expected {n - warm_n}"
                else:
                    sent_s = (producer["last_ms"] - producer["first_ms"]) / 1000
                    figures.update(p50_ms=round(percentile(values, 50), 3), p99_ms=round(percentile(values, 99), 3),
                                   p999_ms=round(percentile(values, 99.9), 3), max_ms=round(values[-1], 3),
                                   offered_rate=round(n / max(sent_s, 1e-3)),
                                   # > 0 s: the contender was still working off a backlog after the producer
                                   # ended, i.e. it cannot sustain the offered rate (saturated).
                                   behind_s=round((outcome.report["last_ms"] - producer["last_ms"]) / 1000, 3))
            self.record(workload, name, round_, outcome, void, busy, linger_ms=linger_ms, **figures)

    def latency_linger1(self, round_: int, order: list[str]) -> None:
        self.latency(round_, order, "latency-linger1")

    # -- slow handler --------------------------------------------------------------------------------
    def slow(self, round_: int, order: list[str]) -> None:
        """Keyed records, a handler that waits SLEEP_MS each call: how much of the waiting a contender
        overlaps while it keeps every key in order."""
        s = self.settings
        n = s.slow_n
        topic = f"peers-slow-{self.run_id}-r{round_}"
        self.fill(topic, n, SLOW_KEYS)
        for name in order:
            self.admin.wait_group_idle()
            self.admin.reset_group(topic)
            busy = settle()
            # A serial handler takes n × SLEEP_MS (and a little more: a sleep overshoots).
            timeout = 120 + n * s.slow_sleep_ms * 2.5 / 1000
            extra = {"PEER_SLEEP_MS": str(s.slow_sleep_ms), "PEER_CONCURRENCY": str(SLOW_CONCURRENCY[name])}
            if name.startswith("cppfly-"):
                extra["PEER_ORDERING"] = name.removeprefix("cppfly-")
            running = Running(name, contender_argv(name),
                              contender_env(self.bootstrap, "slow", topic, n, timeout, extra=extra),
                              self.logs, f"slow-r{round_}-{name}")
            outcome = running.finish(timeout + 30)
            void = check_consumed(outcome.report, n) or ("timed out" if outcome.timed_out else "")
            violations = (outcome.report or {}).get("violations")
            if not void and violations != 0:
                void = f"{violations} per-key order violations"
            figures: dict = {"n": n, "concurrency": SLOW_CONCURRENCY[name], "violations": violations}
            if not void and outcome.report:
                r = outcome.report
                slow_s = (r["last_ms"] - outcome.spawn_ms) / 1000
                figures.update(slow_s=round(slow_s, 3), msgs_per_s=round(n / slow_s),
                               startup_s=round((r["first_ms"] - outcome.spawn_ms) / 1000, 3),
                               steady_msgs_per_s=round(n / max((r["last_ms"] - r["first_ms"]) / 1000, 1e-3)),
                               # what one handler call's wait allows at best with this many at once
                               bound_msgs_per_s=slow_bound(name, s.slow_sleep_ms))
            self.record("slow", name, round_, outcome, void, busy, **figures)

    def slow_retry(self, round_: int, order: list[str]) -> None:
        """The slow handler on a paced keyed stream while one key's record is retried: how long the
        other keys' records wait."""
        s = self.settings
        warm_n = s.retry_rate * s.warmup
        n = s.retry_rate * (s.warmup + s.retry_seconds)
        fail_id = -(-warm_n // SLOW_KEYS) * SLOW_KEYS  # key-0's first record after the warm-up
        for name in order:
            topic = f"peers-slow-retry-{self.run_id}-r{round_}-{name}"
            self.admin.create_topic(topic)
            self.admin.wait_group_idle()
            latency_file = self.logs / f"slow-retry-r{round_}-{name}.txt"
            latency_file.unlink(missing_ok=True)
            busy = settle()
            timeout = 180 + s.warmup + s.retry_seconds + n * s.slow_sleep_ms * 2.5 / 1000
            extra = {"PEER_SLEEP_MS": str(s.slow_sleep_ms), "PEER_CONCURRENCY": str(SLOW_CONCURRENCY[name]),
                     "PEER_FAIL_ID": str(fail_id), "PEER_FAIL_TIMES": "5"}
            if name.startswith("cppfly-"):
                extra["PEER_ORDERING"] = name.removeprefix("cppfly-")
            running = Running(name, contender_argv(name),
                              contender_env(self.bootstrap, "slow", topic, n, timeout, str(latency_file), extra),
                              self.logs, f"slow-retry-r{round_}-{name}")
            producer = None
            if self.admin.wait_group_stable(120):
                time.sleep(1.0)
                try:
                    producer = self.producer(["paced", topic, str(n), str(s.retry_rate),
                                              str(LATENCY_LINGER_MS["latency"]), str(SLOW_KEYS)])
                except Exception as error:  # noqa: BLE001 - reported as a void figure
                    log(f"paced producer failed: {error}")
                    running.kill()
            else:
                log(f"{name}: group {GROUP} not stable within 120 s")
                running.kill()
            outcome = running.finish(timeout + 30)
            void = check_consumed(outcome.report, n) or ("timed out" if outcome.timed_out else "")
            violations = (outcome.report or {}).get("violations")
            if not void and violations != 0:
                void = f"{violations} per-key order violations"
            if producer is None and not void:
                void = "the paced producer did not run"
            figures: dict = {"n": n, "fail_id": fail_id, "violations": violations}
            if not void and latency_file.exists():
                others, failed_ms = [], None
                for line in latency_file.read_text().splitlines():
                    ident, micros = (int(x) for x in line.split())
                    if ident == fail_id:
                        failed_ms = micros / 1000.0
                    elif ident >= warm_n and ident % SLOW_KEYS != 0:
                        others.append(micros / 1000.0)
                others.sort()
                expected = sum(1 for i in range(warm_n, n) if i % SLOW_KEYS != 0)
                if len(others) != expected:
                    void = f"{len(others)} latencies of the other keys recorded, expected {expected}"
                else:
                    figures.update(p50_ms=round(percentile(others, 50), 3), p99_ms=round(percentile(others, 99), 3),
                                   max_ms=round(others[-1], 3),
                                   failed_ms=None if failed_ms is None else round(failed_ms, 3),
                                   behind_s=round((outcome.report["last_ms"] - producer["last_ms"]) / 1000, 3))
            self.record("slow-retry", name, round_, outcome, void, busy, **figures)

    def run_all(self) -> None:
        s = self.settings
        # cppfly's listener sits on this topic while the process publishes (a listener always subscribes).
        if "peers-idle" not in self.admin.admin.list_topics(timeout=10).topics:
            self.admin.create_topic("peers-idle", 1)
        # A fresh broker hands out its first idempotent producer id slowly ("coordinator load in progress"),
        # and the first latency run after that saw seconds of delay whoever consumed: one idempotent
        # producer (kcat) goes first.
        warm_topic = f"peers-warmup-{self.run_id}-idempotent"
        self.admin.create_topic(warm_topic)
        subprocess.run(["kcat", "-P", "-b", self.bootstrap, "-t", warm_topic, "-X", "enable.idempotence=true"],
                       input="\n".join(str(i) for i in range(1000)) + "\n", text=True, timeout=120, check=False,
                       capture_output=True)
        # The fetch path of a fresh broker is cold too: one unmeasured drain before the first round.
        if "drain" in s.workloads:
            warm_topic = f"peers-warmup-{self.run_id}-drain"
            self.fill(warm_topic, min(s.drain_n, 200_000))
            self.admin.wait_group_idle()
            outcome = Running("raw", contender_argv("raw"),
                              contender_env(self.bootstrap, "consume", warm_topic, min(s.drain_n, 200_000), 120),
                              self.logs, "warmup-drain").finish(150)
            log("broker warm-up drain: " + ("done" if outcome.report else "incomplete (ignored)"))
        for round_ in range(1, s.repeats + 1):
            log(f"round {round_}/{s.repeats}; load {load1():.2f}")
            for workload in s.workloads:
                names = s.slow_contenders if workload.startswith("slow") else s.contenders
                shift = (round_ - 1) % len(names)
                order = names[shift:] + names[:shift]
                log(f"round {round_}/{s.repeats}, {workload}: order {', '.join(order)}")
                getattr(self, workload.replace("-", "_"))(round_, order)


# ---------------------------------------------------------------------------------------------------
# Results


def median_of(runs: list[dict], workload: str, contender: str, key: str) -> float | None:
    values = [r[key] for r in runs if r["workload"] == workload and r["contender"] == contender and not r["void"]
              and key in r]
    return statistics.median(values) if values else None


def valid_count(runs: list[dict], workload: str, contender: str) -> str:
    mine = [r for r in runs if r["workload"] == workload and r["contender"] == contender]
    return f"{sum(1 for r in mine if not r['void'])}/{len(mine)}"


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "void"
    if digits == 0:
        return f"{value:,.0f}{unit}"
    return f"{value:,.{digits}f}{unit}"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "–"
    return f"{value / base:.2f}×"


def machine_info() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal")))

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return "?"

    pip_freeze = subprocess.run([str(VENV_PYTHON), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    pins = {line.split("==")[0].lower(): line.split("==")[1] for line in pip_freeze.splitlines() if "==" in line}
    rdkafka = subprocess.run(["pkg-config", "--modversion", "rdkafka"], capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "framework", "adapters", "config"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(), "java": version(["java", "-version"]),
        "librdkafka": rdkafka, "faststream": pins.get("faststream", "?"), "aiokafka": pins.get("aiokafka", "?"),
        "pydantic": pins.get("pydantic", "?"), "python": version([str(VENV_PYTHON), "--version"]),
        "spring": "Spring Boot 3.3.13, Spring for Apache Kafka 3.2.10, kafka-clients 3.7.2 (pom.xml)",
        "parallel": "Confluent Parallel Consumer 0.5.3.2 with kafka-clients 3.7.0 (parallel/pom.xml)",
        "kafka": "Apache Kafka 3.9.1, single KRaft node (scripts/kafka)",
        "git": head + (" with uncommitted changes in framework/adapters/config" if dirty else ""),
    }


def write_results(bench: Bench, out_dir: Path, png: Path, info: dict, command: str, loads: dict,
                  elapsed_s: float) -> Path:
    s = bench.settings
    runs = bench.runs
    names = s.contenders
    lines: list[str] = []
    add = lines.append
    base = "cppfly"

    if "drain" in s.workloads:
        add(f"**Drain** — {s.drain_n:,} orders already in a 6-partition topic"
            + (f" (FastStream: {s.faststream_drain_n:,} from a topic of its own)" if s.faststream_drain_n != s.drain_n
               else "")
            + "; median of the valid runs.")
        add("")
        add("| contender | msg/s (process start → last message) | vs cppfly | steady msg/s (first → last) | "
            "startup s | CPU s | CPU µs/msg | peak RSS MB | valid runs |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        b = median_of(runs, "drain", base, "msgs_per_s")
        for name in names:
            m = median_of(runs, "drain", name, "msgs_per_s")
            add(f"| {LABELS[name]} | {fmt(m)} | {ratio(m, b)} | {fmt(median_of(runs, 'drain', name, 'steady_msgs_per_s'))} "
                f"| {fmt(median_of(runs, 'drain', name, 'startup_s'), 2)} "
                f"| {fmt(median_of(runs, 'drain', name, 'cpu_s'), 2)} "
                f"| {fmt(median_of(runs, 'drain', name, 'cpu_us_per_msg'), 2)} "
                f"| {fmt(median_of(runs, 'drain', name, 'rss_mb'))} | {valid_count(runs, 'drain', name)} |")
        add("")
    if "publish" in s.workloads:
        add(f"**Publish** — {s.publish_n:,} orders through each framework's publish API, every acknowledgement "
            "awaited; median of the valid runs.")
        add("")
        add("| contender | msg/s (first send → last ack) | vs cppfly | CPU s (whole process) | CPU µs/msg | "
            "peak RSS MB | valid runs |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        b = median_of(runs, "publish", base, "msgs_per_s")
        for name in names:
            m = median_of(runs, "publish", name, "msgs_per_s")
            add(f"| {LABELS[name]} | {fmt(m)} | {ratio(m, b)} | {fmt(median_of(runs, 'publish', name, 'cpu_s'), 2)} "
                f"| {fmt(median_of(runs, 'publish', name, 'cpu_us_per_msg'), 2)} "
                f"| {fmt(median_of(runs, 'publish', name, 'rss_mb'))} | {valid_count(runs, 'publish', name)} |")
        add("")
    for wl in (w for w in s.workloads if w in LATENCY_LINGER_MS):
        add(f"**Latency{', linger.ms=1' if wl == 'latency-linger1' else ''}** (`{wl}`) — {s.rate:,} msg/s for "
            f"{s.seconds} s after a {s.warmup} s warm-up (not counted), the producer at "
            f"linger.ms={LATENCY_LINGER_MS[wl]}; producer clock in header `x-sent-us` → handler; median over the "
            "runs of each run's percentile.")
        add("")
        add("| contender | p50 ms | p99 ms | p99.9 ms | max ms | p99 vs cppfly | last message after the producer's, s "
            "| CPU s | valid runs |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        b = median_of(runs, wl, base, "p99_ms")
        for name in names:
            p99 = median_of(runs, wl, name, "p99_ms")
            add(f"| {LABELS[name]} | {fmt(median_of(runs, wl, name, 'p50_ms'), 2)} | {fmt(p99, 2)} "
                f"| {fmt(median_of(runs, wl, name, 'p999_ms'), 2)} "
                f"| {fmt(median_of(runs, wl, name, 'max_ms'), 2)} | {ratio(p99, b)} "
                f"| {fmt(median_of(runs, wl, name, 'behind_s'), 2)} "
                f"| {fmt(median_of(runs, wl, name, 'cpu_s'), 2)} | {valid_count(runs, wl, name)} |")
        add("")
    if "slow" in s.workloads:
        slow_names = s.slow_contenders
        add(f"**Slow handler** (`slow`) — {s.slow_n:,} orders keyed key-0..key-{SLOW_KEYS - 1} in a 6-partition topic, "
            f"each handler call waits {s.slow_sleep_ms} ms as for I/O; every record exactly once and every key in "
            "order (a run with an order violation is void); median of the valid runs.")
        add("")
        add("| contender | concurrency | records/s (process start → last record) | vs cppfly key | "
            "steady records/s (first → last) | bound: calls at once / wait | startup s | CPU s | peak RSS MB "
            "| order violations | valid runs |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        b = median_of(runs, "slow", "cppfly-key", "msgs_per_s")
        for name in slow_names:
            m = median_of(runs, "slow", name, "msgs_per_s")
            seen = [r.get("violations") for r in runs if r["workload"] == "slow" and r["contender"] == name]
            add(f"| {LABELS[name]} | {SLOW_CONCURRENCY[name]} | {fmt(m)} | {ratio(m, b)} "
                f"| {fmt(median_of(runs, 'slow', name, 'steady_msgs_per_s'))} "
                f"| {slow_bound(name, s.slow_sleep_ms):,} "
                f"| {fmt(median_of(runs, 'slow', name, 'startup_s'), 2)} "
                f"| {fmt(median_of(runs, 'slow', name, 'cpu_s'), 2)} | {fmt(median_of(runs, 'slow', name, 'rss_mb'))} "
                f"| {' / '.join('?' if v is None else str(v) for v in seen)} | {valid_count(runs, 'slow', name)} |")
        add("")
        add("The bound column is what the waits alone allow: a contender runs at most `concurrency` handler calls "
            "at once, and in partition order (cppfly ordering partition, Spring) at most one a partition, 6.")
        add("")
    if "slow-retry" in s.workloads:
        slow_names = s.slow_contenders
        add(f"**Slow handler while one key retries** (`slow-retry`) — {s.retry_rate:,} keyed records/s for "
            f"{s.retry_seconds} s after a {s.warmup} s warm-up, {s.slow_sleep_ms} ms each; key-0's first record "
            "after the warm-up fails 5 times, retried after 200, 400, 600, 800, 1,000 ms; latency (producer clock → "
            "handler) of the other keys' records after the warm-up; median over the runs.")
        add("")
        add("| contender | p50 ms | p99 ms | max ms | p99 vs cppfly key | retried record, ms "
            "| last record after the producer's, s | order violations | valid runs |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        b = median_of(runs, "slow-retry", "cppfly-key", "p99_ms")
        for name in slow_names:
            p99 = median_of(runs, "slow-retry", name, "p99_ms")
            seen = [r.get("violations") for r in runs if r["workload"] == "slow-retry" and r["contender"] == name]
            add(f"| {LABELS[name]} | {fmt(median_of(runs, 'slow-retry', name, 'p50_ms'), 2)} | {fmt(p99, 2)} "
                f"| {fmt(median_of(runs, 'slow-retry', name, 'max_ms'), 2)} | {ratio(p99, b)} "
                f"| {fmt(median_of(runs, 'slow-retry', name, 'failed_ms'))} "
                f"| {fmt(median_of(runs, 'slow-retry', name, 'behind_s'), 2)} "
                f"| {' / '.join('?' if v is None else str(v) for v in seen)} | {valid_count(runs, 'slow-retry', name)} |")
        add("")

    # Goals.
    goals = []

    def goal(text: str, met: bool | None, detail: str) -> None:
        goals.append((text, "met" if met else ("not met" if met is not None else "not measured"), detail))

    d = {n: median_of(runs, "drain", n, "msgs_per_s") for n in names}
    if d.get("cppfly") and d.get("spring"):
        x = d["cppfly"] / d["spring"]
        goal("cppfly drain ≥ 1.5× Spring Kafka", x >= 1.5, f"{x:.2f}×")
    else:
        goal("cppfly drain ≥ 1.5× Spring Kafka", None, "")
    if d.get("cppfly") and d.get("faststream"):
        x = d["cppfly"] / d["faststream"]
        goal("cppfly drain ≥ 10× FastStream", x >= 10, f"{x:.1f}×")
    else:
        goal("cppfly drain ≥ 10× FastStream", None, "")
    if d.get("cppfly") and d.get("raw"):
        x = d["cppfly"] / d["raw"]
        steady = [median_of(runs, "drain", n, "steady_msgs_per_s") for n in ("cppfly", "raw")]
        extra = f" (steady rate: {steady[0] / steady[1]:.2f}×)" if all(steady) else ""
        goal("cppfly drain ≥ 0.95× raw librdkafka", x >= 0.95, f"{x:.2f}×{extra}")
    else:
        goal("cppfly drain ≥ 0.95× raw librdkafka", None, "")
    pc, pr = median_of(runs, "publish", "cppfly", "msgs_per_s"), median_of(runs, "publish", "raw", "msgs_per_s")
    if pc and pr:
        goal("cppfly publish ≥ 0.95× raw librdkafka", pc / pr >= 0.95, f"{pc / pr:.2f}×")
    else:
        goal("cppfly publish ≥ 0.95× raw librdkafka", None, "")
    for wl in (w for w in s.workloads if w in LATENCY_LINGER_MS):
        text = f"cppfly p99 latency ≤ Spring's (producer linger.ms={LATENCY_LINGER_MS[wl]})"
        lc, ls = median_of(runs, wl, "cppfly", "p99_ms"), median_of(runs, wl, "spring", "p99_ms")
        if lc is not None and ls is not None:
            goal(text, lc <= ls, f"{lc:.2f} ms vs {ls:.2f} ms")
        else:
            goal(text, None, "")
    if "slow" in s.workloads:
        k = median_of(runs, "slow", "cppfly-key", "msgs_per_s")
        for other, factor, label in (("spring", 8, "Spring Kafka (concurrency 6)"),
                                     ("parallel", 1.2, "Parallel Consumer (KEY, 64)")):
            text = f"slow handler: cppfly ordering key ≥ {factor:g}× {label}"
            o = median_of(runs, "slow", other, "msgs_per_s")
            if k and o:
                goal(text, k / o >= factor, f"{k / o:.2f}× ({k:,.0f} vs {o:,.0f} records/s)")
            else:
                goal(text, None, "")
    add("| goal | result | measured |")
    add("|---|---|---|")
    for text, result, detail in goals:
        add(f"| {text} | **{result}** | {detail} |")
    add("")
    add(f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram_gib']} GiB RAM, Linux {info['kernel']}; "
        f"1-minute load {loads['before']:.2f} before the measurements (waited {loads['waited_s']:.0f} s for it), "
        f"{loads['max']:.2f} at most during them (the measurements themselves count), {loads['after']:.2f} after; "
        f"before each measurement the harness flushed written data to disk and waited for idle cores "
        f"(at most {loads['busy_max']:.0%} busy when one started). "
        f"Broker: {info['kafka']}, on the same machine. "
        f"Clients: librdkafka {info['librdkafka']} (cppfly, raw); {info['spring']} on {info['java']}; "
        f"FastStream {info['faststream']} with aiokafka {info['aiokafka']}, pydantic {info['pydantic']} on "
        f"{info['python']}; {info['parallel']} on the same JDK. cppfly at {info['git']}, built RelWithDebInfo (-O2). "
        f"Run took {elapsed_s / 60:.1f} min. Command: `{command}`.")
    add("")
    add(f"![cppfly and its peers: throughput and latency]({os.path.relpath(png, ROOT / 'docs')})")
    text = "\n".join(lines) + "\n"
    out = out_dir / "results.md"
    out.write_text(text)
    (out_dir / "results.json").write_text(json.dumps({"settings": s.__dict__, "machine": info, "loads": loads,
                                                      "command": command, "elapsed_s": elapsed_s, "runs": runs},
                                                     indent=1))
    return out


def plot(bench: Bench, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = bench.settings
    runs = bench.runs
    names = s.contenders
    colors = {"cppfly": "#1f77b4", "raw": "#7f7f7f", "spring": "#2ca02c", "faststream": "#d62728",
              "cppfly-key": "#1f77b4", "cppfly-partition": "#aec7e8", "parallel": "#9467bd"}
    panels = [w for w in WORKLOADS if w in s.workloads]

    def tick(name: str) -> str:
        return (LABELS[name].replace(" for Apache Kafka", "\nKafka").replace("raw ", "raw\n")
                .replace(", ordering ", "\n").replace("Confluent Parallel Consumer", "Parallel\nConsumer"))

    if not panels:
        return
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.6 * rows), squeeze=False)
    axes = list(axes.flat)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, workload in zip(axes, panels):
        if workload == "slow-retry":
            slow_names = s.slow_contenders
            width = 0.38
            for i, (key, label) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"))):
                values = [median_of(runs, workload, n, key) or 0 for n in slow_names]
                xs = [j + (i - 0.5) * width for j in range(len(slow_names))]
                ax.bar(xs, values, width, label=label, color=[colors[n] for n in slow_names], alpha=0.5 + 0.4 * i)
            ax.set_xticks(range(len(slow_names)))
            ax.set_xticklabels([tick(n) for n in slow_names])
            ax.set_yscale("log")
            ax.set_ylabel("latency of the other keys, ms (lower is better)")
            ax.set_title(f"Slow handler at {s.retry_rate:,} records/s while key-0 retries\n(bars: p50, p99)")
        elif workload == "slow":
            slow_names = s.slow_contenders
            values = [median_of(runs, "slow", n, "msgs_per_s") or 0 for n in slow_names]
            bars = ax.bar([tick(n) for n in slow_names], values, color=[colors[n] for n in slow_names])
            for bar, value in zip(bars, values):
                ax.annotate("void" if not value else f"{value:,.0f}", (bar.get_x() + bar.get_width() / 2, value),
                            ha="center", va="bottom", fontsize=9)
            ax.set_ylabel("records / s (higher is better)")
            ax.set_title(f"Slow handler: {s.slow_n:,} records, {s.slow_sleep_ms} ms each, key order")
            ax.margins(y=0.12)
        elif workload in ("drain", "publish"):
            values = [median_of(runs, workload, n, "msgs_per_s") or 0 for n in names]
            bars = ax.bar([tick(n) for n in names], values, color=[colors[n] for n in names])
            for bar, value in zip(bars, values):
                ax.annotate("void" if not value else f"{value / 1000:,.0f}k", (bar.get_x() + bar.get_width() / 2, value),
                            ha="center", va="bottom", fontsize=9)
            ax.set_ylabel("messages / s (higher is better)")
            n_text = f"{s.drain_n:,}" if workload == "drain" else f"{s.publish_n:,}"
            ax.set_title(("Drain: " if workload == "drain" else "Publish: ") + n_text + " messages"
                         + ("*" if workload == "drain" and s.faststream_drain_n != s.drain_n
                            and "faststream" in names else ""))
            ax.margins(y=0.12)
        else:
            width = 0.25
            for i, (key, label) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"))):
                values = [median_of(runs, workload, n, key) or 0 for n in names]
                xs = [j + (i - 1) * width for j in range(len(names))]
                ax.bar(xs, values, width, label=label, color=[colors[n] for n in names], alpha=0.45 + 0.25 * i)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels([tick(n) for n in names])
            ax.set_yscale("log")
            ax.set_ylabel("end-to-end latency, ms (lower is better)")
            ax.set_title(f"Latency at {s.rate:,} msg/s, producer linger.ms={LATENCY_LINGER_MS[workload]}\n"
                         "(bars: p50, p99, p99.9)")
        ax.grid(axis="y", alpha=0.3)
    title = "cppfly and its peers on one Apache Kafka broker (median of runs)"
    if "drain" in panels and "faststream" in names and s.faststream_drain_n != s.drain_n:
        title += f"; *FastStream drained {s.faststream_drain_n:,}"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------


def wait_quiet(limit_s: float, threshold: float) -> float:
    waited = 0.0
    while load1() >= threshold and waited < limit_s:
        log(f"1-minute load {load1():.2f} ≥ {threshold}: waiting for a quiet machine "
            f"({waited / 60:.1f}/{limit_s / 60:.0f} min)")
        time.sleep(30)
        waited += 30
    if load1() >= threshold:
        log(f"the machine did not get quiet (load {load1():.2f}); measuring anyway, the load is recorded")
    return waited


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/peers/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 50,000 messages, 10 s of latency, 5,000 slow records, 10 s of slow-retry, "
                             "one round, results under build/ only")
    parser.add_argument("--repeats", type=int, help="rounds (default 3; --quick 1)")
    parser.add_argument("--drain-n", type=int, help="drain messages (default 1,000,000)")
    parser.add_argument("--faststream-drain-n", type=int,
                        help="drain messages for FastStream (default 200,000: at ~2,000 msg/s 1M takes ~8 min a run)")
    parser.add_argument("--publish-n", type=int, help="publish messages (default 1,000,000)")
    parser.add_argument("--rate", type=int, default=5000, help="latency: messages/s (default 5000)")
    parser.add_argument("--seconds", type=int, help="latency: measured seconds (default 30)")
    parser.add_argument("--warmup", type=int, help="latency: warm-up seconds, not counted (default 5)")
    parser.add_argument("--slow-n", type=int, help="slow: records (default 50,000; --quick 5,000)")
    parser.add_argument("--slow-sleep-ms", type=int, default=2,
                        help="slow, slow-retry: wait in each handler call (default 2)")
    parser.add_argument("--retry-rate", type=int, default=500, help="slow-retry: records/s (default 500)")
    parser.add_argument("--retry-seconds", type=int,
                        help="slow-retry: measured seconds after the --warmup (default 20; --quick 10)")
    parser.add_argument("--contenders", default=",".join(ALL_CONTENDERS),
                        help="comma-separated subset of " + ", ".join(ALL_CONTENDERS) + " (default all); drain, "
                             "publish and the latency workloads run those of " + ", ".join(CONTENDERS) +
                             " (cppfly always), slow and slow-retry those of " + ", ".join(SLOW_CONTENDERS) +
                             " (cppfly-key always)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated subset of " + ", ".join(WORKLOADS) + " (default all; latency: the "
                             "paced producer at linger.ms=5, latency-linger1: at linger.ms=1; slow-retry: the slow "
                             "contenders on a paced stream while one key's record is retried)")
    parser.add_argument("--port", type=int, help="broker port (default: first free of 49092, 49192, ...)")
    parser.add_argument("--wait-quiet", type=float, help="minutes to wait for 1-minute load < 1.0 (default 20; "
                                                         "--quick 0)")
    parser.add_argument("--png", help="plot path (default docs/peers.png; --quick build/peers-results/peers.png)")
    args = parser.parse_args()

    quick = args.quick
    settings = Settings(
        drain_n=args.drain_n or (50_000 if quick else 1_000_000),
        faststream_drain_n=args.faststream_drain_n or (20_000 if quick else 200_000),
        publish_n=args.publish_n or (50_000 if quick else 1_000_000),
        rate=args.rate, seconds=args.seconds or (10 if quick else 30), warmup=args.warmup or (2 if quick else 5),
        repeats=args.repeats or (1 if quick else 3),
        contenders=[],
        workloads=[w for w in args.workloads.split(",") if w],
        slow_n=args.slow_n or (5_000 if quick else 50_000), slow_sleep_ms=args.slow_sleep_ms,
        retry_rate=args.retry_rate, retry_seconds=args.retry_seconds or (10 if quick else 20))
    chosen = [c for c in args.contenders.split(",") if c]
    for c in chosen:
        if c not in ALL_CONTENDERS:
            parser.error(f"unknown contender {c} (allowed: {', '.join(ALL_CONTENDERS)})")
    for w in settings.workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w} (allowed: {', '.join(WORKLOADS)})")
    settings.workloads = [w for w in WORKLOADS if w in settings.workloads]  # always in this order
    settings.contenders = [c for c in chosen if c in CONTENDERS]
    if "cppfly" not in settings.contenders:
        settings.contenders.insert(0, "cppfly")
    settings.slow_contenders = [c for c in SLOW_CONTENDERS if c in chosen or c == "cppfly-key"]
    out_dir = BUILD / ("peers-results-quick" if quick else "peers-results")  # a smoke run keeps the full results
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    png = Path(args.png) if args.png else (out_dir / "peers.png" if quick else ROOT / "docs" / "peers.png")
    command = " ".join(["bench/peers/run", *(shlex.quote(a) for a in sys.argv[1:])])
    started = time.monotonic() - float(os.environ.get("PEERS_SETUP_S", "0"))  # run's set-up and build included

    broker = Broker(args.port)

    def on_signal(signum: int, _frame) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        bootstrap = broker.start()
        waited = wait_quiet((args.wait_quiet if args.wait_quiet is not None else (0 if quick else 20)) * 60, 1.0)
        loads = {"before": load1(), "waited_s": waited}
        bench = Bench(settings, Admin(bootstrap), bootstrap, logs)
        log(f"measuring on {bootstrap}: {settings}")
        bench.run_all()
        loads["after"] = load1()
        loads["max"] = max([loads["before"], loads["after"]] + [r["load1"] for r in bench.runs])
        loads["busy_max"] = max([r["busy_before"] for r in bench.runs], default=0.0)
    except KeyboardInterrupt:
        if Running.current:
            Running.current.kill()
        log("interrupted")
        return 130
    finally:
        if "bench" in locals():
            bench.admin = None  # type: ignore[assignment]  # its client would log the broker going away
        broker.stop()
    elapsed = time.monotonic() - started
    info = machine_info()
    plot(bench, png)
    results = write_results(bench, out_dir, png, info, command, loads, elapsed)
    print(results.read_text())
    log(f"results: {os.path.relpath(results, ROOT)} (+ results.json, logs/), plot: {os.path.relpath(png, ROOT)}; "
        f"{elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
