// Roles: a viewer sees no control it cannot use, a deep link to a form says "not permitted", a
// mutation forced from the page is refused by the server (403 forbidden), and a server 403 on a
// page is shown with its title, detail and code (the page's read of the cluster is turned into
// a PATCH on its way out, so the real server answers 403 to the page itself).
import { WS, axe, expect, shot, signIn, test, users } from "./fixtures";

test("a viewer sees no create controls and 403s are shown", async ({ page, guard }) => {
  guard.expectHttp(403, /\/clusters\/web$/);
  guard.expectHttp(403, /\/clusters\/forced$/);
  await signIn(page, users.viewer);
  await page.goto(`/workspaces/${WS}`);
  await expect(page.getByRole("heading", { name: `Clusters in ${WS}` })).toBeVisible();
  await expect(page.locator("tr[data-cluster]").first()).toBeVisible();
  await expect(page.getByRole("link", { name: "Create cluster" })).toHaveCount(0);
  await expect(page.getByRole("link", { name: "Access" })).toHaveCount(0);
  await axe(page, "clusters as viewer");
  await shot(page, "12-viewer-clusters");

  await page.goto(`/workspaces/${WS}/clusters/web`);
  await expect(page.locator(".title-row .badge")).toBeVisible();
  await expect(page.getByRole("button", { name: "Resize" })).toHaveCount(0);
  await expect(page.getByRole("button", { name: "Delete cluster" })).toHaveCount(0);
  await page.goto(`/workspaces/${WS}/clusters/web/topics`);
  await expect(page.getByRole("heading", { name: "Create a topic" })).toHaveCount(0);
  await page.goto(`/workspaces/${WS}/clusters/etl/jobs`);
  await expect(page.getByRole("heading", { name: "Submit a job" })).toHaveCount(0);

  await page.goto(`/workspaces/${WS}/new-cluster`);
  await expect(page.getByRole("alert")).toContainText("Not permitted");

  // The server enforces what the UI hides.
  const forced = await page.evaluate(async (ws) => {
    const response = await fetch(`/v1/workspaces/${ws}/clusters/forced`, {
      method: "PUT",
      headers: { "content-type": "application/json", "X-HDI-Requested-By": "portal" },
      body: JSON.stringify({ kind: "kafka", node_pools: [{ name: "brokers", role: "broker", replicas: 1 }] }),
    });
    return { status: response.status, body: await response.json() };
  }, WS);
  expect(forced.status).toBe(403);
  expect(forced.body.code).toBe("forbidden");

  // A page whose request the server refuses shows the problem.
  await page.route(/\/v1\/workspaces\/[^/]+\/clusters\/web$/, (route) =>
    route.continue({
      method: "PATCH",
      postData: JSON.stringify({ deletion_protection: true }),
      headers: { ...route.request().headers(), "content-type": "application/json", "x-hdi-requested-by": "portal" },
    }),
  );
  await page.goto(`/workspaces/${WS}/clusters/web`);
  const problem = page.getByRole("alert");
  await expect(problem).toContainText("Not permitted");
  await expect(problem).toContainText("forbidden");
  await expect(problem).toContainText("HTTP 403");
  await expect(problem.locator(".problem-detail")).toContainText("operator");
  await shot(page, "13-viewer-forbidden");
});
