import { describe, expect, it } from "vitest";
import { can, roleIn } from "./roles";
import { matchPath, pathOf } from "./route";

const viewer = { username: "v", platform_admin: false, workspaces: [{ workspace: "ws", role: "viewer" as const }] };
const admin = { username: "root", platform_admin: true, workspaces: [] };

describe("roles", () => {
  it("orders viewer < operator < admin; platform admins may do all", () => {
    expect(roleIn(viewer, "ws")).toBe("viewer");
    expect(can(viewer, "ws", "viewer")).toBe(true);
    expect(can(viewer, "ws", "operator")).toBe(false);
    expect(can(viewer, "other", "viewer")).toBe(false);
    expect(can(admin, "any", "admin")).toBe(true);
    expect(can(null, "ws", "viewer")).toBe(false);
  });
});

describe("routes", () => {
  it("matches patterns and decodes params", () => {
    expect(matchPath("/workspaces/:ws/clusters/:c", "/workspaces/a%20b/clusters/k")).toEqual({ ws: "a b", c: "k" });
    expect(matchPath("/workspaces/:ws", "/workspaces/a/clusters")).toBeNull();
    expect(matchPath("/", "/")).toEqual({});
    expect(matchPath("/workspaces/:ws", "/workspaces/%E0%A4%A")).toBeNull();
    expect(pathOf("workspaces", "a/b", "clusters")).toBe("/workspaces/a%2Fb/clusters");
  });
});
