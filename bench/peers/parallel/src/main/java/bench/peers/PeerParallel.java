// peer-parallel: the Confluent Parallel Consumer contender of bench/peers' slow workload, written as its
// README shows: a KafkaConsumer (auto-commit off, as Parallel Consumer requires), a ParallelStreamProcessor
// with ProcessingOrder.KEY, maxConcurrency 64 and commit mode PERIODIC_CONSUMER_ASYNCHRONOUS (its default,
// named here), and poll(handler). The handler decodes the order with Jackson and waits PEER_SLEEP_MS
// (default 2) as for I/O. PEER_FAIL_ID (slow-retry): that record fails its first PEER_FAIL_TIMES (5) calls;
// Parallel Consumer retries it, retry N after 200 ms × N (retryDelayProvider: cppfly's linear schedule).
// The protocol (PEER_* variables, the JSON report line with "violations") is the
// one in bench/peers/common/peer_common.hpp.
package bench.peers;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.confluent.parallelconsumer.ParallelConsumerOptions;
import io.confluent.parallelconsumer.ParallelConsumerOptions.CommitMode;
import io.confluent.parallelconsumer.ParallelConsumerOptions.ProcessingOrder;
import io.confluent.parallelconsumer.ParallelStreamProcessor;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;

public final class PeerParallel {

  static final String TOPIC = env("PEER_TOPIC", "peers-orders");
  static final long COUNT = Long.parseLong(env("PEER_COUNT", "50000"));
  static final long TIMEOUT_S = Long.parseLong(env("PEER_TIMEOUT_S", "900"));
  static final long SLEEP_MS = Long.parseLong(env("PEER_SLEEP_MS", "2"));
  static final int CONCURRENCY = Integer.parseInt(env("PEER_CONCURRENCY", "64"));
  static final long FAIL_ID = Long.parseLong(env("PEER_FAIL_ID", "-1"));
  static final int FAIL_TIMES = Integer.parseInt(env("PEER_FAIL_TIMES", "5"));
  static final String LATENCY_FILE = env("PEER_LATENCY_FILE", "");

  /** The order every contender decodes (peers::Order in C++). */
  public record Order(long id, String customer, String item, int quantity, double amount, String note) {}

  static String env(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }

  static long nowMicros() {
    Instant now = Instant.now();
    return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
  }

  /** What the handler saw; record() runs on up to CONCURRENCY worker threads at once. */
  static final class Tally {
    private final CountDownLatch done = new CountDownLatch(1);
    private final Map<String, Long> lastSeq = new HashMap<>();
    private final long[] latencies = LATENCY_FILE.isEmpty() ? null : new long[(int) COUNT];

    Tally() {
      if (latencies != null) java.util.Arrays.fill(latencies, Long.MIN_VALUE);
    }
    private long count;
    private long violations;
    private long sum;
    private long sumsq;
    private long firstMs;
    private long lastMs;

    synchronized void record(long id, String key, Long seq, Long sentUs) {
      long nowUs = nowMicros();
      long nowMs = nowUs / 1000;
      if (latencies != null && sentUs != null && id >= 0 && id < COUNT) latencies[(int) id] = nowUs - sentUs;
      Long last = lastSeq.get(key);
      if (seq == null || (last != null && seq <= last)) ++violations;
      if (seq != null && (last == null || seq > last)) lastSeq.put(key, seq);
      if (count == 0) firstMs = nowMs;
      lastMs = nowMs;
      sum += id;
      sumsq += id * id;
      if (++count == COUNT) done.countDown();
    }

    boolean await() throws InterruptedException {
      return done.await(TIMEOUT_S, TimeUnit.SECONDS);
    }

    synchronized void report() {
      System.out.printf("{\"count\":%d,\"sum\":%s,\"sumsq\":%s,\"start_ms\":%d,\"first_ms\":%d,\"last_ms\":%d,"
              + "\"violations\":%d}%n", count, Long.toUnsignedString(sum), Long.toUnsignedString(sumsq),
          ManagementFactory.getRuntimeMXBean().getStartTime(), firstMs, lastMs, violations);
      System.out.flush();
      if (latencies != null) {
        try (java.io.BufferedWriter out = java.nio.file.Files.newBufferedWriter(java.nio.file.Path.of(LATENCY_FILE))) {
          for (int id = 0; id < latencies.length; ++id) {
            if (latencies[id] != Long.MIN_VALUE) out.write(id + " " + latencies[id] + "\n");
          }
        } catch (java.io.IOException e) {
          System.err.println("peer-parallel: " + e);
        }
      }
    }
  }

  public static void main(String[] args) throws Exception {
    System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
    ObjectMapper json = new ObjectMapper();
    Tally tally = new Tally();
    java.util.concurrent.atomic.AtomicInteger failed = new java.util.concurrent.atomic.AtomicInteger();

    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, env("PEER_BOOTSTRAP", "127.0.0.1:49092"));
    props.put(ConsumerConfig.GROUP_ID_CONFIG, "bench");
    props.put(ConsumerConfig.CLIENT_ID_CONFIG, "peer-parallel");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props);

    ParallelConsumerOptions<String, String> options = ParallelConsumerOptions.<String, String>builder()
        .ordering(ProcessingOrder.KEY)
        .maxConcurrency(CONCURRENCY)
        .commitMode(CommitMode.PERIODIC_CONSUMER_ASYNCHRONOUS)
        .retryDelayProvider(record -> Duration.ofMillis(200L * Math.max(1, record.getNumberOfFailedAttempts())))
        .consumer(consumer)
        .build();
    ParallelStreamProcessor<String, String> processor = ParallelStreamProcessor.createEosStreamProcessor(options);
    processor.subscribe(List.of(TOPIC));
    processor.poll(context -> {
      ConsumerRecord<String, String> record = context.getSingleConsumerRecord();
      Order order;
      try {
        order = json.readValue(record.value(), Order.class);
      } catch (java.io.IOException e) {
        throw new IllegalArgumentException("bad record at offset " + record.offset(), e);
      }
      try {
        Thread.sleep(SLEEP_MS);  // as for I/O
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException(e);
      }
      if (order.id() == FAIL_ID && failed.getAndIncrement() < FAIL_TIMES) {
        throw new IllegalStateException("transient failure (bench)");  // Parallel Consumer retries it
      }
      Header seq = record.headers().lastHeader("x-seq");
      Header sent = record.headers().lastHeader("x-sent-us");
      tally.record(order.id(), record.key(),
          seq == null ? null : Long.parseLong(new String(seq.value(), StandardCharsets.US_ASCII)),
          sent == null ? null : Long.parseLong(new String(sent.value(), StandardCharsets.US_ASCII)));
    });

    boolean ok = tally.await();
    tally.report();
    processor.closeDrainFirst(Duration.ofSeconds(10));
    System.exit(ok ? 0 : 1);
  }
}
