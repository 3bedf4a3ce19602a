/**
 * The portal's routes: path patterns with `:params`, matched without a router library. Paths
 * mirror the API's (`/workspaces/{ws}/clusters/{cluster}/…`).
 */

/** The params of `path` if it matches `pattern` (`/workspaces/:ws`), else null. */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const got = path.split("/").filter(Boolean);
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) {
      try {
        params[want[i].slice(1)] = decodeURIComponent(got[i]);
      } catch {
        return null;
      }
    } else if (want[i] !== got[i]) {
      return null;
    }
  }
  return params;
}

/** Builds a path from segments, each encoded. */
export function pathOf(...segments: (string | number)[]): string {
  return "/" + segments.map((s) => encodeURIComponent(String(s))).join("/");
}
