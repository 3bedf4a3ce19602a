/**
 * The portal's API client: openapi-fetch typed by `hdi.d.ts` (generated from
 * `openapi/hdi.json`), on the page's own origin with the session cookie. Unsafe requests carry
 * `X-HDI-Requested-By: portal` (the server's CSRF check); a 401 outside the login form sends the
 * user to the login page. Failed answers become `ProblemError`s with the problem document.
 * Whether the control plane answers at all is tracked here too (`useReachable`): a request that
 * gets no answer marks it unreachable, the next answer of any status marks it reachable again.
 */
import { useSyncExternalStore } from "react";
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./hdi";
import { ProblemError, parseProblem, unreachableProblem } from "../lib/problem";

/** The header the control plane requires on cookie-authenticated unsafe requests. */
export const REQUESTED_BY = ["X-HDI-Requested-By", "portal"] as const;

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/** Listeners told when an answer says the session is gone. */
const unauthorizedListeners = new Set<() => void>();

/** Calls `listener` whenever a request (other than logging in) answers 401. */
export function onUnauthorized(listener: () => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

function isLogin(url: string): boolean {
  return new URL(url, "http://x").pathname === "/v1/auth/session";
}

let reachable = true;
const reachabilityListeners = new Set<() => void>();

/** Records whether the last request got an answer; tells the listeners on a change. */
export function setReachable(now: boolean): void {
  if (now === reachable) return;
  reachable = now;
  for (const listener of reachabilityListeners) listener();
}

/** Whether the control plane answered the last request (false after a network error). */
export function useReachable(): boolean {
  return useSyncExternalStore(
    (listener) => {
      reachabilityListeners.add(listener);
      return () => reachabilityListeners.delete(listener);
    },
    () => reachable,
  );
}

/** Adds the CSRF header to unsafe requests. */
export function withRequestedBy(method: string, headers: Headers): Headers {
  if (!SAFE.has(method.toUpperCase())) headers.set(REQUESTED_BY[0], REQUESTED_BY[1]);
  return headers;
}

const middleware: Middleware = {
  onRequest({ request }) {
    withRequestedBy(request.method, request.headers);
    return request;
  },
  onResponse({ request, response }) {
    setReachable(true);
    if (response.status === 401 && !isLogin(request.url)) {
      for (const listener of unauthorizedListeners) listener();
    }
    return response;
  },
};

export const client = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
client.use(middleware);

/** What openapi-fetch resolves to. */
interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/**
 * The data of a typed call, or a thrown `ProblemError` (the answer's problem document, or
 * "control plane unreachable" when there was no answer).
 */
export async function call<T>(request: Promise<FetchResult<T>>): Promise<T> {
  let result: FetchResult<T>;
  try {
    result = await request;
  } catch (error) {
    // An aborted request (a query cancelled by navigation) says nothing about the network.
    if (!(error instanceof DOMException && error.name === "AbortError")) setReachable(false);
    throw new ProblemError(unreachableProblem(error));
  }
  if (result.error !== undefined || !result.response.ok) {
    throw new ProblemError(parseProblem(result.response.status, result.error, result.response.statusText));
  }
  return result.data as T;
}

