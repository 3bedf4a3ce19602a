#!/usr/bin/env node
/*
 * Compatibility suite for kafkajs (2.2.4, pure JavaScript client) against a running broker.
 *
 * Usage: NODE_PATH=... node kafkajs_suite.js --bootstrap HOST:PORT PHASE [--records N] [--tag T]
 * Phases (each prints one JSON line and exits 0 on success, 1 with a reason on failure):
 *   roundtrip     create a 3-partition topic, produce N keyed records with headers and timestamps
 *                 (acks=-1, GZIP, ~500 records per send), consume them from the beginning,
 *                 compare checksums; offsets dense from 0 per partition
 *   idempotent    idempotent producer (maxInFlightRequests 1); every record exactly once,
 *                 in production order per partition
 *   admin         create/describe/alter/partitions/delete-records/delete topics and the error
 *                 codes of bad input
 *   group         3 consumers in one group: rebalance on join and leave; all records consumed;
 *                 offsets committed explicitly after each batch
 *   group-resume  (after a broker restart) the group resumes from its committed offsets
 *
 * kafkajs only speaks non-flexible protocol versions (Produce <= v7, Fetch <= v11,
 * Metadata <= v6). Client logs go to stderr at ERROR level; stdout carries only the JSON line.
 */

'use strict'

const crypto = require('crypto')
const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes, Partitioners } = require('kafkajs')

const PHASES = ['roundtrip', 'idempotent', 'admin', 'group', 'group-resume']

function fail(reason) {
  process.stdout.write(JSON.stringify({ ok: false, reason }) + '\n')
  process.exit(1)
}

function describeError(e) {
  if (!e) return String(e)
  const parts = [e.name || 'Error']
  if (e.type) parts.push(`type=${e.type}`)
  if (e.code !== undefined) parts.push(`code=${e.code}`)
  parts.push(e.message)
  if (Array.isArray(e.errors)) parts.push(`errors=[${e.errors.map(describeError).join('; ')}]`)
  if (Array.isArray(e.partitions)) {
    parts.push(`partitions=${JSON.stringify(e.partitions.map(p => [p.partition, p.error && p.error.type]))}`)
  }
  if (e.originalError) parts.push(`cause=(${describeError(e.originalError)})`)
  else if (e.cause && e.cause !== e) parts.push(`cause=(${describeError(e.cause)})`)
  return parts.join(' ')
}

function parseArgs(argv) {
  const args = { bootstrap: null, records: 100000, tag: String(Math.floor(Date.now() / 1000)), phase: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const take = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--bootstrap') args.bootstrap = take()
    else if (a.startsWith('--bootstrap=')) args.bootstrap = a.slice(12)
    else if (a === '--records') args.records = Number(take())
    else if (a.startsWith('--records=')) args.records = Number(a.slice(10))
    else if (a === '--tag') args.tag = take()
    else if (a.startsWith('--tag=')) args.tag = a.slice(6)
    else if (a.startsWith('-')) usage(`unknown option ${a}`)
    else if (args.phase === null) args.phase = a
    else usage(`unexpected argument ${a}`)
  }
  if (!args.bootstrap) usage('--bootstrap is required')
  if (!PHASES.includes(args.phase)) usage(`phase must be one of ${PHASES.join(', ')}`)
  if (!Number.isInteger(args.records) || args.records <= 0) usage('--records must be a positive integer')
  return args
}

function usage(msg) {
  process.stderr.write(`${msg}\nusage: node kafkajs_suite.js --bootstrap HOST:PORT [--records N] [--tag T] {${PHASES.join(',')}}\n`)
  process.exit(2)
}

// ---------------------------------------------------------------------------------------------
// Records and checksums

function record(i) {
  return {
    key: `key-${i}`,
    value: `value-${i}-` + 'x'.repeat(i % 50),
    headers: [['idx', String(i)]],
    timestamp: String(1700000000000 + i),
  }
}

function toMessage(i, partition) {
  const r = record(i)
  const m = { key: r.key, value: r.value, headers: Object.fromEntries(r.headers), timestamp: r.timestamp }
  if (partition !== undefined) m.partition = partition
  return m
}

// A consumed kafkajs message as (key, value, headers, timestamp) strings.
function fromMessage(message) {
  const str = b => (b === null || b === undefined ? null : Buffer.isBuffer(b) ? b.toString('utf8') : b)
  const headers = Object.entries(message.headers || {}).map(([k, v]) =>
    [k, Array.isArray(v) ? v.map(str) : str(v)])
  return { key: str(message.key), value: str(message.value), headers, timestamp: message.timestamp }
}

function digest(items) {
  const lines = items.map(r => `${r.key}|${r.value}|${JSON.stringify(r.headers)}|${r.timestamp}`)
  lines.sort()
  const h = crypto.createHash('sha256')
  for (const line of lines) h.update(line + '\n')
  return h.digest('hex')
}

// ---------------------------------------------------------------------------------------------
// Client plumbing

function makeKafka(args, clientId) {
  return new Kafka({
    clientId: clientId || `kafkajs-suite-${args.tag}`,
    brokers: [args.bootstrap],
    logLevel: logLevel.ERROR,
    logCreator: () => ({ namespace, level, label, log }) => {
      const { message, timestamp, logger, ...extra } = log
      process.stderr.write(`${timestamp} ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`)
    },
    retry: { retries: 8 },
  })
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

async function waitFor(predicate, timeoutMs, what, detail) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (predicate()) return
    await sleep(100)
  }
  fail(`timed out after ${timeoutMs}ms waiting for ${what}${detail ? ': ' + detail() : ''}`)
}

async function withAdmin(kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

async function createTopic(admin, topic, numPartitions, configEntries) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1, configEntries: configEntries || [] }],
    timeout: 10000,
  })
  if (created !== true) fail(`createTopics(${topic}) returned ${created}, expected true (a fresh topic)`)
}

// Produce records [start, start+count) in sends of `batch` records, waiting for each send.
// Returns the RecordMetadata of every send, in order.
async function produce(kafka, topic, count, { start = 0, batch = 500, producerConfig = {}, compression, partitionOf } = {}) {
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
    ...producerConfig,
  })
  await producer.connect()
  const metadata = []
  try {
    for (let i = start; i < start + count; i += batch) {
      const messages = []
      for (let j = i; j < Math.min(i + batch, start + count); j++) {
        messages.push(toMessage(j, partitionOf ? partitionOf(j) : undefined))
      }
      const result = await producer.send({ topic, acks: -1, timeout: 30000, compression, messages })
      for (const m of result) {
        if (m.errorCode !== 0) fail(`produce: partition ${m.partition} errorCode ${m.errorCode}`)
      }
      metadata.push(result)
    }
  } finally {
    await producer.disconnect()
  }
  return metadata
}

// Consume `count` records from the beginning of `topic` with a fresh group. Waits `settleMs`
// after reaching `count` so that duplicates or extras show up as a count mismatch.
async function consumeAll(kafka, topic, count, { timeoutMs = 120000, settleMs = 1000 } = {}) {
  const consumer = kafka.consumer({
    groupId: `reader-${topic}-${process.hrtime.bigint()}`,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 500,
  })
  const items = []
  const positions = {}
  const keysByPartition = {}
  let crash = null
  consumer.on(consumer.events.CRASH, e => { crash = e.payload.error })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      items.push(fromMessage(message))
      ;(positions[partition] = positions[partition] || []).push(Number(message.offset))
      ;(keysByPartition[partition] = keysByPartition[partition] || []).push(message.key.toString())
    },
  })
  await waitFor(() => items.length >= count || crash, timeoutMs, `${count} records from ${topic}`,
    () => `got ${items.length}`)
  if (crash) fail(`consumer crashed: ${describeError(crash)}`)
  await sleep(settleMs)
  await consumer.disconnect()
  return { items, positions, keysByPartition }
}

function checkDense(positions, what) {
  for (const [partition, offsets] of Object.entries(positions)) {
    for (let k = 0; k < offsets.length; k++) {
      if (offsets[k] !== k) {
        fail(`${what}: partition ${partition} offsets not dense from 0 (index ${k} has offset ${offsets[k]})`)
      }
    }
  }
}

// The produce responses must agree with the log: per partition, base offsets strictly increase,
// start at 0, and the high watermark equals the number of records consumed from it.
async function checkOffsets(admin, topic, metadata, positions, what) {
  const bases = {}
  for (const sendResult of metadata) {
    for (const m of sendResult) {
      const list = (bases[m.partition] = bases[m.partition] || [])
      list.push(Number(m.baseOffset))
    }
  }
  for (const [partition, list] of Object.entries(bases)) {
    if (list[0] !== 0) fail(`${what}: partition ${partition}: first produce baseOffset ${list[0]}, expected 0`)
    for (let k = 1; k < list.length; k++) {
      if (!(list[k] > list[k - 1])) fail(`${what}: partition ${partition}: produce baseOffsets not increasing: ${list[k - 1]} then ${list[k]}`)
    }
  }
  const offsets = await admin.fetchTopicOffsets(topic)
  for (const { partition, high, low } of offsets) {
    const consumed = (positions[partition] || []).length
    if (Number(low) !== 0 || Number(high) !== consumed) {
      fail(`${what}: partition ${partition}: watermarks low ${low} high ${high}, consumed ${consumed}`)
    }
    const list = bases[partition] || []
    if (list.length && list[list.length - 1] >= Number(high)) {
      fail(`${what}: partition ${partition}: produce baseOffset ${list[list.length - 1]} >= high watermark ${high}`)
    }
  }
  return offsets.length
}

// ---------------------------------------------------------------------------------------------
// Phases

async function phaseRoundtrip(args) {
  const kafka = makeKafka(args)
  const topic = `roundtrip-${args.tag}`
  return withAdmin(kafka, async admin => {
    await createTopic(admin, topic, 3)
    const metadata = await produce(kafka, topic, args.records, { compression: CompressionTypes.GZIP })
    const expected = []
    for (let i = 0; i < args.records; i++) expected.push(record(i))
    const { items, positions } = await consumeAll(kafka, topic, args.records)
    if (items.length !== args.records) fail(`consumed ${items.length} of ${args.records}`)
    const got = digest(items)
    if (got !== digest(expected)) fail('checksum of consumed records differs from produced')
    checkDense(positions, 'roundtrip')
    const partitions = await checkOffsets(admin, topic, metadata, positions, 'roundtrip')
    if (partitions !== 3) fail(`roundtrip: topic has ${partitions} partitions, expected 3`)
    return { records: items.length, sha256: got, partitions: Object.keys(positions).length }
  })
}

async function phaseIdempotent(args) {
  const kafka = makeKafka(args)
  const topic = `idempotent-${args.tag}`
  return withAdmin(kafka, async admin => {
    await createTopic(admin, topic, 3)
    const metadata = await produce(kafka, topic, args.records, {
      producerConfig: { idempotent: true, maxInFlightRequests: 1 },
    })
    const { items, positions, keysByPartition } = await consumeAll(kafka, topic, args.records)
    const keys = items.map(r => r.key)
    const distinct = new Set(keys)
    if (keys.length !== args.records || distinct.size !== args.records) {
      fail(`idempotent: ${keys.length} records, ${distinct.size} distinct, expected ${args.records}`)
    }
    for (let i = 0; i < args.records; i++) {
      if (!distinct.has(`key-${i}`)) fail(`idempotent: key-${i} missing`)
    }
    if (digest(items) !== digest(Array.from({ length: args.records }, (_, i) => record(i)))) {
      fail('idempotent: checksum of consumed records differs from produced')
    }
    checkDense(positions, 'idempotent')
    // Sends were sequential, so within a partition record indices must increase with offset.
    for (const [partition, list] of Object.entries(keysByPartition)) {
      const idx = list.map(k => Number(k.slice(4)))
      for (let k = 1; k < idx.length; k++) {
        if (!(idx[k] > idx[k - 1])) fail(`idempotent: partition ${partition}: key-${idx[k]} after key-${idx[k - 1]}`)
      }
    }
    await checkOffsets(admin, topic, metadata, positions, 'idempotent')
    return { records: items.length, distinct: distinct.size }
  })
}

// Assert that `promise` rejects with a Kafka error of type `expectedType` for `topic`.
// kafkajs reports CreateTopics failures as a KafkaJSAggregateError of per-topic
// KafkaJSCreateTopicErrors; other admin calls throw a KafkaJSProtocolError.
async function expectError(promise, expectedType, what, topic) {
  let result
  try {
    result = await promise
  } catch (e) {
    let err = e && e.name === 'KafkaJSNonRetriableError' && e.cause ? e.cause : e
    if (err && err.name === 'KafkaJSAggregateError') {
      const mine = err.errors.filter(x => topic === undefined || x.topic === topic)
      if (mine.length !== 1) fail(`${what}: expected one error for ${topic}, got ${describeError(e)}`)
      err = mine[0]
    }
    if (!err || err.type !== expectedType) fail(`${what}: expected ${expectedType}, got ${describeError(e)}`)
    return err
  }
  fail(`${what}: expected ${expectedType}, got success (${JSON.stringify(result)})`)
}

function configMap(resource) {
  const out = {}
  for (const entry of resource.configEntries) out[entry.configName] = entry.configValue
  return out
}

async function describeTopicConfig(admin, topic, configNames) {
  const res = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames }],
    includeSynonyms: false,
  })
  if (res.resources.length !== 1) fail(`describeConfigs: ${res.resources.length} resources, expected 1`)
  const r = res.resources[0]
  if (r.errorCode !== 0 || r.resourceName !== topic) fail(`describeConfigs: errorCode ${r.errorCode} name ${r.resourceName}`)
  return r
}

async function phaseAdmin(args) {
  const kafka = makeKafka(args)
  const topic = `admin-${args.tag}`
  const checked = []
  return withAdmin(kafka, async admin => {
    await createTopic(admin, topic, 2, [{ name: 'retention.ms', value: '3600000' }])
    if (!(await admin.listTopics()).includes(topic)) fail('created topic not listed')
    checked.push('create')

    // Duplicate: kafkajs turns an all-TOPIC_ALREADY_EXISTS response into `false`; any other
    // error code would throw, and success would be `true`.
    const dup = await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] })
    if (dup !== false) fail(`duplicate topic: createTopics returned ${dup}, expected false (TOPIC_ALREADY_EXISTS)`)
    const dupValidate = await admin.createTopics({
      topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], validateOnly: true, waitForLeaders: false,
    })
    if (dupValidate !== false) fail(`duplicate topic (validateOnly): createTopics returned ${dupValidate}, expected false`)
    // Per-topic error codes in one request: the duplicate and a bad name each get their own code.
    try {
      const r = await admin.createTopics({
        topics: [{ topic, numPartitions: 1, replicationFactor: 1 }, { topic: 'bad/name', numPartitions: 1, replicationFactor: 1 }],
        waitForLeaders: false,
      })
      fail(`duplicate + bad name: expected per-topic errors, got ${r}`)
    } catch (e) {
      if (e.name !== 'KafkaJSAggregateError') fail(`duplicate + bad name: expected KafkaJSAggregateError, got ${describeError(e)}`)
      const byTopic = Object.fromEntries(e.errors.map(x => [x.topic, x.type]))
      if (byTopic[topic] !== 'TOPIC_ALREADY_EXISTS' || byTopic['bad/name'] !== 'INVALID_TOPIC_EXCEPTION' || e.errors.length !== 2) {
        fail(`duplicate + bad name: per-topic errors ${JSON.stringify(byTopic)}`)
      }
    }
    checked.push('duplicate')

    await expectError(
      admin.createTopics({ topics: [{ topic: 'bad/name', numPartitions: 1, replicationFactor: 1 }], waitForLeaders: false }),
      'INVALID_TOPIC_EXCEPTION', 'bad topic name', 'bad/name')
    checked.push('bad name')
    const rfTopic = `rf-${args.tag}`
    await expectError(
      admin.createTopics({ topics: [{ topic: rfTopic, numPartitions: 1, replicationFactor: 3 }], waitForLeaders: false }),
      'INVALID_REPLICATION_FACTOR', 'replication factor 3', rfTopic)
    checked.push('rf')
    const cfgTopic = `cfg-${args.tag}`
    await expectError(
      admin.createTopics({
        topics: [{ topic: cfgTopic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: 'soon' }] }],
        waitForLeaders: false,
      }),
      'INVALID_CONFIG', 'bad config', cfgTopic)
    checked.push('bad config')

    // validateOnly on a fresh, valid topic succeeds and creates nothing.
    const voTopic = `validate-only-${args.tag}`
    const vo = await admin.createTopics({
      topics: [{ topic: voTopic, numPartitions: 1, replicationFactor: 1 }], validateOnly: true, waitForLeaders: false,
    })
    if (vo !== true) fail(`validateOnly create: returned ${vo}, expected true`)
    const listed = await admin.listTopics()
    for (const t of [voTopic, rfTopic, cfgTopic, 'bad/name']) {
      if (listed.includes(t)) fail(`topic ${t} exists although its creation was rejected or validate-only`)
    }
    checked.push('validateOnly')

    let r = await describeTopicConfig(admin, topic)
    let configs = configMap(r)
    if (configs['retention.ms'] !== '3600000' || configs['cleanup.policy'] !== 'delete') {
      fail(`describeConfigs: retention.ms=${configs['retention.ms']} cleanup.policy=${configs['cleanup.policy']}`)
    }
    r = await describeTopicConfig(admin, topic, ['retention.ms'])
    if (r.configEntries.length !== 1 || r.configEntries[0].configName !== 'retention.ms' || r.configEntries[0].configValue !== '3600000') {
      fail(`describeConfigs(configNames=[retention.ms]) returned ${JSON.stringify(r.configEntries.map(e => [e.configName, e.configValue]))}`)
    }
    checked.push('describeConfigs')

    const altered = await admin.alterConfigs({
      resources: [{
        type: ConfigResourceTypes.TOPIC,
        name: topic,
        configEntries: [{ name: 'retention.ms', value: '7200000' }, { name: 'segment.bytes', value: '1048576' }],
      }],
    })
    if (altered.resources.length !== 1 || altered.resources[0].errorCode !== 0 || altered.resources[0].resourceName !== topic) {
      fail(`alterConfigs: ${JSON.stringify(altered.resources)}`)
    }
    configs = configMap(await describeTopicConfig(admin, topic))
    if (configs['retention.ms'] !== '7200000' || configs['segment.bytes'] !== '1048576') {
      fail(`alterConfigs did not take effect: retention.ms=${configs['retention.ms']} segment.bytes=${configs['segment.bytes']}`)
    }
    await expectError(
      admin.alterConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: 'soon' }] }],
      }),
      'INVALID_CONFIG', 'alterConfigs with a bad value')
    configs = configMap(await describeTopicConfig(admin, topic))
    if (configs['retention.ms'] !== '7200000') fail(`rejected alterConfigs changed retention.ms to ${configs['retention.ms']}`)
    checked.push('alterConfigs')

    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    const parts = md.topics.find(t => t.name === topic).partitions
    if (parts.length !== 4) fail(`createPartitions did not take effect: ${parts.length} partitions`)
    await expectError(admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] }), 'INVALID_PARTITIONS', 'shrinking partitions')
    checked.push('createPartitions')

    // 25 records into each of the 4 partitions.
    await produce(kafka, topic, 100, { partitionOf: i => i % 4 })
    let offsets = await admin.fetchTopicOffsets(topic)
    if (offsets.length !== 4) fail(`fetchTopicOffsets: ${offsets.length} partitions, expected 4`)
    for (const o of offsets) {
      if (o.low !== '0' || o.high !== '25' || o.offset !== '25') fail(`fetchTopicOffsets: ${JSON.stringify(o)}, expected low 0 high 25`)
    }
    checked.push('fetchTopicOffsets')

    // Delete below offset 10 in partition 0 and everything (offset -1 = high watermark) in partition 1.
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '10' }, { partition: 1, offset: '-1' }] })
    offsets = await admin.fetchTopicOffsets(topic)
    const want = { 0: ['10', '25'], 1: ['25', '25'], 2: ['0', '25'], 3: ['0', '25'] }
    for (const o of offsets) {
      if (o.low !== want[o.partition][0] || o.high !== want[o.partition][1]) {
        fail(`after deleteTopicRecords: partition ${o.partition} low ${o.low} high ${o.high}, expected ${want[o.partition]}`)
      }
    }
    // Deleting past the high watermark is OFFSET_OUT_OF_RANGE.
    try {
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 2, offset: '26' }] })
      fail('deleteTopicRecords beyond the high watermark succeeded')
    } catch (thrown) {
      // The admin retrier wraps the non-retriable KafkaJSDeleteTopicRecordsError; its cause is the original.
      const e = thrown.name === 'KafkaJSNonRetriableError' && thrown.cause ? thrown.cause : thrown
      const errs = (e.partitions || []).map(p => p.error && p.error.type)
      if (e.name !== 'KafkaJSDeleteTopicRecordsError' || errs.length !== 1 || errs[0] !== 'OFFSET_OUT_OF_RANGE') {
        fail(`deleteTopicRecords beyond the high watermark: expected OFFSET_OUT_OF_RANGE, got ${describeError(e)} ${JSON.stringify(errs)}`)
      }
    }
    // What remains is readable from the new log start: 15 + 0 + 25 + 25 records.
    const { items, positions } = await consumeAll(kafka, topic, 65, { timeoutMs: 60000 })
    if (items.length !== 65) fail(`after deleteTopicRecords: consumed ${items.length}, expected 65`)
    const p0 = positions[0] || []
    if (p0.length !== 15 || p0[0] !== 10 || p0[14] !== 24) fail(`after deleteTopicRecords: partition 0 offsets ${p0[0]}..${p0[p0.length - 1]} (${p0.length})`)
    if (positions[1]) fail(`after deleteTopicRecords: ${positions[1].length} records read from emptied partition 1`)
    checked.push('deleteTopicRecords')

    await admin.deleteTopics({ topics: [topic], timeout: 10000 })
    if ((await admin.listTopics()).includes(topic)) fail('deleted topic still listed')
    checked.push('deleteTopics')
    return { checked: checked.join(', ') }
  })
}

class Member {
  constructor(kafka, topic, group, name) {
    this.consumer = kafka.consumer({
      groupId: group,
      allowAutoTopicCreation: false,
      sessionTimeout: 6000,
      heartbeatInterval: 500,
      rebalanceTimeout: 30000,
      maxWaitTimeInMs: 500,
    })
    this.topic = topic
    this.name = name
    this.seen = []
    this.assignments = []
    this.crashes = []
    this.consumer.on(this.consumer.events.GROUP_JOIN, e => {
      const parts = (e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b)
      this.assignments.push(parts)
    })
    this.consumer.on(this.consumer.events.CRASH, e => {
      this.crashes.push({ error: describeError(e.payload.error), restart: e.payload.restart })
    })
  }

  latest() {
    return this.assignments.length ? this.assignments[this.assignments.length - 1] : null
  }

  async start() {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const keys = []
        let last = null
        for (const message of batch.messages) {
          if (!isRunning() || isStale()) break
          keys.push(message.key.toString())
          resolveOffset(message.offset)
          last = message.offset
        }
        if (last === null) return
        // Commit first; the records count as consumed only once their offsets are committed.
        await this.consumer.commitOffsets([
          { topic: batch.topic, partition: batch.partition, offset: (BigInt(last) + 1n).toString() },
        ])
        for (const k of keys) this.seen.push(k)
        await heartbeat()
      },
    })
  }

  async stop() {
    await this.consumer.disconnect()
  }
}

function fatalCrash(members) {
  for (const m of members) {
    const fatal = m.crashes.find(c => !c.restart)
    if (fatal) fail(`member ${m.name} crashed without restart: ${fatal.error}`)
  }
}

function assignmentDetail(members) {
  return () => JSON.stringify(members.map(m => ({ name: m.name, assignments: m.assignments, crashes: m.crashes })))
}

async function phaseGroup(args) {
  const kafka = makeKafka(args)
  const topic = `group-${args.tag}`
  const group = `group-${args.tag}`
  await withAdmin(kafka, admin => createTopic(admin, topic, 6))
  const members = [0, 1, 2].map(i => new Member(kafka, topic, group, `m${i}`))
  await members[0].start()
  await waitFor(() => { fatalCrash(members); const a = members[0].latest(); return a && a.length === 6 }, 60000,
    'first member to own all 6 partitions', assignmentDetail(members))
  const half = Math.floor(args.records / 2)
  await produce(kafka, topic, half)
  await members[1].start()
  await members[2].start()
  const covers = (ms, each) => {
    const latest = ms.map(m => m.latest())
    if (latest.some(a => !a || a.length !== each)) return false
    return new Set(latest.flat()).size === 6
  }
  await waitFor(() => { fatalCrash(members); return covers(members, 2) }, 60000,
    '3 members with 2 distinct partitions each', assignmentDetail(members))
  await produce(kafka, topic, args.records - half, { start: half })
  await members[2].stop()
  await waitFor(() => { fatalCrash(members); return covers(members.slice(0, 2), 3) }, 60000,
    '2 members with 3 distinct partitions each after a leave', assignmentDetail(members))
  const expected = new Set()
  for (let i = 0; i < args.records; i++) expected.add(`key-${i}`)
  const union = () => {
    const s = new Set()
    for (const m of members) for (const k of m.seen) s.add(k)
    return s
  }
  await waitFor(() => {
    fatalCrash(members)
    const s = union()
    if (s.size < expected.size) return false
    for (const k of expected) if (!s.has(k)) return false
    return true
  }, 120000, 'every record consumed by the group', () => `${union().size} of ${expected.size} distinct keys`)
  const extra = [...union()].filter(k => !expected.has(k))
  if (extra.length) fail(`group consumed ${extra.length} unexpected records, e.g. ${extra[0]}`)
  for (const m of members.slice(0, 2)) await m.stop()
  const total = members.reduce((n, m) => n + m.seen.length, 0)
  return {
    records: expected.size,
    deliveries: total,
    rebalances: members.map(m => m.assignments.length),
  }
}

async function phaseGroupResume(args) {
  const kafka = makeKafka(args)
  const topic = `group-${args.tag}`
  const group = `group-${args.tag}`
  await produce(kafka, topic, 100, { start: args.records })
  const member = new Member(kafka, topic, group, 'resumer')
  await member.start()
  await waitFor(() => { fatalCrash([member]); return member.seen.length >= 100 }, 60000,
    'the 100 records produced after the restart', () => `seen ${member.seen.length}; ${assignmentDetail([member])()}`)
  await sleep(2000)
  await member.stop()
  const fresh = new Set()
  for (let i = args.records; i < args.records + 100; i++) fresh.add(`key-${i}`)
  const seen = new Set(member.seen)
  const old = [...seen].filter(k => !fresh.has(k))
  const missing = [...fresh].filter(k => !seen.has(k))
  if (old.length || missing.length) {
    fail(`resume: ${old.length} already-committed records consumed again (e.g. ${old[0]}), ${missing.length} missing`)
  }
  if (member.seen.length !== 100) fail(`resume: ${member.seen.length} deliveries of 100 records`)
  const latest = member.latest()
  if (!latest || latest.length !== 6) fail(`resume: lone member assigned ${JSON.stringify(latest)}, expected all 6 partitions`)
  return { resumed: member.seen.length }
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  const phases = {
    roundtrip: phaseRoundtrip,
    idempotent: phaseIdempotent,
    admin: phaseAdmin,
    group: phaseGroup,
    'group-resume': phaseGroupResume,
  }
  const started = Date.now()
  const result = await phases[args.phase](args)
  process.stdout.write(JSON.stringify({ ok: true, phase: args.phase, ...result, seconds: (Date.now() - started) / 1000 }) + '\n')
  process.exit(0)
}

process.on('unhandledRejection', e => fail(`unhandled rejection: ${describeError(e)}`))
main().catch(e => fail(describeError(e)))
