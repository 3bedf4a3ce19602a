// Clusters: create a 4-broker Kafka cluster through the form and watch it reach Running without
// reloading; create a topic; a scale-in without drain is refused with its reason
// (`brokers_hold_partitions`), shown with the problem's title, detail and code.
import { WS, axe, expect, shot, signIn, test, users } from "./fixtures";

export const KAFKA = "web";
export const TOPIC = "events";

test("create a Kafka cluster and watch it reach Running, then a refused scale-in", async ({ page, guard }) => {
  guard.expectHttp(409, /\/clusters\/web$/);
  guard.expectHttp(400, /\/clusters\/web$/);
  await signIn(page, users.admin);
  let loads = 0;
  page.on("load", () => loads++);
  await page.getByRole("link", { name: WS, exact: true }).click();
  await expect(page.getByRole("heading", { name: `Clusters in ${WS}` })).toBeVisible();
  await page.getByRole("link", { name: "Create cluster" }).click();
  await page.getByLabel("Name").fill(KAFKA);
  await page.getByLabel("Kind").selectOption("kafka");
  await page.getByLabel("Brokers").fill("4");
  await expect(page.getByLabel("Size").locator("option")).not.toHaveCount(0);
  await page.getByLabel("Secured (TLS, SASL and ACLs)").uncheck();
  await axe(page, "create cluster");
  await shot(page, "03-cluster-create-form");
  await page.getByRole("button", { name: "Create cluster" }).click();

  // The detail page polls: Creating, then Running, with no reload.
  await expect(page.getByRole("heading", { name: KAFKA, exact: true })).toBeVisible();
  const badge = page.locator(".title-row .badge");
  await expect(badge).toHaveText(/Creating|Running/);
  await shot(page, "04-cluster-creating");
  await expect(badge).toHaveText("Running", { timeout: 180_000 });
  expect(loads, "no page load after the first").toBe(0);
  await expect(page.getByTestId("bootstrap")).not.toBeEmpty();
  await expect(page.locator("details.operation").first()).toContainText("create");
  await expect(page.locator("details.operation").first()).toContainText("Succeeded");
  await axe(page, "cluster detail");
  await shot(page, "05-cluster-running");

  // The list shows it Running too.
  await page.getByRole("link", { name: "Clusters", exact: true }).click();
  await expect(page.locator(`tr[data-cluster="${KAFKA}"] .badge`)).toHaveText("Running");
  await shot(page, "06-clusters-list");

  // A topic with partitions on every broker.
  await page.getByRole("link", { name: KAFKA, exact: true }).click();
  await page.getByRole("link", { name: "Topics" }).click();
  await page.getByLabel("Topic name").fill(TOPIC);
  await page.getByLabel("Partitions").fill("12");
  await page.getByLabel("Replication factor").fill("3");
  await page.getByRole("button", { name: "Create topic" }).click();
  await expect(page.getByRole("heading", { name: `Topic ${TOPIC}` })).toBeVisible();
  await expect(page.getByTestId("partitions").locator("tbody tr")).toHaveCount(12);
  await axe(page, "topic detail");

  // Scale-in 4 -> 3 without drain: refused, and the reason is shown.
  await page.getByRole("link", { name: "Overview" }).click();
  await page.getByLabel("Brokers in brokers").fill("3");
  await page.getByRole("button", { name: "Resize" }).click();
  const refusal = page.locator(".problem", { hasText: "Resize refused" });
  await expect(refusal).toContainText("brokers_hold_partitions");
  await expect(refusal.locator(".problem-detail")).not.toBeEmpty();
  await expect(refusal).toContainText("HTTP 409");
  await refusal.scrollIntoViewIfNeeded();
  await shot(page, "07-scale-in-refused");
  expect(loads).toBe(0);
});
