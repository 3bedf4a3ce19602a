// An idempotent producer (acks=all, enable.idempotence=true, 5 requests in flight) writing
// numbered records to every partition of a fresh RF=3 topic with min.insync.replicas=2, paced so
// that the test can SIGKILL a partition leader mid-run (it waits for the "acked N" lines). Every
// send must succeed; a consumer then reads the topic back and each partition must hold its
// sequence 0, 1, 2, ... exactly once and in order.
//
// Args: bootstrap topic partitions records
package hdi.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Idempotent {
  public static void main(String[] args) {
    Report report = new Report();
    Report.run(report, () -> run(report, args[0], args[1], Integer.parseInt(args[2]), Integer.parseInt(args[3])));
  }

  static void run(Report report, String bootstrap, String topic, int partitions, int records) throws Exception {
    try (Admin admin = Admin.create(Report.props(bootstrap))) {
      admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 3)
          .configs(Map.of("min.insync.replicas", "2")))).all().get();
    }
    System.out.println("created " + topic);
    AtomicLong acked = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    AtomicReference<String> firstError = new AtomicReference<>();
    int[] next = new int[partitions];
    long started = System.currentTimeMillis();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Report.props(bootstrap,
        "acks", "all",
        "enable.idempotence", "true",
        "max.in.flight.requests.per.connection", "5",
        "linger.ms", "5",
        "delivery.timeout.ms", "120000",
        "request.timeout.ms", "10000",
        "metadata.max.age.ms", "2000"), new StringSerializer(), new StringSerializer())) {
      for (int i = 0; i < records; i++) {
        int partition = i % partitions;
        int seq = next[partition]++;
        producer.send(new ProducerRecord<>(topic, partition, "p" + partition, partition + ":" + seq), (meta, error) -> {
          if (error != null) {
            failed.incrementAndGet();
            firstError.compareAndSet(null, error.toString());
          } else {
            long n = acked.incrementAndGet();
            if (n % 1000 == 0) {
              System.out.println("acked " + n);
            }
          }
        });
        if (i % 100 == 99) {
          Thread.sleep(15);
        }
      }
      producer.flush();
    }
    long produceMillis = System.currentTimeMillis() - started;
    report.equal(0L, failed.get(), "failed sends (first: " + firstError.get() + ")");
    report.equal((long) records, acked.get(), "acknowledged sends");

    // Read everything back.
    Map<Integer, List<Integer>> seen = new HashMap<>();
    List<TopicPartition> tps = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      tps.add(new TopicPartition(topic, p));
      seen.put(p, new ArrayList<>());
    }
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(Report.props(bootstrap,
        "enable.auto.commit", "false"), new StringDeserializer(), new StringDeserializer())) {
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(30));
      long deadline = System.currentTimeMillis() + 60_000;
      while (System.currentTimeMillis() < deadline) {
        boolean done = true;
        for (TopicPartition tp : tps) {
          done &= consumer.position(tp) >= end.get(tp);
        }
        if (done) {
          break;
        }
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          String[] parts = r.value().split(":");
          report.check(Integer.parseInt(parts[0]) == r.partition(), "record " + r.value() + " in partition " + r.partition());
          seen.get(r.partition()).add(Integer.parseInt(parts[1]));
        }
      }
      // After acks=all, the end offset (high watermark) of each partition covers every
      // acknowledged record: a new leader whose high watermark still lags answers
      // OFFSET_NOT_AVAILABLE (retried by the client) rather than an end from the past.
      List<Long> ends = new ArrayList<>();
      for (TopicPartition tp : tps) {
        ends.add(end.get(tp));
        report.equal((long) next[tp.partition()], end.get(tp), "end offset of " + tp);
      }
      report.fact("end_offsets", ends);
    }
    long total = 0;
    List<Integer> counts = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      List<Integer> got = seen.get(p);
      counts.add(got.size());
      total += got.size();
      int bad = -1;
      for (int i = 0; i < got.size(); i++) {
        if (got.get(i) != i) {
          bad = i;
          break;
        }
      }
      report.check(bad < 0, "partition " + p + ": sequence breaks at index " + bad
          + (bad >= 0 ? " (found " + got.get(bad) + ")" : ""));
      report.equal(next[p], got.size(), "partition " + p + " record count");
    }
    report.fact("records", total);
    report.fact("per_partition", counts);
    report.fact("produce_ms", produceMillis);
  }
}
