/**
 * Kafka user ACLs as one line of text each, the form `hdictl kafka-user create --allow` takes:
 * `[allow|deny] TYPE:NAME:OP[,OP...]` (TYPE topic, group, cluster or transactional-id; a NAME
 * ending in `*`, other than `*` itself, is a prefix), and back.
 */
import type { KafkaAcl, KafkaOperation, KafkaResourceType } from "../api/types";

const TYPES: Record<string, KafkaResourceType> = {
  topic: "topic",
  group: "group",
  cluster: "cluster",
  "transactional-id": "transactional_id",
  transactional_id: "transactional_id",
};

const OPERATIONS: readonly KafkaOperation[] = [
  "all",
  "read",
  "write",
  "create",
  "delete",
  "alter",
  "describe",
  "describe_configs",
  "alter_configs",
  "idempotent_write",
];

/** The ACL a line says, or the reason it says none (0-based `line` in the message as 1-based). */
export function parseAcl(text: string): KafkaAcl {
  let rest = text.trim();
  let permission: KafkaAcl["permission"] = "allow";
  const word = /^(allow|deny)\s+/i.exec(rest);
  if (word) {
    permission = word[1].toLowerCase() as "allow" | "deny";
    rest = rest.slice(word[0].length);
  }
  const first = rest.indexOf(":");
  const last = rest.lastIndexOf(":");
  if (first < 0 || last === first) throw new Error(`"${text.trim()}" must be TYPE:NAME:OPS, e.g. topic:payments:read,describe`);
  const kind = rest.slice(0, first).trim().toLowerCase();
  const name = rest.slice(first + 1, last).trim();
  const ops = rest.slice(last + 1);
  const resource_type = TYPES[kind];
  if (!resource_type) throw new Error(`unknown resource type "${kind}" (topic, group, cluster, transactional-id)`);
  const prefixed = name.endsWith("*") && name !== "*";
  const operations = ops.split(",").map((op) => {
    const o = op.trim().toLowerCase().replace(/-/g, "_");
    if (!OPERATIONS.includes(o as KafkaOperation)) throw new Error(`unknown operation "${op.trim()}"`);
    return o as KafkaOperation;
  });
  return {
    resource_type,
    resource_name: prefixed ? name.slice(0, -1) : name,
    pattern: prefixed ? "prefixed" : "literal",
    operations,
    permission,
  };
}

/** Every non-empty line of `text` as an ACL; the first bad line's reason, with its number. */
export function parseAcls(text: string): KafkaAcl[] {
  const acls: KafkaAcl[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    try {
      acls.push(parseAcl(line));
    } catch (error) {
      throw new Error(`line ${i + 1}: ${error instanceof Error ? error.message : String(error)}`);
    }
  });
  return acls;
}

/** An ACL as `allow topic:pay-*:read,describe` (as hdictl prints it). */
export function aclText(acl: KafkaAcl): string {
  const type = acl.resource_type === "transactional_id" ? "transactional-id" : acl.resource_type;
  const star = acl.pattern === "prefixed" ? "*" : "";
  return `${acl.permission ?? "allow"} ${type}:${acl.resource_name}${star}:${acl.operations.join(",")}`;
}
