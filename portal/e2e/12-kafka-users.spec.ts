// Kafka users of the secured cluster the links spec used as its source: a name the platform
// keeps and a malformed ACL are refused at their fields; a created user's password is shown
// once and works (hdictl consumes as the user); rotate (confirm step) shows a new one that
// works; a viewer sees the users and no controls; delete (confirm step).
import { WS, LINK_SOURCE, axe, expect, hdictl, shot, signIn, test, users } from "./fixtures";

const USER = "orders-reader";

/** Consumes one record of `orders` as `user` with `password` in group `group` (its ACLs allow
 * `readers-*`); whether it worked. */
function consumesAs(user: string, password: string, group: string): boolean {
  try {
    const out = hdictl(
      ["topic", "consume", LINK_SOURCE, "orders", "--from-beginning", "--max", "1", "--timeout", "20s", "--user", user, "--group", group],
      undefined,
      { HDI_KAFKA_PASSWORD: password },
    );
    return out.includes("order-0000");
  } catch (error) {
    console.log(`consume as ${user} failed: ${String(error)}`);
    return false;
  }
}

test("Kafka users: create (password shown once), rotate, delete; a viewer sees no controls", async ({ page, guard, browser }) => {
  guard.expectHttp(400, /\/kafka-users$/);
  await signIn(page, users.admin);
  await page.goto(`/workspaces/${WS}/clusters/${LINK_SOURCE}`);
  await page.getByRole("link", { name: "Kafka users" }).click();
  await expect(page.getByRole("heading", { name: "Kafka users" })).toBeVisible();
  await axe(page, "Kafka users");

  // Refusals at their fields: the server's (a platform name) and the form's (an unknown operation).
  await page.getByLabel("User name").fill("hdi-mine");
  await page.getByLabel("ACLs").fill("topic:orders:read,describe");
  await page.getByRole("button", { name: "Create Kafka user" }).click();
  const nameField = page.locator(".field", { has: page.getByLabel("User name") });
  await expect(nameField.locator(".field-error")).toContainText("platform's");
  await page.getByLabel("User name").fill(USER);
  await page.getByLabel("ACLs").fill("topic:orders:read,describe\ngroup:readers-*:fly");
  await page.getByRole("button", { name: "Create Kafka user" }).click();
  const aclField = page.locator(".field", { has: page.getByLabel("ACLs") });
  await expect(aclField.locator(".field-error")).toContainText('line 2: unknown operation "fly"');
  await axe(page, "Kafka user create, refused");
  await shot(page, "50-kafka-user-refused");

  await page.getByLabel("ACLs").fill("topic:orders:read,describe\ngroup:readers-*:read");
  await page.getByRole("button", { name: "Create Kafka user" }).click();
  const secret = page.getByTestId("kafka-user-secret");
  await expect(secret).toContainText(`Kafka user ${USER} created`);
  const password = (await page.getByTestId("kafka-user-password").textContent()) ?? "";
  expect(password.length).toBeGreaterThanOrEqual(16);
  const row = page.locator(`tr[data-kafka-user="${USER}"]`);
  await expect(row.locator(".badge")).toHaveText("applied", { timeout: 30_000 });
  await expect(row).toContainText("allow topic:orders:read,describe");
  await expect(row).toContainText("allow group:readers-*:read");
  await axe(page, "Kafka user created");
  await shot(page, "51-kafka-user-created");
  expect(consumesAs(USER, password, "readers-1"), "the shown password works").toBe(true);
  await page.getByRole("button", { name: "I have stored it" }).click();
  await expect(secret).toHaveCount(0);

  // Rotate: a confirm step, then a new password that works.
  await row.getByRole("button", { name: `Rotate password of ${USER}…` }).click();
  await expect(row.getByRole("group")).toContainText("the old one stops working");
  await row.getByRole("button", { name: `Rotate password of ${USER}`, exact: true }).click();
  await expect(secret).toContainText(`Kafka user ${USER} rotated`);
  const rotated = (await page.getByTestId("kafka-user-password").textContent()) ?? "";
  expect(rotated).not.toBe(password);
  expect(consumesAs(USER, rotated, "readers-2"), "the rotated password works").toBe(true);
  await shot(page, "52-kafka-user-rotated");

  // A viewer: the users, no form, no actions.
  const viewerContext = await browser.newContext({ baseURL: process.env.HDI_URL });
  const viewer = await viewerContext.newPage();
  await signIn(viewer, users.viewer);
  await viewer.goto(`/workspaces/${WS}/clusters/${LINK_SOURCE}/kafka-users`);
  await expect(viewer.locator(`tr[data-kafka-user="${USER}"]`)).toBeVisible();
  await expect(viewer.getByRole("button", { name: "Create Kafka user" })).toHaveCount(0);
  await expect(viewer.getByRole("columnheader", { name: "Actions" })).toHaveCount(0);
  await axe(viewer, "Kafka users, viewer");
  await shot(viewer, "53-kafka-users-viewer");
  await viewerContext.close();

  // Delete: a confirm step, then the row is gone.
  await row.getByRole("button", { name: `Delete ${USER}…` }).click();
  await row.getByRole("button", { name: `Delete ${USER}`, exact: true }).click();
  await expect(row).toHaveCount(0);
  expect(hdictl(["kafka-user", "list", LINK_SOURCE])).not.toContain(USER);
});
