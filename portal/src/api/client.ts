/**
 * The portal's API client: openapi-fetch typed by `hdi.d.ts` (generated from
 * `openapi/hdi.json`), on the page's own origin with the session cookie. Unsafe requests carry
 * `X-HDI-Requested-By: portal` (the server's CSRF check); a 401 outside the login form sends the
 * user to the login page. Failed answers become `ProblemError`s with the problem document.
 */
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
    throw new ProblemError(unreachableProblem(error));
  }
  if (result.error !== undefined || !result.response.ok) {
    throw new ProblemError(parseProblem(result.response.status, result.error, result.response.statusText));
  }
  return result.data as T;
}

