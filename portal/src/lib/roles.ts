/**
 * Which controls a user sees: the role from `GET /v1/me` per workspace (viewer < operator <
 * admin; a platform admin may do everything). The server still decides: a 403 is shown anyway.
 */
import type { Me, Role } from "../api/types";

const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

/** The user's role in `workspace` (admin for a platform admin), or null without one. */
export function roleIn(me: Me | null | undefined, workspace: string): Role | null {
  if (!me) return null;
  if (me.platform_admin) return "admin";
  return me.workspaces.find((w) => w.workspace === workspace)?.role ?? null;
}

/** Whether the user holds at least `needed` in `workspace`. */
export function can(me: Me | null | undefined, workspace: string, needed: Role): boolean {
  const role = roleIn(me, workspace);
  return role !== null && RANK[role] >= RANK[needed];
}
