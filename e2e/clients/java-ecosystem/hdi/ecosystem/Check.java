// The admin-client checks of tests/java_ecosystem.rs, each a subcommand ending with one JSON line:
//   create-topic BOOTSTRAP TOPIC PARTITIONS REPLICAS   creates TOPIC (cleanup.policy=delete)
//   cleanup-policy BOOTSTRAP TOPIC...  each topic's cleanup.policy as DescribeConfigs reports it
//   commit BOOTSTRAP GROUP TOPIC        commits the end offset of every partition of TOPIC for GROUP
//   group-offsets BOOTSTRAP GROUP       GROUP's committed offsets ("topic-partition": offset)
//   end-offsets BOOTSTRAP TOPIC         the end offset of every partition of TOPIC
package hdi.ecosystem;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class Check {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[1];
        String json;
        switch (args[0]) {
            case "create-topic" -> json = createTopic(bootstrap, args[2], Integer.parseInt(args[3]), Short.parseShort(args[4]));
            case "cleanup-policy" -> json = cleanupPolicy(bootstrap, List.of(args).subList(2, args.length));
            case "commit" -> json = commit(bootstrap, args[2], args[3]);
            case "group-offsets" -> json = groupOffsets(bootstrap, args[2]);
            case "end-offsets" -> json = endOffsets(bootstrap, args[2]);
            default -> throw new IllegalArgumentException("unknown check " + args[0]);
        }
        System.out.println("{\"ok\": true, " + json + "}");
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return Admin.create(p);
    }

    static KafkaConsumer<byte[], byte[]> consumer(String bootstrap, String group) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    static String object(String name, Map<String, ?> values) {
        List<String> fields = new ArrayList<>();
        for (var e : values.entrySet()) {
            Object v = e.getValue();
            String value = v instanceof String ? "\"" + v + "\"" : String.valueOf(v);
            fields.add("\"" + e.getKey() + "\": " + value);
        }
        return "\"" + name + "\": {" + String.join(", ", fields) + "}";
    }

    static String createTopic(String bootstrap, String topic, int partitions, short replicas) throws Exception {
        try (Admin admin = admin(bootstrap)) {
            admin.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(topic, partitions, replicas))).all().get();
        }
        return "\"created\": \"" + topic + "\"";
    }

    static String cleanupPolicy(String bootstrap, List<String> topics) throws Exception {
        Map<String, String> policies = new TreeMap<>();
        try (Admin admin = admin(bootstrap)) {
            List<ConfigResource> resources = new ArrayList<>();
            for (String t : topics) {
                resources.add(new ConfigResource(ConfigResource.Type.TOPIC, t));
            }
            Map<ConfigResource, Config> configs = admin.describeConfigs(resources).all().get();
            for (var e : configs.entrySet()) {
                var entry = e.getValue().get("cleanup.policy");
                policies.put(e.getKey().name(), entry == null ? "(none)" : entry.value());
            }
        }
        return object("cleanup_policy", policies);
    }

    static List<TopicPartition> partitions(KafkaConsumer<byte[], byte[]> consumer, String topic) {
        List<TopicPartition> partitions = new ArrayList<>();
        for (var info : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
            partitions.add(new TopicPartition(topic, info.partition()));
        }
        return partitions;
    }

    static String commit(String bootstrap, String group, String topic) {
        Map<String, Long> committed = new TreeMap<>();
        try (var consumer = consumer(bootstrap, group)) {
            var partitions = partitions(consumer, topic);
            Map<TopicPartition, OffsetAndMetadata> offsets = new java.util.HashMap<>();
            for (var e : consumer.endOffsets(partitions, Duration.ofSeconds(30)).entrySet()) {
                offsets.put(e.getKey(), new OffsetAndMetadata(e.getValue()));
                committed.put(e.getKey().toString(), e.getValue());
            }
            consumer.commitSync(offsets, Duration.ofSeconds(30));
        }
        return object("committed", committed);
    }

    static String groupOffsets(String bootstrap, String group) throws Exception {
        Map<String, Long> offsets = new TreeMap<>();
        try (Admin admin = admin(bootstrap)) {
            var result = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            for (var e : result.entrySet()) {
                if (e.getValue() != null) {
                    offsets.put(e.getKey().toString(), e.getValue().offset());
                }
            }
        }
        return object("offsets", offsets);
    }

    static String endOffsets(String bootstrap, String topic) {
        Map<String, Long> ends = new TreeMap<>();
        try (var consumer = consumer(bootstrap, null)) {
            for (var e : consumer.endOffsets(partitions(consumer, topic), Duration.ofSeconds(30)).entrySet()) {
                ends.put(e.getKey().toString(), e.getValue());
            }
        }
        return object("end_offsets", ends);
    }
}
