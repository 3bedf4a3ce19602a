// The Java Kafka client (kafka-clients 4.x) against a secured hdi-broker: over SASL_SSL with
// SCRAM-SHA-512 and a PEM trust store, `roundtrip` creates a topic, produces 1,000 records with
// acks=all (idempotent), reads them back in a consumer group and commits; `wrong-password`
// expects a SaslAuthenticationException; `mtls` does the same round trip over SSL with a client
// certificate (USER is then a PEM file of its key and certificate) on topic `a`; `oauth` does it
// over OAUTHBEARER with Kafka's OAuthBearerLoginCallbackHandler fetching tokens from TOKEN_URL
// (client credentials USER and PASSWORD). Prints one JSON line ({"ok": true, ...}).
// Usage: java -cp LIBS:. SecurityClient BOOTSTRAP CA_PEM USER PASSWORD MODE [TOKEN_URL]

import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.serialization.*;

public class SecurityClient {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], ca = args[1], user = args[2], password = args[3], mode = args[4];
        Properties base = new Properties();
        base.put("bootstrap.servers", bootstrap);
        if (mode.equals("oauth")) {
            // OAUTHBEARER with Kafka's own login handler asking the control plane's OAuth 2.0 token
            // endpoint (args[5]) for a token: USER is the client id, PASSWORD its API token.
            base.put("security.protocol", "SASL_SSL");
            base.put("sasl.mechanism", "OAUTHBEARER");
            base.put("sasl.login.callback.handler.class",
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler");
            base.put("sasl.oauthbearer.token.endpoint.url", args[5]);
            // Kafka 4 fetches tokens only from URLs the JVM allows (CVE-2025-27817).
            System.setProperty("org.apache.kafka.sasl.oauthbearer.allowed.urls", args[5]);
            base.put("sasl.jaas.config", "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\""
                    + user + "\" clientSecret=\"" + password + "\";");
        } else if (mode.equals("mtls")) {
            // USER is a PEM file with the client's private key and certificate; no SASL.
            base.put("security.protocol", "SSL");
            base.put("ssl.keystore.type", "PEM");
            base.put("ssl.keystore.location", user);
        } else {
            base.put("security.protocol", "SASL_SSL");
            base.put("sasl.mechanism", "SCRAM-SHA-512");
            base.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                    + user + "\" password=\"" + password + "\";");
        }
        base.put("ssl.truststore.type", "PEM");
        base.put("ssl.truststore.location", ca);
        base.put("request.timeout.ms", "15000");
        base.put("default.api.timeout.ms", "30000");
        if (mode.equals("wrong-password")) {
            try (Admin admin = Admin.create(base)) {
                admin.listTopics().names().get();
                System.out.println("{\"ok\": false, \"error\": \"a wrong password listed topics\"}");
                System.exit(1);
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof SaslAuthenticationException)) throw e;
                System.out.println("{\"ok\": true, \"refused\": \"" + e.getCause().getClass().getSimpleName() + "\"}");
            }
            return;
        }
        String topic = mode.equals("mtls") ? "a" : mode.equals("oauth") ? "java-oauth-t" : "java-t";
        String prefix = mode.equals("mtls") ? "java-mtls-" : "java-";
        if (!mode.equals("mtls")) {
            try (Admin admin = Admin.create(base)) {
                admin.createTopics(List.of(new NewTopic(topic, 2, (short) 1))).all().get();
            }
        }
        Properties producerProps = new Properties();
        producerProps.putAll(base);
        producerProps.put("acks", "all");
        producerProps.put("enable.idempotence", "true");
        int records = 1000;
        try (Producer<String, String> producer = new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer())) {
            List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < records; i++) sent.add(producer.send(new ProducerRecord<>(topic, "k" + i, prefix + i)));
            for (var f : sent) f.get();
        }
        Properties consumerProps = new Properties();
        consumerProps.putAll(base);
        consumerProps.put("group.id", "g-java-" + mode);
        consumerProps.put("auto.offset.reset", "earliest");
        consumerProps.put("enable.auto.commit", "false");
        int read = 0;
        try (Consumer<String, String> consumer = new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (read < records && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    if (r.value().startsWith(prefix)) read++;
                }
            }
            consumer.commitSync();
        }
        if (read != records) {
            System.out.println("{\"ok\": false, \"error\": \"read " + read + " of " + records + "\"}");
            System.exit(1);
        }
        System.out.println("{\"ok\": true, \"produced\": " + records + ", \"read\": " + read + "}");
    }
}
