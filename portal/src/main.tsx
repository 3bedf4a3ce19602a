/** Entry point: TanStack Query (no retries of problems; refetch on focus) around the app. */
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { App } from "./App";
import { ProblemError } from "./lib/problem";
import "./styles.css";

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A problem from the server is an answer, not a glitch: show it at once.
      retry: (count, error) => !(error instanceof ProblemError && error.problem.status > 0) && count < 2,
      refetchOnWindowFocus: true,
    },
    mutations: { retry: false },
  },
});

const root = document.getElementById("root");
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </StrictMode>,
  );
}
