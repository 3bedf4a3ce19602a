/**
 * Names for the generated schemas the pages use, and the documents of endpoints still missing
 * from `openapi/hdi.json` (written from the agreed contract; each moves to the generated types
 * once its endpoint is in the document).
 */
import type { components } from "./hdi";

type S = components["schemas"];
export type Cluster = S["Cluster"];
export type ClusterSpec = S["ClusterSpec"];
export type ClusterState = S["ClusterState"];
export type Capabilities = S["Capabilities"];
export type Operation = S["Operation"];
export type Topic = S["Topic"];
export type Job = S["Job"];
export type JobState = S["JobState"];
export type Node = S["Node"];
export type RoleBinding = S["RoleBinding"];
export type Role = S["Role"];
export type User = S["User"];
export type ApiToken = S["ApiToken"];
export type AuditEvent = S["AuditEvent"];
export type Workspace = S["Workspace"];

/** `GET /v1/me`. */
export interface Me {
  username: string;
  platform_admin: boolean;
  workspaces: { workspace: string; role: Role }[];
}

/** A partition with its offsets (topic detail). */
export interface PartitionWithOffsets {
  partition: number;
  leader?: number | null;
  replicas: number[];
  isr: number[];
  offline?: number[];
  start_offset?: number | null;
  end_offset?: number | null;
}

/** `POST …/topics/{topic}/records` answer. */
export interface Produced {
  partition: number;
  offset: number;
}
