/** Consumer groups of a Kafka cluster (the page waits for the consumer-group endpoints). */
import { ClusterFrame } from "./ClusterDetail";

export function Groups({ ws, cluster }: { ws: string; cluster: string }) {
  return (
    <ClusterFrame ws={ws} name={cluster} tab="groups">
      {() => <p>Consumer groups are not served by this control plane yet.</p>}
    </ClusterFrame>
  );
}
