// peer-spring: the Spring for Apache Kafka contender of bench/peers, written as a Spring Boot user
// writes it: one @KafkaListener in group "bench" taking a Java record decoded by Jackson (Spring
// Kafka's JsonDeserializer), KafkaTemplate for publishing, Boot's and the Kafka client's defaults
// otherwise (application.properties). The protocol (PEER_* variables, the JSON report line) is the
// one in bench/peers/common/peer_common.hpp. PEER_MODE=slow (the slow workload) starts a second
// @KafkaListener instead, with concurrency PEER_CONCURRENCY (6: one consumer thread a partition) whose
// method waits PEER_SLEEP_MS (default 2) as for I/O and checks the order of each key (header x-seq).
// PEER_FAIL_ID (slow-retry): that record fails its first PEER_FAIL_TIMES (5) calls; the container's
// DefaultErrorHandler retries it 5 times, retry N after 200 ms × N (cppfly's linear schedule).
package bench.peers;

import java.io.BufferedWriter;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.ConfigurableApplicationContext;
import org.springframework.kafka.annotation.KafkaListener;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.support.KafkaHeaders;
import org.springframework.messaging.handler.annotation.Header;
import org.springframework.stereotype.Component;

@SpringBootApplication
public class PeerSpring {

  static final String MODE = env("PEER_MODE", "consume");
  static final String TOPIC = env("PEER_TOPIC", "peers-orders");
  static final int COUNT = Integer.parseInt(env("PEER_COUNT", "1000000"));
  static final String LATENCY_FILE = env("PEER_LATENCY_FILE", "");
  static final long TIMEOUT_S = Long.parseLong(env("PEER_TIMEOUT_S", "900"));
  static final long SLEEP_MS = Long.parseLong(env("PEER_SLEEP_MS", "2"));
  static final long FAIL_ID = Long.parseLong(env("PEER_FAIL_ID", "-1"));
  static final int FAIL_TIMES = Integer.parseInt(env("PEER_FAIL_TIMES", "5"));

  /** slow-retry: 5 retries, retry N after 200 ms × N; Boot gives this handler to the listener container. */
  @org.springframework.context.annotation.Bean
  org.springframework.kafka.listener.DefaultErrorHandler errorHandler() {
    org.springframework.util.backoff.BackOff linear = () -> new org.springframework.util.backoff.BackOffExecution() {
      private int retry;

      @Override
      public long nextBackOff() {
        return ++retry <= 5 ? 200L * retry : STOP;
      }
    };
    return new org.springframework.kafka.listener.DefaultErrorHandler(linear);
  }

  static String env(String name, String fallback) {
    String value = System.getenv(name);
    return value == null || value.isEmpty() ? fallback : value;
  }

  static long nowMicros() {
    Instant now = Instant.now();
    return now.getEpochSecond() * 1_000_000L + now.getNano() / 1_000;
  }

  public static void main(String[] args) throws Exception {
    ConfigurableApplicationContext context = SpringApplication.run(PeerSpring.class, args);
    int code = "publish".equals(MODE) ? context.getBean(Publisher.class).publishAll() : context.getBean(Tally.class).awaitAndReport();
    System.exit(SpringApplication.exit(context, () -> code));
  }

  /** What the listener saw. record() runs on the listener container's thread. */
  @Component
  static class Tally {
    private final long[] latencies = LATENCY_FILE.isEmpty() ? null : new long[COUNT];
    private final CountDownLatch done = new CountDownLatch(1);
    private volatile long count;
    private long sum;
    private long sumsq;
    private long firstMs;
    private long lastMs;
    private long violations;  // slow: records whose x-seq was not above the last of their key
    private final java.util.Map<String, Long> lastSeq = new java.util.HashMap<>();

    Tally() {
      if (latencies != null) java.util.Arrays.fill(latencies, Long.MIN_VALUE);
    }

    void record(long id, byte[] sentUs) {
      long nowUs = nowMicros();
      if (latencies != null && sentUs != null && id >= 0 && id < COUNT) {
        latencies[(int) id] = nowUs - Long.parseLong(new String(sentUs, StandardCharsets.US_ASCII));
      }
      long n = count + 1;
      if (n == 1) firstMs = nowUs / 1000;
      lastMs = nowUs / 1000;
      sum += id;
      sumsq += id * id;
      count = n;
      if (n == COUNT) done.countDown();
    }

    /** slow: called by the listener's 6 consumer threads at once. */
    synchronized void recordSlow(long id, String key, byte[] seqHeader, byte[] sentUs) {
      Long seq = seqHeader == null ? null : Long.parseLong(new String(seqHeader, StandardCharsets.US_ASCII));
      Long last = lastSeq.get(key);
      if (seq == null || (last != null && seq <= last)) ++violations;
      if (seq != null && (last == null || seq > last)) lastSeq.put(key, seq);
      record(id, sentUs);
    }

    int awaitAndReport() throws InterruptedException, IOException {
      boolean ok = done.await(TIMEOUT_S, TimeUnit.SECONDS);
      long n = count;
      synchronized (this) {  // the slow listener's threads may still run
        System.out.printf("{\"count\":%d,\"sum\":%s,\"sumsq\":%s,\"start_ms\":%d,\"first_ms\":%d,\"last_ms\":%d%s}%n",
            n, Long.toUnsignedString(sum), Long.toUnsignedString(sumsq),
            ManagementFactory.getRuntimeMXBean().getStartTime(), firstMs, lastMs,
            "slow".equals(MODE) ? ",\"violations\":" + violations : "");
      }
      System.out.flush();
      if (latencies != null) {
        try (BufferedWriter out = Files.newBufferedWriter(Path.of(LATENCY_FILE))) {
          for (int id = 0; id < latencies.length; ++id) {
            if (latencies[id] != Long.MIN_VALUE) out.write(id + " " + latencies[id] + "\n");
          }
        }
      }
      return ok ? 0 : 1;
    }
  }

  @Component
  static class OrderListener {
    private final Tally tally;

    OrderListener(Tally tally) {
      this.tally = tally;
    }

    @KafkaListener(topics = "${PEER_TOPIC:peers-orders}", groupId = "bench",
                   autoStartup = "#{'${PEER_MODE:consume}' == 'consume'}")
    public void onOrder(Order order, @Header(name = "x-sent-us", required = false) byte[] sentUs) {
      tally.record(order.id(), sentUs);
    }
  }

  /** slow: one consumer thread a partition (concurrency 6), each call waits as for I/O. */
  @Component
  static class SlowListener {
    private final Tally tally;
    private final java.util.concurrent.atomic.AtomicInteger failed = new java.util.concurrent.atomic.AtomicInteger();

    SlowListener(Tally tally) {
      this.tally = tally;
    }

    @KafkaListener(topics = "${PEER_TOPIC:peers-orders}", groupId = "bench",
                   concurrency = "${PEER_CONCURRENCY:6}", autoStartup = "#{'${PEER_MODE:consume}' == 'slow'}")
    public void onOrder(Order order, @Header(KafkaHeaders.RECEIVED_KEY) String key,
                        @Header(name = "x-seq", required = false) byte[] seq,
                        @Header(name = "x-sent-us", required = false) byte[] sentUs) throws InterruptedException {
      Thread.sleep(SLEEP_MS);  // as for I/O
      if (order.id() == FAIL_ID && failed.getAndIncrement() < FAIL_TIMES) {
        throw new IllegalStateException("transient failure (bench)");
      }
      tally.recordSlow(order.id(), key, seq, sentUs);
    }
  }

  /** publish: N orders through KafkaTemplate.send (key = id), then wait for every acknowledgement. */
  @Component
  static class Publisher {
    private final KafkaTemplate<String, Order> template;

    Publisher(KafkaTemplate<String, Order> template) {
      this.template = template;
    }

    int publishAll() {
      long startMs = ManagementFactory.getRuntimeMXBean().getStartTime();
      long firstMs = System.currentTimeMillis();
      CompletableFuture<?>[] sends = new CompletableFuture<?>[COUNT];
      for (int id = 0; id < COUNT; ++id) sends[id] = template.send(TOPIC, Integer.toString(id), Order.of(id));
      long ok = 0;
      long errors = 0;
      for (CompletableFuture<?> send : sends) {
        try {
          send.join();
          ++ok;
        } catch (RuntimeException e) {
          if (errors++ == 0) System.err.println("peer-spring: publish failed: " + e);
        }
      }
      long lastMs = System.currentTimeMillis();
      System.out.printf("{\"count\":%d,\"errors\":%d,\"start_ms\":%d,\"first_ms\":%d,\"last_ms\":%d}%n", ok, errors,
          startMs, firstMs, lastMs);
      System.out.flush();
      return errors == 0 ? 0 : 1;
    }
  }
}
