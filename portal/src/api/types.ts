/** Names for the generated schemas (`hdi.d.ts`, from `openapi/hdi.json`) the pages use. */
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

export type Me = S["Me"];
export type PartitionWithOffsets = S["PartitionState"];
export type Produced = S["RecordProduced"];
export type JobProgress = S["JobProgress"];
export type ConsumerGroupState = S["ConsumerGroupState"];
export type ConsumerGroupSummary = S["ConsumerGroupSummary"];
export type ConsumerGroupList = S["ConsumerGroupList"];
export type ConsumerGroup = S["ConsumerGroup"];
export type ConsumerGroupResetOffsets = S["ConsumerGroupResetOffsets"];
export type ConsumerGroupOffsetsReset = S["ConsumerGroupOffsetsReset"];
export type ClusterMetrics = S["ClusterMetrics"];
