// The Java client's transactional producer (KIP-98, the classic protocol) against a three-broker
// cluster: committed and aborted transactions; a transaction left open while the test SIGKILLs
// the transaction coordinator's broker (the program prints "transaction open" and waits until
// the test creates the signal file), then finished and committed through the new coordinator; a
// zombie fenced by a second instance of its transactional id; consume-transform-produce with
// sendOffsetsToTransaction (an aborted one first, whose offsets must not be committed). A
// read_committed consumer must then read every committed record exactly once and no aborted or
// fenced one; a read_uncommitted consumer must see the aborted ones.
//
// Args: bootstrap signal-file
package hdi.compat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Transactions {
  static final String OUT = "java-txn-out";
  static final String IN = "java-txn-in";
  static final int PARTITIONS = 3;

  public static void main(String[] args) {
    Report report = new Report();
    Report.run(report, () -> run(report, args[0], Path.of(args[1])));
  }

  static KafkaProducer<String, String> producer(String bootstrap, String id) {
    KafkaProducer<String, String> p = new KafkaProducer<>(
        Report.props(bootstrap, "transactional.id", id, "transaction.timeout.ms", "60000",
            "delivery.timeout.ms", "60000", "request.timeout.ms", "10000"),
        new StringSerializer(), new StringSerializer());
    p.initTransactions();
    return p;
  }

  static List<String> send(KafkaProducer<String, String> p, String tag, int count) {
    List<String> values = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      String value = tag + "-" + i;
      p.send(new ProducerRecord<>(OUT, i % PARTITIONS, null, value));
      values.add(value);
    }
    return values;
  }

  static void run(Report report, String bootstrap, Path signal) throws Exception {
    try (Admin admin = Admin.create(Report.props(bootstrap))) {
      admin.createTopics(List.of(
          new NewTopic(OUT, PARTITIONS, (short) 3).configs(Map.of("min.insync.replicas", "2")),
          new NewTopic(IN, PARTITIONS, (short) 3))).all().get();
    }
    List<String> committed = new ArrayList<>();
    List<String> aborted = new ArrayList<>();
    try (KafkaProducer<String, String> p = producer(bootstrap, "java-tx")) {
      for (int t = 0; t < 4; t++) {
        p.beginTransaction();
        List<String> values = send(p, "c" + t, 30);
        if (t % 2 == 0) {
          p.commitTransaction();
          committed.addAll(values);
        } else {
          p.flush();
          p.abortTransaction();
          aborted.addAll(values);
        }
      }
      // The coordinator dies while this transaction is open.
      p.beginTransaction();
      List<String> values = send(p, "k", 15);
      p.flush();
      System.out.println("transaction open");
      System.out.flush();
      report.check(Report.eventually(120_000, () -> Files.exists(signal)), "the test never signalled");
      values.addAll(send(p, "k-late", 15));
      p.commitTransaction();
      committed.addAll(values);
      System.out.println("committed after the kill");
    }

    // A zombie: a second instance aborts its open transaction and fences it.
    KafkaProducer<String, String> zombie = producer(bootstrap, "java-zombie");
    zombie.beginTransaction();
    List<String> fenced = send(zombie, "zombie", 6);
    zombie.flush();
    try (KafkaProducer<String, String> successor = producer(bootstrap, "java-zombie")) {
      successor.beginTransaction();
      committed.addAll(send(successor, "successor", 6));
      successor.commitTransaction();
    }
    // Its commit must fail as fenced: ProducerFencedException (the coordinator's
    // PRODUCER_FENCED, a fatal error), or InvalidProducerEpochException (INVALID_PRODUCER_EPOCH,
    // from a partition leader that saw the new epoch first). Any other error is not fencing.
    boolean zombieFenced = false;
    String zombieError = "none: the commit succeeded";
    try {
      zombie.commitTransaction();
    } catch (ProducerFencedException | InvalidProducerEpochException e) {
      zombieFenced = true;
      zombieError = e.getClass().getSimpleName();
      System.out.println("zombie: " + e);
    } catch (KafkaException e) {
      zombieError = e.toString();
    }
    zombie.close(Duration.ofSeconds(5));
    report.check(zombieFenced, "the zombie's commit was not fenced: " + zombieError);

    // Consume-transform-produce.
    try (KafkaProducer<String, String> plain = new KafkaProducer<>(
        Report.props(bootstrap, "acks", "all"), new StringSerializer(), new StringSerializer())) {
      for (int i = 0; i < 60; i++) {
        plain.send(new ProducerRecord<>(IN, i % PARTITIONS, null, "in-" + i));
      }
    }
    Properties consumerProps = Report.props(bootstrap, "group.id", "java-ctp",
        "isolation.level", "read_committed", "enable.auto.commit", "false",
        "auto.offset.reset", "earliest");
    List<String> outputs = new ArrayList<>();
    Map<TopicPartition, OffsetAndMetadata> finalOffsets = new HashMap<>();
    try (KafkaProducer<String, String> p = producer(bootstrap, "java-ctp")) {
      // One transaction aborted: neither its output nor its offsets stay.
      try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps,
          new StringDeserializer(), new StringDeserializer())) {
        c.subscribe(List.of(IN));
        List<ConsumerRecord<String, String>> batch = new ArrayList<>();
        long deadline = System.currentTimeMillis() + 60_000;
        while (batch.isEmpty() && System.currentTimeMillis() < deadline) {
          c.poll(Duration.ofMillis(500)).forEach(batch::add);
        }
        report.check(!batch.isEmpty(), "the consume-transform-produce consumer read nothing");
        p.beginTransaction();
        for (ConsumerRecord<String, String> r : batch) {
          p.send(new ProducerRecord<>(OUT, r.partition(), null, "x-" + r.value()));
        }
        p.sendOffsetsToTransaction(positions(c), c.groupMetadata());
        p.abortTransaction();
        Map<TopicPartition, OffsetAndMetadata> after = c.committed(c.assignment());
        report.check(after.values().stream().allMatch(o -> o == null),
            "an aborted transaction's offsets were committed: " + after);
      }
      try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps,
          new StringDeserializer(), new StringDeserializer())) {
        c.subscribe(List.of(IN));
        int seen = 0;
        long deadline = System.currentTimeMillis() + 120_000;
        while (seen < 60 && System.currentTimeMillis() < deadline) {
          var records = c.poll(Duration.ofMillis(500));
          if (records.isEmpty()) {
            continue;
          }
          p.beginTransaction();
          List<String> values = new ArrayList<>();
          for (ConsumerRecord<String, String> r : records) {
            String value = "t-" + r.value();
            p.send(new ProducerRecord<>(OUT, r.partition(), null, value));
            values.add(value);
          }
          p.sendOffsetsToTransaction(positions(c), c.groupMetadata());
          p.commitTransaction();
          outputs.addAll(values);
          seen += records.count();
        }
        finalOffsets.putAll(c.committed(c.assignment()));
      }
    }
    committed.addAll(outputs);

    Map<String, Integer> readCommitted = readAll(bootstrap, "read_committed");
    Map<String, Integer> readUncommitted = readAll(bootstrap, "read_uncommitted");
    int missing = 0;
    int duplicated = 0;
    for (String v : committed) {
      int n = readCommitted.getOrDefault(v, 0);
      missing += n == 0 ? 1 : 0;
      duplicated += n > 1 ? 1 : 0;
    }
    List<String> never = new ArrayList<>(aborted);
    never.addAll(fenced);
    long visibleAborted = never.stream().filter(readCommitted::containsKey).count()
        + readCommitted.keySet().stream().filter(v -> v.startsWith("x-")).count();
    long abortedInLog = aborted.stream().filter(readUncommitted::containsKey).count();
    long committedOffsets = finalOffsets.values().stream()
        .mapToLong(o -> o == null ? 0 : o.offset()).sum();
    report.equal(0, missing, "committed records missing from a read_committed read");
    report.equal(0, duplicated, "committed records read more than once");
    report.equal(0L, visibleAborted, "aborted or fenced records read as committed");
    report.equal((long) aborted.size(), abortedInLog, "aborted records in the log (read_uncommitted)");
    report.equal(60, outputs.size(), "consume-transform-produce outputs");
    report.equal(60L, committedOffsets, "the group's committed offsets");
    report.fact("committed", committed.size());
    report.fact("aborted", aborted.size());
    report.fact("read_committed", readCommitted.values().stream().mapToInt(Integer::intValue).sum());
    report.fact("missing", missing);
    report.fact("duplicated", duplicated);
    report.fact("visible_aborted", visibleAborted);
    report.fact("ctp_committed_offsets", committedOffsets);
    report.fact("zombie_fenced", zombieFenced);
    report.fact("zombie_error", zombieError);
  }

  static Map<TopicPartition, OffsetAndMetadata> positions(KafkaConsumer<String, String> c) {
    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
    for (TopicPartition tp : c.assignment()) {
      offsets.put(tp, new OffsetAndMetadata(c.position(tp)));
    }
    return offsets;
  }

  /** Every value of OUT up to its end (the last stable offset for read_committed), counted. */
  static Map<String, Integer> readAll(String bootstrap, String isolation) {
    Map<String, Integer> counts = new HashMap<>();
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(
        Report.props(bootstrap, "isolation.level", isolation, "enable.auto.commit", "false"),
        new StringDeserializer(), new StringDeserializer())) {
      List<TopicPartition> parts = new ArrayList<>();
      for (int p = 0; p < PARTITIONS; p++) {
        parts.add(new TopicPartition(OUT, p));
      }
      c.assign(parts);
      c.seekToBeginning(parts);
      Map<TopicPartition, Long> ends = c.endOffsets(parts);
      long deadline = System.currentTimeMillis() + 90_000;
      while (System.currentTimeMillis() < deadline) {
        boolean done = true;
        for (TopicPartition tp : parts) {
          done &= c.position(tp) >= ends.get(tp);
        }
        if (done) {
          break;
        }
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
          counts.merge(r.value(), 1, Integer::sum);
        }
      }
    }
    return counts;
  }
}
