// Access: a workspace admin sees its role bindings and grants a role; a user creates an API
// token (its secret shown once) on the tokens page. Both pages pass axe.
import { WS, axe, expect, shot, signIn, test, users } from "./fixtures";

test("role bindings and API tokens", async ({ page, guard }) => {
  void guard;
  await signIn(page, users.admin);
  await page.goto(`/workspaces/${WS}`);
  await page.getByRole("link", { name: "Access" }).click();
  await expect(page.getByRole("heading", { name: `Access to ${WS}` })).toBeVisible();
  const bindings = page.getByRole("table", { name: "Role bindings" });
  await expect(bindings.getByRole("row", { name: /victor viewer/ })).toBeVisible();
  await page.getByLabel("Username", { exact: true }).fill(users.viewer.username);
  await page.getByLabel("Role", { exact: true }).selectOption("operator");
  await page.getByRole("button", { name: "Grant" }).click();
  await expect(bindings.getByRole("row", { name: /victor operator/ })).toBeVisible();
  // Back to viewer, as the other specs expect.
  await page.getByLabel("Role", { exact: true }).selectOption("viewer");
  await page.getByRole("button", { name: "Grant" }).click();
  await expect(bindings.getByRole("row", { name: /victor viewer/ })).toBeVisible();
  await axe(page, "access");
  await shot(page, "15-access");

  await page.getByRole("link", { name: "API tokens" }).click();
  await page.getByLabel("Token name").fill("ci");
  await page.getByRole("button", { name: "Create token" }).click();
  await expect(page.getByTestId("new-token")).not.toBeEmpty();
  await expect(page.getByRole("table", { name: "API tokens" }).getByRole("row", { name: /^ci / })).toBeVisible();
  await axe(page, "API tokens");
  await shot(page, "16-api-tokens");
});
