// The Java admin client against a three-broker cluster: describeCluster, createTopics (with
// configs; a duplicate and a bad config refused with Kafka's exceptions), listTopics,
// describeTopics, describeConfigs and incrementalAlterConfigs (topic and broker),
// createPartitions, alterPartitionReassignments / listPartitionReassignments, describeLogDirs /
// describeReplicaLogDirs, deleteRecords, listOffsets (earliest, latest, max timestamp) and
// deleteTopics.
//
// Args: bootstrap prefix
package hdi.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeReplicaLogDirsResult.ReplicaLogDirInfo;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.TopicPartitionReplica;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.StringSerializer;

public final class AdminSuite {
  public static void main(String[] args) {
    Report report = new Report();
    Report.run(report, () -> {
      try (Admin admin = Admin.create(Report.props(args[0], "default.api.timeout.ms", "60000"))) {
        run(report, admin, args[0], args[1]);
      }
    });
  }

  /** The exception a failed admin future ends with (null when it succeeded). */
  static Throwable failure(org.apache.kafka.common.KafkaFuture<?> future) throws InterruptedException {
    try {
      future.get();
      return null;
    } catch (ExecutionException e) {
      return e.getCause();
    }
  }

  static void run(Report report, Admin admin, String bootstrap, String prefix) throws Exception {
    // The cluster.
    DescribeClusterResult cluster = admin.describeCluster();
    Collection<Node> nodes = cluster.nodes().get();
    report.equal(3, nodes.size(), "describeCluster nodes");
    Node controller = cluster.controller().get();
    report.check(controller != null && controller.id() >= 1 && controller.id() <= 3, "controller " + controller);
    String clusterId = cluster.clusterId().get();
    report.check(clusterId != null && !clusterId.isEmpty(), "cluster id " + clusterId);
    report.fact("cluster_id", clusterId);

    // Topics.
    String a = prefix + "-a";
    String b = prefix + "-b";
    admin.createTopics(List.of(
        new NewTopic(a, 3, (short) 2).configs(Map.of("retention.ms", "3600000", "max.message.bytes", "2000000")),
        new NewTopic(b, 1, (short) 3))).all().get();
    Throwable duplicate = failure(admin.createTopics(List.of(new NewTopic(a, 1, (short) 1))).all());
    report.check(duplicate instanceof TopicExistsException, "a second createTopics of " + a + ": " + duplicate);
    Throwable badConfig = failure(admin.createTopics(List.of(
        new NewTopic(prefix + "-bad", 1, (short) 1).configs(Map.of("retention.ms", "soon")))).all());
    report.check(badConfig instanceof InvalidConfigurationException && badConfig.getMessage() != null,
        "createTopics with retention.ms=soon: " + badConfig);
    Set<String> names = admin.listTopics().names().get();
    report.check(names.contains(a) && names.contains(b) && !names.contains(prefix + "-bad"), "listTopics " + names);

    Map<String, TopicDescription> described = admin.describeTopics(List.of(a, b)).allTopicNames().get();
    TopicDescription da = described.get(a);
    report.equal(3, da.partitions().size(), a + " partitions");
    for (TopicPartitionInfo p : da.partitions()) {
      report.equal(2, p.replicas().size(), a + "-" + p.partition() + " replicas");
      report.check(p.leader() != null && p.replicas().contains(p.leader()), a + "-" + p.partition() + " leader " + p.leader());
    }
    report.check(da.topicId() != null && !da.topicId().toString().isEmpty(), "topic id of " + a);
    report.equal(3, described.get(b).partitions().get(0).replicas().size(), b + " replicas");
    report.check(Report.eventually(30_000, () -> isr(admin, b, 0) == 3), b + "-0 never had 3 in-sync replicas");
    Throwable unknown = failure(admin.describeTopics(List.of(prefix + "-none")).allTopicNames());
    report.check(unknown instanceof UnknownTopicOrPartitionException, "describeTopics of a missing topic: " + unknown);

    // Topic configs.
    ConfigResource ra = new ConfigResource(ConfigResource.Type.TOPIC, a);
    Config ca = admin.describeConfigs(List.of(ra)).all().get().get(ra);
    report.equal("3600000", value(ca, "retention.ms"), "retention.ms of " + a);
    report.equal(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, ca.get("retention.ms").source(), "source of retention.ms");
    report.check(ca.get("segment.bytes") != null && ca.get("segment.bytes").isDefault(), "segment.bytes is listed as a default: " + ca.get("segment.bytes"));
    admin.incrementalAlterConfigs(Map.of(ra, List.of(
        new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
        new AlterConfigOp(new ConfigEntry("max.message.bytes", null), AlterConfigOp.OpType.DELETE)))).all().get();
    report.check(Report.eventually(10_000, () -> {
      Config c = configs(admin, ra);
      return c != null && "7200000".equals(value(c, "retention.ms")) && c.get("max.message.bytes").isDefault();
    }), "incrementalAlterConfigs SET retention.ms / DELETE max.message.bytes not seen: " + configs(admin, ra));
    Throwable badAlter = failure(admin.incrementalAlterConfigs(Map.of(ra, List.of(
        new AlterConfigOp(new ConfigEntry("retention.ms", "-7"), AlterConfigOp.OpType.SET)))).all());
    report.check(badAlter instanceof InvalidConfigurationException, "retention.ms=-7: " + badAlter);

    // Broker configs.
    ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(controller.id()));
    Config cb = admin.describeConfigs(List.of(broker)).all().get().get(broker);
    report.equal(String.valueOf(controller.id()), value(cb, "broker.id"), "broker.id of broker " + controller.id());
    report.check(cb.get("broker.id").isReadOnly(), "broker.id is read-only");
    Throwable brokerAlter = failure(admin.incrementalAlterConfigs(Map.of(broker, List.of(
        new AlterConfigOp(new ConfigEntry("broker.id", "9"), AlterConfigOp.OpType.SET)))).all());
    report.check(brokerAlter instanceof org.apache.kafka.common.errors.ApiException && brokerAlter.getMessage() != null,
        "altering broker.id: " + brokerAlter);
    report.fact("broker_alter_refused", String.valueOf(brokerAlter));

    // Partitions.
    admin.createPartitions(Map.of(a, NewPartitions.increaseTo(5))).all().get();
    report.check(Report.eventually(10_000, () -> partitions(admin, a) == 5), a + " never had 5 partitions");
    Throwable shrink = failure(admin.createPartitions(Map.of(a, NewPartitions.increaseTo(2))).all());
    report.check(shrink instanceof org.apache.kafka.common.errors.InvalidPartitionsException, "shrinking " + a + ": " + shrink);

    // Reassignment: move a-0 to the brokers not holding it plus one that does.
    TopicPartition a0 = new TopicPartition(a, 0);
    List<Integer> before = replicas(admin, a, 0);
    List<Integer> target = new ArrayList<>();
    for (Node n : nodes) {
      if (!before.contains(n.id())) {
        target.add(n.id());
      }
    }
    target.add(before.get(0));
    admin.alterPartitionReassignments(Map.of(a0, Optional.of(new NewPartitionReassignment(target)))).all().get();
    Map<TopicPartition, PartitionReassignment> listed = admin.listPartitionReassignments().reassignments().get();
    report.check(listed.isEmpty() || listed.containsKey(a0), "listPartitionReassignments " + listed);
    report.check(Report.eventually(60_000, () -> replicas(admin, a, 0).equals(target)),
        a + "-0 never moved from " + before + " to " + target + ": " + replicas(admin, a, 0));
    report.check(Report.eventually(30_000, () -> {
      try {
        return admin.listPartitionReassignments(Set.of(a0)).reassignments().get().isEmpty();
      } catch (Exception e) {
        return false;
      }
    }), "the reassignment of " + a0 + " is still listed after it finished");
    report.fact("reassigned", Map.of("from", before, "to", target));

    // Records, then log dirs, deleteRecords and listOffsets.
    TopicPartition b0 = new TopicPartition(b, 0);
    long maxTimestamp = 0;
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(Report.props(bootstrap, "acks", "all"),
        new StringSerializer(), new StringSerializer())) {
      long base = System.currentTimeMillis() - 100_000;
      for (int i = 0; i < 20; i++) {
        // Timestamps rise except record 12, the largest.
        long ts = i == 12 ? base + 50_000 : base + i;
        producer.send(new ProducerRecord<>(b, 0, ts, "k" + i, "v" + i)).get();
      }
      maxTimestamp = base + 50_000;
    }
    Map<Integer, Map<String, LogDirDescription>> dirs = admin.describeLogDirs(List.of(1, 2, 3)).allDescriptions().get();
    report.equal(3, dirs.size(), "describeLogDirs brokers");
    int holders = 0;
    long bSize = -1;
    for (Map.Entry<Integer, Map<String, LogDirDescription>> e : dirs.entrySet()) {
      report.check(!e.getValue().isEmpty(), "broker " + e.getKey() + " has no log dir");
      for (LogDirDescription d : e.getValue().values()) {
        report.check(d.error() == null, "log dir error on " + e.getKey() + ": " + d.error());
        if (d.replicaInfos().containsKey(b0)) {
          holders++;
          bSize = d.replicaInfos().get(b0).size();
        }
      }
    }
    report.equal(3, holders, "brokers whose log dirs hold " + b0);
    report.check(bSize > 0, b0 + " size " + bSize);
    TopicPartitionReplica replica = new TopicPartitionReplica(b, 0, 1);
    Map<TopicPartitionReplica, ReplicaLogDirInfo> replicaDirs = admin.describeReplicaLogDirs(List.of(replica)).all().get();
    report.check(replicaDirs.get(replica) != null && replicaDirs.get(replica).getCurrentReplicaLogDir() != null,
        "describeReplicaLogDirs " + replicaDirs);

    report.equal(20L, offsets(admin, b0, OffsetSpec.latest()).offset(), "latest offset of " + b0);
    report.equal(0L, offsets(admin, b0, OffsetSpec.earliest()).offset(), "earliest offset of " + b0);
    ListOffsetsResultInfo max = offsets(admin, b0, OffsetSpec.maxTimestamp());
    report.equal(12L, max.offset(), "max-timestamp offset of " + b0);
    report.equal(maxTimestamp, max.timestamp(), "max timestamp of " + b0);
    long low = admin.deleteRecords(Map.of(b0, RecordsToDelete.beforeOffset(5))).lowWatermarks().get(b0).get().lowWatermark();
    report.equal(5L, low, "low watermark after deleteRecords before 5");
    report.equal(5L, offsets(admin, b0, OffsetSpec.earliest()).offset(), "earliest offset after deleteRecords");
    Throwable pastEnd = failure(admin.deleteRecords(Map.of(b0, RecordsToDelete.beforeOffset(100))).all());
    report.check(pastEnd instanceof org.apache.kafka.common.errors.OffsetOutOfRangeException, "deleteRecords past the end: " + pastEnd);

    // Delete.
    admin.deleteTopics(List.of(a, b)).all().get();
    report.check(Report.eventually(30_000, () -> {
      try {
        Set<String> left = admin.listTopics().names().get();
        return !left.contains(a) && !left.contains(b);
      } catch (Exception e) {
        return false;
      }
    }), "deleted topics are still listed");
    Throwable again = failure(admin.deleteTopics(List.of(a)).all());
    report.check(again instanceof UnknownTopicOrPartitionException, "deleting " + a + " twice: " + again);
  }

  static String value(Config config, String key) {
    ConfigEntry e = config.get(key);
    return e == null ? null : e.value();
  }

  static Config configs(Admin admin, ConfigResource r) {
    try {
      return admin.describeConfigs(List.of(r)).all().get().get(r);
    } catch (Exception e) {
      return null;
    }
  }

  static int isr(Admin admin, String topic, int partition) {
    try {
      return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().get(partition).isr().size();
    } catch (Exception e) {
      return -1;
    }
  }

  static int partitions(Admin admin, String topic) {
    try {
      return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
    } catch (Exception e) {
      return -1;
    }
  }

  static List<Integer> replicas(Admin admin, String topic, int partition) {
    try {
      return admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().get(partition)
          .replicas().stream().map(Node::id).toList();
    } catch (Exception e) {
      return List.of();
    }
  }

  static ListOffsetsResultInfo offsets(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
    return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get();
  }
}
