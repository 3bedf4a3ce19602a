// A Kafka Streams word count with exactly-once processing (exactly_once_v2) and a state store,
// for tests/java_ecosystem.rs. Subcommands:
//   produce BOOTSTRAP INPUT OUTPUT LINES   creates INPUT and OUTPUT (3 partitions, 3 replicas,
//                                          min.insync.replicas=2) and writes LINES sentences to
//                                          INPUT with an idempotent producer (acks=all)
//   run BOOTSTRAP APP INPUT OUTPUT STATE   runs the topology until killed; prints "processed N"
//                                          (input records read, re-reads after an abort included)
//                                          every 200 ms and each state change
//   verify BOOTSTRAP OUTPUT LINES SECONDS  reads OUTPUT with read_committed until every word's
//                                          count is there (or SECONDS pass) and checks it
// The store's cache is off, so the topology emits every count it reaches: with exactly-once the
// committed output of each word is exactly 1, 2, ..., its count, in order (a record processed
// twice would repeat a count, one lost would skip one). `verify` checks exactly that and ends
// with one JSON line.
package hdi.ecosystem;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

public final class WordCount {
    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "produce" -> produce(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "run" -> run(args[1], args[2], args[3], args[4], args[5]);
            case "verify" -> verify(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
            default -> throw new IllegalArgumentException("unknown subcommand " + args[0]);
        }
    }

    /// Sentence i: three words out of 40.
    static String sentence(int i) {
        return "word" + (i * 7 % 40) + " word" + (i * 13 % 40) + " word" + (i % 17);
    }

    static Map<String, Long> expected(int lines) {
        Map<String, Long> counts = new TreeMap<>();
        for (int i = 0; i < lines; i++) {
            for (String w : sentence(i).split(" ")) {
                counts.merge(w, 1L, Long::sum);
            }
        }
        return counts;
    }

    static void produce(String bootstrap, String input, String output, int lines) throws Exception {
        Properties a = new Properties();
        a.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(a)) {
            Map<String, String> configs = Map.of("min.insync.replicas", "2");
            admin.createTopics(List.of(
                    new NewTopic(input, 3, (short) 3).configs(configs),
                    new NewTopic(output, 3, (short) 3).configs(configs))).all().get();
        }
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        try (var producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < lines; i++) {
                producer.send(new ProducerRecord<>(input, "line-" + i, sentence(i)));
            }
            producer.flush();
        }
        System.out.println("{\"ok\": true, \"lines\": " + lines + "}");
    }

    static void run(String bootstrap, String app, String input, String output, String state) throws Exception {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 3);
        p.put(StreamsConfig.STATE_DIR_CONFIG, state);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        AtomicLong processed = new AtomicLong();
        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(input)
                .peek((k, v) -> processed.incrementAndGet())
                .flatMapValues(v -> Arrays.asList(v.split(" ")))
                .groupBy((k, word) -> word)
                .count(Materialized.as("word-counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        streams.setStateListener((now, before) -> System.out.println("state " + before + " -> " + now));
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("uncaught: " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
        });
        streams.start();
        while (true) {
            Thread.sleep(200);
            System.out.println("processed " + processed.get());
        }
    }

    static void verify(String bootstrap, String output, int lines, int seconds) {
        Map<String, Long> expected = expected(lines);
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        Map<String, List<Long>> seen = new TreeMap<>();
        long records = 0;
        long deadline = System.currentTimeMillis() + seconds * 1000L;
        try (var consumer = new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer())) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (var info : consumer.partitionsFor(output, Duration.ofSeconds(30))) {
                partitions.add(new TopicPartition(output, info.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            while (System.currentTimeMillis() < deadline) {
                for (var r : consumer.poll(Duration.ofMillis(500))) {
                    seen.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
                    records++;
                }
                boolean complete = true;
                for (var e : expected.entrySet()) {
                    List<Long> counts = seen.get(e.getKey());
                    if (counts == null || counts.get(counts.size() - 1) < e.getValue()) {
                        complete = false;
                        break;
                    }
                }
                if (complete) {
                    break;
                }
            }
        }
        List<String> failures = new ArrayList<>();
        for (var e : expected.entrySet()) {
            List<Long> counts = seen.getOrDefault(e.getKey(), List.of());
            List<Long> want = new ArrayList<>();
            for (long c = 1; c <= e.getValue(); c++) {
                want.add(c);
            }
            if (!counts.equals(want)) {
                String got = counts.size() > 12 ? counts.size() + " counts, last " + counts.get(counts.size() - 1) : counts.toString();
                failures.add(e.getKey() + ": want 1.." + e.getValue() + ", got " + got);
            }
        }
        for (String key : seen.keySet()) {
            if (!expected.containsKey(key)) {
                failures.add("unexpected word " + key);
            }
        }
        long total = expected.values().stream().mapToLong(Long::longValue).sum();
        System.out.println("{\"ok\": " + failures.isEmpty() + ", \"words\": " + expected.size()
                + ", \"expected_records\": " + total + ", \"records\": " + records
                + ", \"failures\": \"" + String.join("; ", failures).replace("\"", "'") + "\"}");
        System.exit(failures.isEmpty() ? 0 : 1);
    }
}
