// What every portal spec shares: a page that fails the test on page errors and console errors
// (failed requests only when the test did not expect that status from that path), sign-in,
// screenshots under target/portal-shots/, and axe-core checks (no serious violations).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { test as base, expect, type Page } from "@playwright/test";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export const SHOTS = process.env.HDI_PORTAL_SHOTS ?? "../../target/portal-shots";

/** Credentials exported by e2e/tests/portal.rs. */
export const users = {
  admin: { username: process.env.HDI_PORTAL_ADMIN ?? "alice", password: process.env.HDI_PORTAL_PASSWORD ?? "" },
  viewer: { username: process.env.HDI_PORTAL_VIEWER ?? "victor", password: process.env.HDI_PORTAL_PASSWORD ?? "" },
};
export const WS = process.env.HDI_PORTAL_WORKSPACE ?? "test";
/** The replication pair e2e/tests/portal.rs made: two secured one-broker Kafka clusters. */
export const LINK_SOURCE = process.env.HDI_PORTAL_LINK_SOURCE ?? "east";
export const LINK_TARGET = process.env.HDI_PORTAL_LINK_TARGET ?? "west";

interface Guard {
  /** Allows failed requests answering `status` for paths matching `path` (the browser logs them). */
  expectHttp(status: number, path: RegExp): void;
  /** Allows requests that got no answer at all (the browser logs `net::ERR_…`). */
  expectNetworkErrors(): void;
}

export const test = base.extend<{ guard: Guard }>({
  guard: async ({ page }, use) => {
    const errors: string[] = [];
    // Before signing in, `GET /v1/me` answers 401: that is how the app learns it must ask.
    const allowed: [number, RegExp][] = [[401, /\/v1\/me$/]];
    let networkErrors = false;
    page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      const text = message.text();
      if (networkErrors && /Failed to load resource: net::ERR_/.test(text)) return;
      const failed = /Failed to load resource: the server responded with a status of (\d+)/.exec(text);
      if (failed) {
        const status = Number(failed[1]);
        const url = new URL(message.location().url || "http://x/");
        if (allowed.some(([s, p]) => s === status && p.test(url.pathname))) return;
      }
      errors.push(`console error: ${text} (${message.location().url})`);
    });
    await use({
      expectHttp: (status, path) => allowed.push([status, path]),
      expectNetworkErrors: () => {
        networkErrors = true;
      },
    });
    expect(errors, "page and console errors").toEqual([]);
  },
});
export { expect };

/** Signs in through the form and waits for the shell. */
export async function signIn(page: Page, who: { username: string; password: string }) {
  await page.goto("/");
  await page.getByLabel("Username").fill(who.username);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByTestId("whoami")).toContainText(who.username);
}

/** `hdictl --config <the test's config> ARGS`: its stdout. */
export function hdictl(args: string[], input?: string, env?: Record<string, string>): string {
  const bin = process.env.HDI_HDICTL;
  const config = process.env.HDI_HDICTL_CONFIG;
  if (!bin || !config) throw new Error("HDI_HDICTL and HDI_HDICTL_CONFIG are exported by e2e/tests/portal.rs");
  return execFileSync(bin, ["--config", config, ...args], {
    encoding: "utf8",
    timeout: 120_000,
    input,
    env: env ? { ...process.env, ...env } : process.env,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** A full-page screenshot at `target/portal-shots/<name>.png`. */
export async function shot(page: Page, name: string) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** Runs axe-core on the page; fails on serious or critical violations. */
export async function axe(page: Page, where: string) {
  // Evaluated through the DevTools protocol: the page's CSP (script-src 'self') still holds for
  // the app itself.
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    // @ts-expect-error axe is the global the source above defines
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return (result.violations as { id: string; impact: string; help: string; nodes: { target: string[] }[] }[])
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
  });
  expect(violations, `axe: serious violations on ${where}`).toEqual([]);
}
