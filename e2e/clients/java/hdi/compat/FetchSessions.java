// Fetch sessions (KIP-227) with the Java consumer, which uses them: one consumer of a topic of
// 12 partitions reads records written before it starts and a trickle written while it runs
// (so that most of its fetches are incremental and carry only some partitions). Checked: every
// record read exactly once, from every partition. The Rust side watches the broker's fetch
// session metrics meanwhile.
//
// Args: bootstrap topic records
package hdi.compat;

import java.time.Duration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class FetchSessions {
  public static void main(String[] args) {
    Report report = new Report();
    Report.run(report, () -> run(report, args[0], args[1], Integer.parseInt(args[2])));
  }

  static void run(Report report, String bootstrap, String topic, int records) throws Exception {
    int partitions = 12;
    try (Admin admin = Admin.create(Report.props(bootstrap))) {
      admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
    }
    var producerProps = Report.props(bootstrap, "acks", "all",
        "key.serializer", StringSerializer.class.getName(),
        "value.serializer", StringSerializer.class.getName());
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps)) {
      for (int i = 0; i < records / 2; i++) {
        producer.send(new ProducerRecord<>(topic, i % partitions, null, "r" + i));
      }
      producer.flush();
    }
    Thread trickle = new Thread(() -> {
      try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps)) {
        for (int i = records / 2; i < records; i++) {
          // One partition at a time, a few records at a time.
          producer.send(new ProducerRecord<>(topic, (i / 10) % partitions, null, "r" + i));
          if (i % 10 == 0) {
            producer.flush();
            Thread.sleep(5);
          }
        }
        producer.flush();
      } catch (Exception e) {
        report.check(false, "trickle producer: " + e);
      }
    });
    Set<String> seen = new HashSet<>();
    int duplicates = 0;
    int[] perPartition = new int[partitions];
    var consumerProps = Report.props(bootstrap, "group.id", topic, "auto.offset.reset", "earliest",
        "key.deserializer", StringDeserializer.class.getName(),
        "value.deserializer", StringDeserializer.class.getName());
    long deadline = System.currentTimeMillis() + 90_000;
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps)) {
      consumer.subscribe(List.of(topic));
      trickle.start();
      while (seen.size() < records && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
          if (!seen.add(r.value())) {
            duplicates++;
          }
          perPartition[r.partition()]++;
        }
      }
    }
    trickle.join();
    report.equal(records, seen.size(), "records read");
    report.equal(0, duplicates, "records read twice");
    for (int p = 0; p < partitions; p++) {
      report.check(perPartition[p] > 0, "nothing read from partition " + p);
    }
    report.fact("records", seen.size());
  }
}
