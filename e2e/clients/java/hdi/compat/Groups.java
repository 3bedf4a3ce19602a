// Consumer groups with the Java client's classic protocol.
//
// `cooperative`: three consumers with the CooperativeStickyAssignor join one after another and
// leave again while a producer writes; a rebalance listener records who owns which partition.
// Checked: every record consumed exactly once (offsets committed after each poll, skipped while
// the member rejoins, and on revocation), no partition owned by two consumers at once, no record
// handed to a consumer not owning its partition, no member ever revoking all it owns (eager
// rebalancing would), and a new consumer of the group resumes at the committed offsets (it
// reads only the records written after the others left).
//
// `static`: two consumers with `group.instance.id`; one is closed (a static member sends no
// LeaveGroup) and a new consumer with the same instance id starts within session.timeout.ms.
// Checked: no rebalance (the other member's listener is not called again and its generation
// stays), the returning member gets its partitions back in the same generation, and every record
// is consumed.
//
// Args: bootstrap topic mode
package hdi.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Groups {
  public static void main(String[] args) {
    Report report = new Report();
    Report.run(report, () -> {
      switch (args[2]) {
        case "cooperative" -> cooperative(report, args[0], args[1]);
        case "static" -> staticMembership(report, args[0], args[1]);
        default -> throw new IllegalArgumentException("mode " + args[2]);
      }
    });
  }

  /** Who owns each partition now, shared by the members' listeners. */
  static final Map<TopicPartition, String> OWNERS = new HashMap<>();
  /** How many times each record value was consumed. */
  static final Map<String, Integer> CONSUMED = new ConcurrentHashMap<>();

  /** One consumer on its own thread. */
  static final class Member implements Runnable, ConsumerRebalanceListener {
    final String name;
    final Report report;
    final Map<String, Object> config;
    final String topic;
    final AtomicBoolean stop = new AtomicBoolean();
    final Set<TopicPartition> owned = ConcurrentHashMap.newKeySet();
    final AtomicInteger assignCalls = new AtomicInteger();
    final AtomicInteger revokeCalls = new AtomicInteger();
    final AtomicInteger lostCalls = new AtomicInteger();
    final AtomicInteger fullRevokes = new AtomicInteger();
    final AtomicInteger skippedCommits = new AtomicInteger();
    volatile int generation = -1;
    volatile boolean closing;
    volatile Set<TopicPartition> lastAssigned = Set.of();
    KafkaConsumer<String, String> consumer;
    Thread thread;

    Member(String name, Report report, String topic, Map<String, Object> config) {
      this.name = name;
      this.report = report;
      this.topic = topic;
      this.config = config;
    }

    Member start() {
      thread = new Thread(this, name);
      thread.start();
      return this;
    }

    void stopAndJoin() throws InterruptedException {
      stop.set(true);
      thread.join(60_000);
      report.check(!thread.isAlive(), name + " did not close within 60 s");
    }

    @Override
    public void run() {
      try {
        consumer = new KafkaConsumer<>(config, new StringDeserializer(), new StringDeserializer());
        consumer.subscribe(List.of(topic), this);
        while (!stop.get()) {
          ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
          generation = consumer.groupMetadata().generationId();
          for (ConsumerRecord<String, String> r : records) {
            TopicPartition tp = new TopicPartition(r.topic(), r.partition());
            report.check(owned.contains(tp), name + " got a record of " + tp + " it does not own");
            CONSUMED.merge(r.value(), 1, Integer::sum);
          }
          if (!records.isEmpty()) {
            try {
              consumer.commitSync();
            } catch (RebalanceInProgressException e) {
              // The member is rejoining: the next poll completes the rebalance, and the
              // positions are committed then (on revocation at the latest).
              skippedCommits.incrementAndGet();
            }
          }
        }
        closing = true;
        consumer.close();
      } catch (Exception e) {
        e.printStackTrace(System.out);
        report.check(false, name + ": " + e);
      }
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      assignCalls.incrementAndGet();
      lastAssigned = new HashSet<>(partitions);
      synchronized (OWNERS) {
        for (TopicPartition tp : partitions) {
          String other = OWNERS.get(tp);
          report.check(other == null || other.equals(name), tp + " assigned to " + name + " while " + other + " owns it");
          OWNERS.put(tp, name);
        }
      }
      owned.addAll(partitions);
      System.out.println(name + " assigned " + partitions + " now owns " + new TreeSet<>(owned.stream().map(TopicPartition::partition).toList()));
    }

    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      revokeCalls.incrementAndGet();
      if (!closing && !partitions.isEmpty() && partitions.size() >= owned.size()) {
        fullRevokes.incrementAndGet();
      }
      if (!partitions.isEmpty()) {
        consumer.commitSync();
      }
      release(partitions);
      System.out.println(name + " revoked " + partitions);
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      lostCalls.incrementAndGet();
      release(partitions);
      System.out.println(name + " lost " + partitions);
    }

    private void release(Collection<TopicPartition> partitions) {
      owned.removeAll(partitions);
      synchronized (OWNERS) {
        for (TopicPartition tp : partitions) {
          OWNERS.remove(tp, name);
        }
      }
    }
  }

  /** Writes records `prefix-0`, `prefix-1`, ... until stopped; how many it wrote. */
  static final class Writer implements Runnable {
    final KafkaProducer<String, String> producer;
    final String topic;
    final String prefix;
    final AtomicBoolean stop = new AtomicBoolean();
    final AtomicInteger written = new AtomicInteger();
    final AtomicInteger failed = new AtomicInteger();
    Thread thread;

    Writer(String bootstrap, String topic, String prefix) {
      this.producer = new KafkaProducer<>(Report.props(bootstrap, "acks", "all", "linger.ms", "5"),
          new StringSerializer(), new StringSerializer());
      this.topic = topic;
      this.prefix = prefix;
    }

    Writer start() {
      thread = new Thread(this, "writer");
      thread.start();
      return this;
    }

    @Override
    public void run() {
      int i = 0;
      while (!stop.get()) {
        for (int j = 0; j < 50; j++, i++) {
          producer.send(new ProducerRecord<>(topic, "k" + i, prefix + "-" + i), (m, e) -> {
            if (e != null) {
              failed.incrementAndGet();
            }
          });
        }
        written.set(i);
        try {
          Thread.sleep(50);
        } catch (InterruptedException e) {
          return;
        }
      }
    }

    int stopAndFlush() throws InterruptedException {
      stop.set(true);
      thread.join();
      producer.flush();
      producer.close();
      return written.get();
    }
  }

  static Map<String, Object> consumerConfig(String bootstrap, String group, String... extra) {
    Map<String, Object> c = new HashMap<>();
    c.put("bootstrap.servers", bootstrap);
    c.put("group.id", group);
    c.put("auto.offset.reset", "earliest");
    c.put("enable.auto.commit", "false");
    c.put("heartbeat.interval.ms", "500");
    c.put("session.timeout.ms", "10000");
    for (int i = 0; i + 1 < extra.length; i += 2) {
      c.put(extra[i], extra[i + 1]);
    }
    return c;
  }

  static void createTopic(String bootstrap, String topic, int partitions) throws Exception {
    try (Admin admin = Admin.create(Report.props(bootstrap))) {
      admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get();
    }
  }

  /** Every value `prefix-0` .. `prefix-(n-1)` consumed exactly once. */
  static void checkConsumedOnce(Report report, String prefix, int n) {
    int missing = 0;
    int duplicated = 0;
    for (int i = 0; i < n; i++) {
      int count = CONSUMED.getOrDefault(prefix + "-" + i, 0);
      if (count == 0) {
        missing++;
      } else if (count > 1) {
        duplicated++;
      }
    }
    report.equal(0, missing, prefix + ": records never consumed");
    report.equal(0, duplicated, prefix + ": records consumed more than once");
  }

  static boolean allConsumed(String prefix, int n) {
    for (int i = 0; i < n; i++) {
      if (!CONSUMED.containsKey(prefix + "-" + i)) {
        return false;
      }
    }
    return true;
  }

  static void cooperative(Report report, String bootstrap, String topic) throws Exception {
    createTopic(bootstrap, topic, 6);
    String group = topic + "-group";
    String[] assignor = {"partition.assignment.strategy",
        "org.apache.kafka.clients.consumer.CooperativeStickyAssignor"};
    Writer writer = new Writer(bootstrap, topic, "a").start();
    Member a = new Member("a", report, topic, consumerConfig(bootstrap, group, assignor)).start();
    report.check(Report.eventually(30_000, () -> a.owned.size() == 6), "a never owned all 6 partitions");
    Member b = new Member("b", report, topic, consumerConfig(bootstrap, group, assignor)).start();
    report.check(Report.eventually(30_000, () -> b.owned.size() == 3 && a.owned.size() == 3),
        "a and b never split the partitions 3/3: a " + a.owned + " b " + b.owned);
    Member c = new Member("c", report, topic, consumerConfig(bootstrap, group, assignor)).start();
    report.check(Report.eventually(30_000, () -> a.owned.size() == 2 && b.owned.size() == 2 && c.owned.size() == 2),
        "a, b and c never held 2 partitions each");
    Thread.sleep(1000);
    c.stopAndJoin();
    report.check(Report.eventually(30_000, () -> a.owned.size() == 3 && b.owned.size() == 3),
        "a and b never took c's partitions back");
    Thread.sleep(1000);
    b.stopAndJoin();
    report.check(Report.eventually(30_000, () -> a.owned.size() == 6), "a never owned all 6 partitions again");
    Thread.sleep(1000);
    int written = writer.stopAndFlush();
    report.equal(0, writer.failed.get(), "failed sends");
    report.check(Report.eventually(30_000, () -> allConsumed("a", written)), "a did not consume every record");
    a.stopAndJoin();
    checkConsumedOnce(report, "a", written);
    for (Member m : List.of(a, b, c)) {
      report.equal(0, m.fullRevokes.get(), m.name + ": rebalances that revoked every partition it owned");
      report.equal(0, m.lostCalls.get(), m.name + ": partitions lost");
    }
    report.fact("records", written);
    report.fact("assign_calls", List.of(a.assignCalls.get(), b.assignCalls.get(), c.assignCalls.get()));
    report.fact("revoke_calls", List.of(a.revokeCalls.get(), b.revokeCalls.get(), c.revokeCalls.get()));
    report.fact("commits_skipped_in_rebalance", List.of(a.skippedCommits.get(), b.skippedCommits.get(), c.skippedCommits.get()));

    // A new member of the group resumes at the committed offsets.
    Writer more = new Writer(bootstrap, topic, "r").start();
    Thread.sleep(500);
    int resumed = more.stopAndFlush();
    Member d = new Member("d", report, topic, consumerConfig(bootstrap, group, assignor)).start();
    report.check(Report.eventually(30_000, () -> allConsumed("r", resumed)), "d did not consume the new records");
    Thread.sleep(2000);
    d.stopAndJoin();
    checkConsumedOnce(report, "r", resumed);
    checkConsumedOnce(report, "a", written);
    report.fact("resumed_records", resumed);
  }

  static void staticMembership(Report report, String bootstrap, String topic) throws Exception {
    createTopic(bootstrap, topic, 4);
    String group = topic + "-group";
    Writer writer = new Writer(bootstrap, topic, "s").start();
    Member one = new Member("s1", report, topic, consumerConfig(bootstrap, group,
        "group.instance.id", "one", "session.timeout.ms", "30000")).start();
    Member two = new Member("s2", report, topic, consumerConfig(bootstrap, group,
        "group.instance.id", "two", "session.timeout.ms", "30000")).start();
    report.check(Report.eventually(30_000, () -> one.owned.size() == 2 && two.owned.size() == 2),
        "s1 and s2 never split 4 partitions 2/2");
    Thread.sleep(2000);
    int assignBefore = one.assignCalls.get();
    int revokeBefore = one.revokeCalls.get();
    int generation = one.generation;
    Set<TopicPartition> twoOwned = new HashSet<>(two.owned);
    report.equal(generation, two.generation, "generation of s2 before its restart");
    two.stopAndJoin();
    Thread.sleep(2000);
    Member back = new Member("s2-again", report, topic, consumerConfig(bootstrap, group,
        "group.instance.id", "two", "session.timeout.ms", "30000")).start();
    report.check(Report.eventually(30_000, () -> back.owned.equals(twoOwned)),
        "the restarted s2 did not get its partitions " + twoOwned + " back: " + back.owned);
    Thread.sleep(3000);
    report.equal(assignBefore, one.assignCalls.get(), "s1's onPartitionsAssigned calls across s2's restart");
    report.equal(revokeBefore, one.revokeCalls.get(), "s1's onPartitionsRevoked calls across s2's restart");
    report.equal(generation, one.generation, "s1's generation across s2's restart");
    report.equal(generation, back.generation, "the restarted s2's generation");
    int written = writer.stopAndFlush();
    report.equal(0, writer.failed.get(), "failed sends");
    report.check(Report.eventually(30_000, () -> allConsumed("s", written)), "not every record was consumed");
    one.stopAndJoin();
    back.stopAndJoin();
    report.fact("records", written);
    report.fact("generation", generation);
    report.fact("s1_assign_calls", one.assignCalls.get());
  }
}
