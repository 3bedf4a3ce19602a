/**
 * The signed-in user: `GET /v1/me` through TanStack Query, the login form's
 * `POST /v1/auth/session` (the server sets an HttpOnly cookie; no token ever reaches JavaScript)
 * and logout's `DELETE /v1/auth/session`.
 */
import { createContext, useContext } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { call, client } from "./api/client";
import type { Me } from "./api/types";
import { ProblemError } from "./lib/problem";

export const ME_KEY = ["me"] as const;

/** `GET /v1/me`; null when not signed in (401). */
export async function fetchMe(): Promise<Me | null> {
  try {
    return await call(client.GET("/v1/me"));
  } catch (error) {
    if (error instanceof ProblemError && error.problem.status === 401) return null;
    throw error;
  }
}

/** `GET /v1/me`, asked again every `refetchInterval` ms if given. */
export function useMeQuery(refetchInterval?: number) {
  return useQuery({ queryKey: ME_KEY, queryFn: fetchMe, staleTime: 60_000, retry: false, refetchInterval });
}

export async function login(username: string, password: string): Promise<Me> {
  return call(client.POST("/v1/auth/session", { body: { username, password } }));
}

/** Signs in with an API token (the built-in platform admin has no password). */
export async function loginWithToken(apiToken: string): Promise<Me> {
  return call(client.POST("/v1/auth/session", { body: { api_token: apiToken } }));
}

export function useLogout() {
  const queryClient = useQueryClient();
  return async () => {
    try {
      await call(client.DELETE("/v1/auth/session"));
    } finally {
      queryClient.clear();
      queryClient.setQueryData(ME_KEY, null);
    }
  };
}

export const MeContext = createContext<Me | null>(null);

/** The signed-in user (inside the signed-in shell). */
export function useMe(): Me {
  const me = useContext(MeContext);
  if (!me) throw new Error("useMe outside the signed-in shell");
  return me;
}
