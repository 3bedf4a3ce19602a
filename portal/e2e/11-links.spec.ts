// Replication links: the pair e2e/tests/portal.rs made (two secured one-broker Kafka clusters,
// the source's `orders` holding 100 records). The create form shows the server's refusal of a
// link from a cluster to itself at the target field; the created link's page shows it mirroring
// with the per-partition lag reaching 0 and a lag chart that moves; pause (confirm step) holds
// the mirror back while new records show as lag; resume catches up; the failover's confirm
// step states the loss bound now; promote stops at zero loss; a viewer sees no controls; reverse
// swaps the pair; a delete while it feeds mirrors is refused; a forced failover reports its loss
// bound; then delete.
import { WS, LINK_SOURCE, LINK_TARGET, axe, expect, hdictl, shot, signIn, test, users } from "./fixtures";

const LINK = "dr";

test("a replication link: create, lag chart, pause, resume, promote, reverse, failover and delete", async ({ page, guard, browser }) => {
  guard.expectHttp(400, new RegExp(`/replication-links/${LINK}$`));
  guard.expectHttp(409, new RegExp(`/replication-links/${LINK}$`));
  // The link page polls its lag every 2 s: a poll that crosses the delete finds no link.
  guard.expectHttp(404, new RegExp(`/replication-links/${LINK}/lag$`));
  await signIn(page, users.admin);
  await page.getByRole("link", { name: WS, exact: true }).click();
  await page.getByRole("link", { name: "Replication links" }).click();
  await expect(page.getByRole("heading", { name: `Replication links in ${WS}` })).toBeVisible();
  await expect(page.getByText("No replication links in this workspace yet.")).toBeVisible();
  await axe(page, "replication links, none");

  // The form: a link from a cluster to itself is refused at the target field.
  await page.getByRole("link", { name: "Create link" }).click();
  await page.getByLabel("Name", { exact: true }).fill(LINK);
  await expect(page.getByLabel("Source cluster").locator("option", { hasText: LINK_TARGET })).toHaveCount(1);
  await page.getByLabel("Source cluster").selectOption(LINK_SOURCE);
  await page.getByLabel("Target cluster").selectOption(LINK_SOURCE);
  await page.getByLabel("Topics", { exact: true }).fill("orders");
  await page.getByRole("button", { name: "Create link" }).click();
  const targetField = page.locator(".field", { has: page.getByLabel("Target cluster") });
  await expect(targetField.locator(".field-error")).toContainText("another cluster");
  await expect(page.getByLabel("Target cluster")).toHaveAttribute("aria-invalid", "true");
  await axe(page, "create link, refused");
  await shot(page, "40-link-create-refused");

  await page.getByLabel("Target cluster").selectOption(LINK_TARGET);
  await page.getByRole("button", { name: "Create link" }).click();
  await expect(page.getByRole("heading", { name: `Link ${LINK}` })).toBeVisible();
  const badge = page.locator(".title-row .badge");
  await expect(badge).toHaveText("mirroring");
  const lag = page.getByTestId("lag-records");
  const partition = page.locator('tr[data-partition="orders/0"]');
  await expect(partition.locator("td").nth(3)).toHaveText("100", { timeout: 60_000 });
  await expect(partition.locator("td").nth(4)).toHaveText("100");
  await expect(lag).toHaveText("0");
  const chart = page.getByTestId("lag-records-chart");
  const points = async () => Number(await chart.getAttribute("data-points"));
  const seen = await points();
  await expect.poll(points, { timeout: 20_000 }).toBeGreaterThan(seen + 1);
  await axe(page, "link detail");
  await shot(page, "41-link-mirroring");

  // Pause: the confirm step says what it does; new records on the source become lag.
  await page.getByRole("button", { name: "Pause…" }).click();
  await expect(page.getByTestId("confirm-explanation")).toContainText("Nothing is lost");
  await axe(page, "link pause confirm");
  await shot(page, "42-link-pause-confirm");
  await page.getByRole("button", { name: "Confirm: pause" }).click();
  const op = page.getByTestId("link-operation");
  await expect(op.locator("details.operation")).toContainText("link pause");
  await expect(op.locator("summary .badge")).toHaveText("Succeeded");
  await expect(badge).toHaveText("paused");
  hdictl(["topic", "produce", LINK_SOURCE, "orders"], Array.from({ length: 10 }, (_, i) => `order-${100 + i}`).join("\n") + "\n");
  await expect(lag).toHaveText("10", { timeout: 30_000 });
  await expect(partition.locator(".badge")).toHaveText("paused");
  await expect(partition.locator("td").nth(3)).toHaveText("100");
  await shot(page, "43-link-paused-lag");

  // Resume: caught up.
  await page.getByRole("button", { name: "Resume…" }).click();
  await page.getByRole("button", { name: "Confirm: resume" }).click();
  await expect(badge).toHaveText("mirroring");
  await expect(partition.locator("td").nth(3)).toHaveText("110", { timeout: 60_000 });
  await expect(lag).toHaveText("0");

  // The failover's confirm step states what a failover now would lose; cancelled.
  await page.getByRole("button", { name: "Fail over…" }).click();
  const explanation = page.getByTestId("confirm-explanation");
  await expect(explanation).toContainText("is 0 records and");
  await expect(explanation).toContainText("loss bound");
  await shot(page, "44-link-failover-confirm");
  await page.getByRole("button", { name: "Cancel" }).click();

  // Promote: stopped at 110, nothing lost.
  await page.getByRole("button", { name: "Promote…" }).click();
  await expect(explanation).toContainText("nothing lost");
  await page.getByRole("button", { name: "Confirm: promote" }).click();
  await expect(op.locator("summary .badge")).toHaveText("Succeeded", { timeout: 60_000 });
  await expect(op.getByTestId("loss-records")).toHaveText("0");
  await expect(op.getByTestId("stop-offset")).toHaveText("110");
  await expect(badge).toHaveText("promoted");
  await expect(page.getByRole("button", { name: "Reverse…" })).toBeVisible();
  await axe(page, "link promoted");
  await shot(page, "45-link-promoted");
  const shown = JSON.parse(hdictl(["link", "show", LINK, "-o", "json"])) as { state: string };
  expect(shown.state).toBe("promoted");

  // The list: state, pair, lag.
  await page.getByRole("link", { name: "Replication links" }).first().click();
  const row = page.locator(`tr[data-link="${LINK}"]`);
  await expect(row.locator(".badge")).toHaveText("promoted");
  await expect(row).toContainText(`${LINK_SOURCE} → ${LINK_TARGET}`);
  await expect(row.getByTestId("link-lag")).not.toHaveText("—");
  await axe(page, "replication links");
  await shot(page, "46-links-list");

  // A viewer sees the link and no controls.
  const viewerContext = await browser.newContext({ baseURL: process.env.HDI_URL });
  const viewer = await viewerContext.newPage();
  await signIn(viewer, users.viewer);
  await viewer.goto(`/workspaces/${WS}/replication-links`);
  await expect(viewer.locator(`tr[data-link="${LINK}"]`)).toBeVisible();
  await expect(viewer.getByRole("link", { name: "Create link" })).toHaveCount(0);
  await viewer.goto(`/workspaces/${WS}/replication-links/${LINK}`);
  await expect(viewer.locator(".title-row .badge")).toHaveText("promoted");
  await expect(viewer.getByRole("button")).toHaveText(["Sign out"]);
  await shot(viewer, "47-link-viewer");
  await viewerContext.close();

  // Reverse: the old source mirrors the new primary, nothing to quarantine; the pair swaps.
  await row.getByRole("link", { name: LINK }).click();
  await page.getByRole("button", { name: "Reverse…" }).click();
  await expect(explanation).toContainText(".quarantine");
  await page.getByRole("button", { name: "Confirm: reverse" }).click();
  await expect(op.locator("details.operation")).toContainText("link reverse");
  await expect(op.locator("summary .badge")).toHaveText("Succeeded", { timeout: 60_000 });
  await expect(op.getByTestId("operation-result")).toContainText("Quarantined: 0 records.");
  await expect(badge).toHaveText("mirroring");
  await expect(page.getByTestId("link-source")).toHaveText(LINK_TARGET);
  await expect(page.getByTestId("link-target")).toHaveText(LINK_SOURCE);
  await expect(partition.locator("td").nth(3)).toHaveText("110", { timeout: 60_000 });

  // A link that feeds mirrors cannot be deleted: the refusal is shown.
  await page.getByLabel("Type the link's name to delete it").fill(LINK);
  await page.getByRole("button", { name: "Delete link" }).click();
  const refused = page.locator(".problem", { hasText: "Delete refused" });
  await expect(refused).toContainText("link_has_mirrors");
  await expect(refused).toContainText("HTTP 409");

  // A forced failover: stopped at once, and its loss bound (0: nothing was behind).
  await page.getByRole("button", { name: "Fail over…" }).click();
  await page.getByRole("button", { name: "Confirm: fail over" }).click();
  await expect(op.locator("details.operation")).toContainText("link failover");
  await expect(op.locator("summary .badge")).toHaveText("Succeeded", { timeout: 60_000 });
  await expect(op.getByTestId("loss-records")).toHaveText("0");
  await expect(badge).toHaveText("failed over");
  await expect(refused, "the refusal was about the mirroring link").toHaveCount(0);
  await axe(page, "link failed over");
  await shot(page, "48-link-failed-over");

  // Now it can be deleted.
  await page.getByLabel("Type the link's name to delete it").fill(LINK);
  await page.getByRole("button", { name: "Delete link" }).click();
  await expect(page.getByText("No replication links in this workspace yet.")).toBeVisible();
  expect(JSON.parse(hdictl(["link", "list", "-o", "json"]))).toEqual([]);
});
