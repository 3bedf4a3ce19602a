// Sign-in: a wrong password shows the problem (title, detail, code); the right one lands on the
// workspaces; signing out ends the session (the page asks again, and the old cookie is refused).
import { WS, axe, expect, shot, signIn, test, users } from "./fixtures";

test("a wrong password shows the problem, the right one signs in, sign out ends it", async ({ page, guard, context }) => {
  guard.expectHttp(401, /\/v1\/auth\/session$/);
  await page.goto("/");
  await expect(page.getByRole("heading", { name: "hdi" })).toBeVisible();
  await axe(page, "login");
  await page.getByLabel("Username").fill(users.admin.username);
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  const problem = page.getByRole("alert");
  await expect(problem).toContainText("Unauthorized");
  await expect(problem).toContainText("invalid_credentials");
  await expect(problem.locator(".problem-detail")).not.toBeEmpty();
  await shot(page, "01-login-wrong-password");

  await signIn(page, users.admin);
  await expect(page.getByRole("heading", { name: "Workspaces" })).toBeVisible();
  await expect(page.getByRole("link", { name: WS, exact: true })).toBeVisible();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "hdi_session");
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe("Strict");
  expect(await page.evaluate(() => document.cookie)).not.toContain("hdi_session");
  await axe(page, "workspaces");
  await shot(page, "02-workspaces");

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  await page.reload();
  await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
  // The ended session's cookie no longer works, even if replayed.
  if (session) {
    await context.addCookies([session]);
    const status = await page.evaluate(async () => (await fetch("/v1/me")).status);
    expect(status).toBe(401);
  }
});
