// kafkajs over SASL_SSL with SCRAM-SHA-512 against a secured hdi-broker: produce 300 records,
// read them back, and see a wrong password refused. Prints one JSON line ({"ok": true, ...}).
// Usage: node security_kafkajs.js --bootstrap HOST:PORT --ca CA.pem --password PW roundtrip
const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function client(password) {
  return new Kafka({
    clientId: 'hdi-security-kafkajs',
    brokers: [arg('--bootstrap')],
    ssl: { ca: [fs.readFileSync(arg('--ca'), 'utf8')] },
    sasl: { mechanism: 'scram-sha-512', username: 'admin', password },
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
  });
}

// Produces `messages` to `topic` (acks=all), then reads the topic from the beginning in group
// `groupId` until as many records starting with `prefix` arrived (30 s at most); returns that count.
async function roundtrip(kafka, topic, groupId, prefix, messages) {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const want = messages.length;
  let seen = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${seen} of ${want}`)), 30000);
    consumer.run({
      eachMessage: async ({ message }) => {
        if (message.value.toString().startsWith(prefix)) seen += 1;
        if (seen === want) { clearTimeout(timer); resolve(); }
      },
    });
  });
  await consumer.disconnect();
  return seen;
}

// Mutual TLS: carol's certificate on the SSL listener (principal User:carol).
async function mtls() {
  const kafka = new Kafka({
    clientId: 'hdi-security-kafkajs-mtls',
    brokers: [arg('--bootstrap')],
    ssl: {
      ca: [fs.readFileSync(arg('--ca'), 'utf8')],
      cert: fs.readFileSync(arg('--cert'), 'utf8'),
      key: fs.readFileSync(arg('--key'), 'utf8'),
    },
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
  });
  const messages = Array.from({ length: 100 }, (_, i) => ({ value: `kjs-mtls-${i}` }));
  const seen = await roundtrip(kafka, 'a', 'g-kjs-mtls', 'kjs-mtls-', messages);
  console.log(JSON.stringify({ ok: true, phase: 'mtls', read: seen }));
}

// OAUTHBEARER: the token provider asks the control plane's OAuth 2.0 token endpoint (client
// credentials: a username and one of its API tokens, in HTTP Basic) for an access token.
async function oauth() {
  const tokenUrl = arg('--token-url');
  const basic = Buffer.from(`${arg('--client-id')}:${arg('--client-secret')}`).toString('base64');
  let fetched = 0;
  const kafka = new Kafka({
    clientId: 'hdi-security-kafkajs-oauth',
    brokers: [arg('--bootstrap')],
    ssl: { ca: [fs.readFileSync(arg('--ca'), 'utf8')] },
    sasl: {
      mechanism: 'oauthbearer',
      oauthBearerProvider: async () => {
        const answer = await fetch(tokenUrl, {
          method: 'POST',
          headers: { Authorization: `Basic ${basic}`, 'Content-Type': 'application/x-www-form-urlencoded' },
          body: 'grant_type=client_credentials',
        });
        if (answer.status !== 200) throw new Error(`token endpoint: ${answer.status} ${await answer.text()}`);
        fetched += 1;
        return { value: (await answer.json()).access_token };
      },
    },
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'oauth-kjs', numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();
  const messages = Array.from({ length: 80 }, (_, i) => ({ value: `kjs-oauth-${i}` }));
  const seen = await roundtrip(kafka, 'oauth-kjs', 'g-kjs-oauth', 'kjs-oauth-', messages);
  console.log(JSON.stringify({ ok: true, phase: 'oauth', read: seen, tokens_fetched: fetched }));
}

async function main() {
  if (process.argv.includes('mtls')) return mtls();
  if (process.argv.includes('oauth')) return oauth();
  const kafka = client(arg('--password'));
  const messages = Array.from({ length: 300 }, (_, i) => ({ key: 'kjs', value: `kjs-${i}` }));
  const seen = await roundtrip(kafka, 'pay-in', 'g-kafkajs', 'kjs-', messages);
  let refused = null;
  const bad = client('not-the-password').admin();
  try {
    await bad.connect();
    await bad.listTopics();
  } catch (e) {
    refused = e.type || e.name;
  }
  await bad.disconnect().catch(() => {});
  if (!refused) throw new Error('a wrong password listed topics');
  console.log(JSON.stringify({ ok: true, phase: 'roundtrip', read: seen, refused }));
}

main().catch((e) => {
  console.error(e);
  console.log(JSON.stringify({ ok: false, error: String(e) }));
  process.exit(1);
});
