/**
 * Sign-in to `POST /v1/auth/session` with a username and password, or with an API token (the
 * built-in platform admin's, which `cargo xtask up` prints); the problem is shown on failure.
 */
import { useState, type FormEvent } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { ME_KEY, login, loginWithToken } from "../auth";
import { ProblemView } from "../components/ProblemView";

export function Login({ notice }: { notice?: string }) {
  const queryClient = useQueryClient();
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [withToken, setWithToken] = useState(false);
  const [apiToken, setApiToken] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const me = withToken ? await loginWithToken(apiToken) : await login(username, password);
      queryClient.setQueryData(ME_KEY, me);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login" id="main">
      <h1>hdi</h1>
      <p className="lede">Kafka and Spark clusters as a service</p>
      {notice ? (
        <p className="notice" role="status">
          {notice}
        </p>
      ) : null}
      <form onSubmit={submit} aria-label="Sign in">
        {withToken ? (
          <div className="field">
            <label htmlFor="login-token">API token</label>
            <input
              id="login-token"
              name="api_token"
              type="password"
              autoComplete="off"
              value={apiToken}
              onChange={(e) => setApiToken(e.target.value)}
              required
            />
          </div>
        ) : (
          <>
            <div className="field">
              <label htmlFor="login-username">Username</label>
              <input
                id="login-username"
                name="username"
                autoComplete="username"
                value={username}
                onChange={(e) => setUsername(e.target.value)}
                required
              />
            </div>
            <div className="field">
              <label htmlFor="login-password">Password</label>
              <input
                id="login-password"
                name="password"
                type="password"
                autoComplete="current-password"
                value={password}
                onChange={(e) => setPassword(e.target.value)}
                required
              />
            </div>
          </>
        )}
        <ProblemView error={error} />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <button
          type="button"
          className="link"
          onClick={() => {
            setWithToken(!withToken);
            setError(null);
          }}
        >
          {withToken ? "Use a password instead" : "Use an API token instead"}
        </button>
      </form>
    </main>
  );
}
