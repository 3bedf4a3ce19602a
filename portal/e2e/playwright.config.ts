// Browser tests of the portal, run by `e2e/tests/portal.rs` against a real control plane, node
// agents, brokers and executors (it exports HDI_URL and the users' credentials). Debian's
// Chromium is driven through its executablePath: no browser is ever downloaded.
import { defineConfig } from "@playwright/test";

export default defineConfig({
  testDir: ".",
  testMatch: /.*\.spec\.ts/,
  // The specs build on each other's clusters, in file order.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 240_000,
  expect: { timeout: 20_000 },
  reporter: [["list"]],
  outputDir: process.env.HDI_PORTAL_RESULTS ?? "../../target/portal-results",
  use: {
    baseURL: process.env.HDI_URL,
    viewport: { width: 1360, height: 900 },
    trace: "off",
    screenshot: "off",
    launchOptions: {
      executablePath: process.env.HDI_TEST_CHROMIUM ?? "/usr/bin/chromium",
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
      ],
    },
  },
});
