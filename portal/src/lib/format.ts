/** Small formatting helpers for tables. */

/** "3 s ago", "5 min ago", or the date. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.round((now - t) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toISOString().slice(0, 10);
}

/** Bytes as KiB/MiB/GiB. */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 10 || u === 0 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}

/** A rate with one decimal. */
export function rate(n: number | undefined): string {
  return n === undefined ? "—" : n >= 100 ? Math.round(n).toLocaleString("en") : n.toFixed(1);
}

/** Whether a cluster state will still change by itself (so its page keeps polling). */
export function transient(state: string | undefined): boolean {
  return state === "Creating" || state === "Resizing" || state === "Deleting";
}
