import { describe, expect, it } from "vitest";
import { aclText, parseAcl, parseAcls } from "./acl";

describe("Kafka ACL lines", () => {
  it("parses hdictl's --allow form, prefixes and deny", () => {
    expect(parseAcl("topic:payments:read,describe")).toEqual({
      resource_type: "topic",
      resource_name: "payments",
      pattern: "literal",
      operations: ["read", "describe"],
      permission: "allow",
    });
    expect(parseAcl("deny group:app-*:read")).toMatchObject({ resource_name: "app-", pattern: "prefixed", permission: "deny" });
    expect(parseAcl("topic:*:describe-configs")).toMatchObject({ resource_name: "*", pattern: "literal", operations: ["describe_configs"] });
    expect(parseAcl("transactional-id:tx:write").resource_type).toBe("transactional_id");
  });

  it("refuses what hdictl refuses, saying which line", () => {
    expect(() => parseAcl("topic:payments")).toThrow(/TYPE:NAME:OPS/);
    expect(() => parseAcl("queue:x:read")).toThrow(/unknown resource type/);
    expect(() => parseAcl("topic:x:fly")).toThrow(/unknown operation "fly"/);
    expect(() => parseAcls("topic:a:read\n\ntopic:b:nope")).toThrow(/^line 3: /);
    expect(parseAcls("\n  \n")).toEqual([]);
  });

  it("prints what it parses", () => {
    for (const line of ["allow topic:pay-*:read,describe", "deny cluster:kafka-cluster:alter_configs", "allow transactional-id:t:write"]) {
      expect(aclText(parseAcl(line))).toBe(line);
    }
  });
});
