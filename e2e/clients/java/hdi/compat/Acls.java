// ACLs through the Java admin client on a broker with SASL SCRAM and an authorizer: the super
// user `admin` creates the SCRAM user `alice` (alterUserScramCredentials), topics, and ACLs
// letting alice write and read one topic and use one group (createAcls); describeAcls lists
// them; alice (SCRAM-SHA-512 from Java) writes and reads that topic but is refused another one
// with TopicAuthorizationException; deleteAcls removes her WRITE and she is refused from then on
// (a plain producer the topic, an idempotent one its producer id, as by Kafka).
//
// Args: bootstrap (SASL_PLAINTEXT) admin-password prefix
package hdi.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AccessControlEntryFilter;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourcePatternFilter;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Acls {
  static final String ALICE_PASSWORD = "alice-secret-1";

  public static void main(String[] args) {
    Report report = new Report();
    Report.run(report, () -> {
      try (Admin admin = Admin.create(scram(args[0], "admin", args[1]))) {
        run(report, admin, args[0], args[2]);
      }
    });
  }

  static Properties scram(String bootstrap, String user, String password) {
    return Report.props(bootstrap,
        "security.protocol", "SASL_PLAINTEXT",
        "sasl.mechanism", "SCRAM-SHA-512",
        "sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
            + user + "\" password=\"" + password + "\";");
  }

  /** Sends one record as alice (idempotent: the client's default); the exception it failed with, or null. */
  static Throwable aliceSends(String bootstrap, String topic) throws InterruptedException {
    return aliceSends(bootstrap, topic, true);
  }

  static Throwable aliceSends(String bootstrap, String topic, boolean idempotent) throws InterruptedException {
    Properties p = scram(bootstrap, "alice", ALICE_PASSWORD);
    p.put("enable.idempotence", String.valueOf(idempotent));
    p.put("max.block.ms", "15000");
    p.put("delivery.timeout.ms", "15000");
    p.put("request.timeout.ms", "10000");
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
      producer.send(new ProducerRecord<>(topic, "k", "v")).get();
      return null;
    } catch (ExecutionException e) {
      return e.getCause();
    } catch (org.apache.kafka.common.KafkaException e) {
      return e;
    }
  }

  static void run(Report report, Admin admin, String bootstrap, String prefix) throws Exception {
    admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion("alice",
        new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), ALICE_PASSWORD))).all().get();
    var described = admin.describeUserScramCredentials(List.of("alice")).all().get();
    report.check(described.containsKey("alice") && !described.get("alice").credentialInfos().isEmpty(),
        "describeUserScramCredentials alice: " + described);
    String allowed = prefix + "-allowed";
    String denied = prefix + "-denied";
    String group = prefix + "-group";
    admin.createTopics(List.of(new NewTopic(allowed, 1, (short) 1), new NewTopic(denied, 1, (short) 1))).all().get();

    ResourcePattern topic = new ResourcePattern(ResourceType.TOPIC, allowed, PatternType.LITERAL);
    AclBinding write = new AclBinding(topic, new AccessControlEntry("User:alice", "*", AclOperation.WRITE, AclPermissionType.ALLOW));
    AclBinding read = new AclBinding(topic, new AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW));
    AclBinding groupRead = new AclBinding(new ResourcePattern(ResourceType.GROUP, group, PatternType.LITERAL),
        new AccessControlEntry("User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW));
    admin.createAcls(List.of(write, read, groupRead)).all().get();
    AclBindingFilter alices = new AclBindingFilter(ResourcePatternFilter.ANY,
        new AccessControlEntryFilter("User:alice", null, AclOperation.ANY, AclPermissionType.ANY));
    Collection<AclBinding> listed = admin.describeAcls(alices).values().get();
    report.check(listed.size() == 3 && listed.containsAll(List.of(write, read, groupRead)), "describeAcls after createAcls: " + listed);

    // alice writes and reads her topic, and is refused the other.
    for (int i = 0; i < 10; i++) {
      Throwable error = aliceSends(bootstrap, allowed);
      report.check(error == null, "alice writing " + allowed + ": " + error);
    }
    Throwable refused = aliceSends(bootstrap, denied);
    report.check(refused instanceof TopicAuthorizationException, "alice writing " + denied + ": " + refused);
    Properties c = scram(bootstrap, "alice", ALICE_PASSWORD);
    c.put("group.id", group);
    c.put("auto.offset.reset", "earliest");
    List<String> got = new ArrayList<>();
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
      consumer.subscribe(List.of(allowed));
      long deadline = System.currentTimeMillis() + 30_000;
      while (got.size() < 10 && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          got.add(r.value());
        }
      }
      consumer.commitSync();
    }
    report.equal(10, got.size(), "records alice read from " + allowed);

    // Without WRITE she is refused.
    Collection<AclBinding> deleted = admin.deleteAcls(List.of(write.toFilter())).all().get();
    report.check(deleted.size() == 1 && deleted.contains(write), "deleteAcls of alice's WRITE: " + deleted);
    Collection<AclBinding> left = admin.describeAcls(alices).values().get();
    report.check(left.size() == 2 && !left.contains(write), "describeAcls after deleteAcls: " + left);
    // A plain producer is refused the topic; an idempotent one is refused its producer id
    // first, as by Kafka (KIP-679: InitProducerId needs IDEMPOTENT_WRITE on the cluster or
    // WRITE on some topic, and alice has neither now).
    report.check(Report.eventually(15_000, () -> {
      try {
        return aliceSends(bootstrap, allowed, false) instanceof TopicAuthorizationException;
      } catch (InterruptedException e) {
        return false;
      }
    }), "alice can still write " + allowed + " after her WRITE was deleted");
    // The refusal reaches send() either as the failed future's cause or, when the producer
    // already took its fatal error, as a KafkaException caused by it.
    Throwable idempotent = aliceSends(bootstrap, allowed, true);
    Throwable cause = idempotent;
    while (cause != null && !(cause instanceof ClusterAuthorizationException)) {
      cause = cause.getCause();
    }
    report.check(cause != null, "alice's idempotent producer with no WRITE anywhere: " + idempotent);
    report.fact("acls_listed", listed.size());
    report.fact("acls_left", left.size());
    report.fact("read", got.size());
    report.fact("refused", String.valueOf(refused == null ? null : refused.getClass().getSimpleName()));
  }
}
