// Topic configs through the Java admin client. Every key of the client's TopicConfig (read by
// reflection, so a newer client's keys join the check) is created at Kafka's default value and
// must be accepted and described back with that value; values hdi does not support, unknown keys
// and malformed values must be refused with INVALID_CONFIG (InvalidConfigurationException) and
// a message, on createTopics and on incrementalAlterConfigs alike.
//
// Args: bootstrap prefix
package hdi.compat;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.errors.InvalidConfigurationException;

public final class TopicConfigs {
  /** Kafka 4.4's default of each topic config (LogConfig / ServerLogConfigs). */
  static final Map<String, String> KAFKA_DEFAULTS = new TreeMap<>(Map.ofEntries(
      Map.entry("cleanup.policy", "delete"),
      Map.entry("compression.type", "producer"),
      Map.entry("compression.gzip.level", "-1"),
      Map.entry("compression.lz4.level", "9"),
      Map.entry("compression.zstd.level", "3"),
      Map.entry("delete.retention.ms", "86400000"),
      Map.entry("errors.deadletterqueue.group.enable", "false"),
      Map.entry("file.delete.delay.ms", "60000"),
      Map.entry("flush.messages", "9223372036854775807"),
      Map.entry("flush.ms", "9223372036854775807"),
      Map.entry("follower.replication.throttled.replicas", ""),
      Map.entry("leader.replication.throttled.replicas", ""),
      Map.entry("index.interval.bytes", "4096"),
      Map.entry("local.retention.bytes", "-2"),
      Map.entry("local.retention.ms", "-2"),
      Map.entry("max.compaction.lag.ms", "9223372036854775807"),
      Map.entry("max.decompressed.message.bytes", "2147483647"),
      Map.entry("max.message.bytes", "1048588"),
      Map.entry("message.downconversion.enable", "true"),
      Map.entry("message.timestamp.after.max.ms", "3600000"),
      Map.entry("message.timestamp.before.max.ms", "9223372036854775807"),
      Map.entry("message.timestamp.type", "CreateTime"),
      Map.entry("min.cleanable.dirty.ratio", "0.5"),
      Map.entry("min.compaction.lag.ms", "0"),
      Map.entry("min.insync.replicas", "1"),
      Map.entry("preallocate", "false"),
      Map.entry("remote.copy.lag.bytes", "-1"),
      Map.entry("remote.copy.lag.ms", "-1"),
      Map.entry("remote.storage.enable", "false"),
      Map.entry("remote.log.copy.disable", "false"),
      Map.entry("remote.log.delete.on.disable", "false"),
      Map.entry("retention.bytes", "-1"),
      Map.entry("retention.ms", "604800000"),
      Map.entry("segment.bytes", "1073741824"),
      Map.entry("segment.index.bytes", "10485760"),
      Map.entry("segment.jitter.ms", "0"),
      Map.entry("segment.ms", "604800000"),
      Map.entry("unclean.leader.election.enable", "false")));

  /** Values hdi refuses (a feature it does not have, an unknown key, a malformed value). */
  static final List<String[]> REFUSED = List.of(
      new String[] {"message.timestamp.type", "LogAppendTime"},
      new String[] {"remote.storage.enable", "true"},
      new String[] {"unclean.leader.election.enable", "true"},
      new String[] {"retention.ms", "soon"},
      new String[] {"min.insync.replicas", "0"},
      new String[] {"compression.type", "brotli"},
      new String[] {"no.such.config", "1"});

  public static void main(String[] args) {
    Report report = new Report();
    Report.run(report, () -> {
      try (Admin admin = Admin.create(Report.props(args[0]))) {
        run(report, admin, args[1]);
      }
    });
  }

  /** The keys of the client's TopicConfig: its public static String fields named *_CONFIG. */
  static List<String> clientKeys() throws IllegalAccessException {
    List<String> keys = new ArrayList<>();
    for (Field f : TopicConfig.class.getFields()) {
      if (Modifier.isStatic(f.getModifiers()) && f.getType() == String.class && f.getName().endsWith("_CONFIG")) {
        keys.add((String) f.get(null));
      }
    }
    keys.sort(null);
    return keys;
  }

  static Throwable failure(org.apache.kafka.common.KafkaFuture<?> future) throws InterruptedException {
    try {
      future.get();
      return null;
    } catch (ExecutionException e) {
      return e.getCause();
    }
  }

  static void run(Report report, Admin admin, String prefix) throws Exception {
    List<String> keys = clientKeys();
    report.fact("client_keys", keys.size());
    List<String> accepted = new ArrayList<>();
    Map<String, String> refused = new TreeMap<>();
    int n = 0;
    for (String key : keys) {
      String value = KAFKA_DEFAULTS.get(key);
      if (value == null) {
        report.check(false, "TopicConfig." + key + " has no Kafka default in this test's table");
        continue;
      }
      String topic = prefix + "-" + n++;
      Throwable error = failure(admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1)
          .configs(Map.of(key, value)))).all());
      if (error != null) {
        refused.put(key, String.valueOf(error));
        report.check(false, "createTopics with " + key + "=" + value + " (Kafka's default) refused: " + error);
        continue;
      }
      accepted.add(key);
      ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      Config config = admin.describeConfigs(List.of(resource)).all().get().get(resource);
      ConfigEntry entry = config.get(key);
      report.check(entry != null && value.equals(entry.value()),
          "describeConfigs of " + topic + " shows " + key + " = " + (entry == null ? "nothing" : entry.value()) + ", not " + value);
      admin.deleteTopics(List.of(topic)).all().get();
    }
    report.fact("accepted_defaults", accepted.size());
    report.fact("refused_defaults", refused);

    // Refusals, on create and on alter.
    String altered = prefix + "-alter";
    admin.createTopics(List.of(new NewTopic(altered, 1, (short) 1))).all().get();
    ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, altered);
    Map<String, String> messages = new TreeMap<>();
    for (String[] kv : REFUSED) {
      Throwable create = failure(admin.createTopics(List.of(new NewTopic(prefix + "-refused", 1, (short) 1)
          .configs(Map.of(kv[0], kv[1])))).all());
      report.check(create instanceof InvalidConfigurationException && create.getMessage() != null && !create.getMessage().isBlank(),
          "createTopics with " + kv[0] + "=" + kv[1] + ": " + create);
      Throwable alter = failure(admin.incrementalAlterConfigs(Map.of(resource, List.of(
          new AlterConfigOp(new ConfigEntry(kv[0], kv[1]), AlterConfigOp.OpType.SET)))).all());
      report.check(alter instanceof InvalidConfigurationException && alter.getMessage() != null && !alter.getMessage().isBlank(),
          "incrementalAlterConfigs " + kv[0] + "=" + kv[1] + ": " + alter);
      messages.put(kv[0] + "=" + kv[1], create == null ? "accepted" : create.getMessage());
    }
    report.check(!admin.listTopics().names().get().contains(prefix + "-refused"), "a refused topic was created");
    report.fact("refusals", messages);
    admin.deleteTopics(List.of(altered)).all().get();
  }
}
