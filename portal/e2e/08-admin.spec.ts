// The built-in platform admin has no password: it signs in with its API token, and sees the
// platform admin's pages (nodes, audit log) that no workspace role opens.
import { axe, expect, shot, test } from "./fixtures";

const ADMIN_TOKEN = process.env.HDI_PORTAL_ADMIN_TOKEN ?? "";

test("the platform admin signs in with its API token and sees nodes and the audit log", async ({ page, guard }) => {
  guard.expectHttp(401, /\/v1\/(auth\/session|me)$/);
  await page.goto("/");
  await page.getByRole("button", { name: "Use an API token instead" }).click();
  await page.getByLabel("API token").fill("hdi_not-a-token");
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(page.getByRole("alert")).toContainText("invalid_credentials");
  await page.getByLabel("API token").fill(ADMIN_TOKEN);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await expect(page.getByTestId("whoami")).toContainText("admin");

  await page.getByRole("link", { name: "Nodes" }).click();
  await expect(page.getByRole("heading", { name: "Nodes" })).toBeVisible();
  await expect(page.locator("tbody tr")).toHaveCount(3);
  await expect(page.locator("tbody")).toContainText("Ready");
  await axe(page, "nodes");
  await shot(page, "16-nodes");

  await page.getByRole("link", { name: "Audit log" }).click();
  await expect(page.getByRole("heading", { name: "Audit log" })).toBeVisible();
  // This very sign-in, and the refused one before it, are in the log.
  await expect(page.locator("tbody")).toContainText("auth.session");
  await expect(page.locator("tbody")).toContainText("invalid_credentials");
  await axe(page, "audit");
  await shot(page, "17-audit");
});
