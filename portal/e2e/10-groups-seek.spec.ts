// Consumer-group offsets reset (a dry run shows what would be committed and commits nothing;
// then applied, the lag is what `hdictl group describe` says) and delete behind a confirm step;
// and the live tail seeking by time: only records written after the chosen second appear,
// while the partition offsets table refreshes as the tail runs.
import { execFileSync } from "node:child_process";
import { WS, axe, expect, hdictl, shot, signIn, test, users } from "./fixtures";

const KAFKA = "web";
const TOPIC = "events";
const GROUP = "portal-readers";

interface Described {
  total_lag: number;
  offsets: { partition: number; committed_offset?: number | null; end_offset?: number | null }[];
}

function describe(): Described {
  return JSON.parse(hdictl(["group", "describe", KAFKA, GROUP, "-o", "json"])) as Described;
}

test("reset a group's offsets (dry run, then applied) and delete it", async ({ page, guard }) => {
  void guard;
  await signIn(page, users.admin);
  await page.goto(`/workspaces/${WS}/clusters/${KAFKA}/consumer-groups/${GROUP}`);
  const total = page.getByTestId("group-total-lag");
  await expect(total).toHaveText("25");

  // Dry run to latest: what would be committed, and nothing is.
  await page.getByLabel("To", { exact: true }).selectOption("latest");
  await expect(page.getByLabel("Dry run (show, do not commit)")).toBeChecked();
  await page.getByRole("button", { name: "Show the reset" }).click();
  const result = page.getByTestId("reset-result");
  await expect(result.locator("caption")).toHaveText("Offsets a reset would commit");
  const before = describe();
  const p5 = before.offsets.find((o) => o.partition === 5);
  const row5 = result.locator("tbody tr").filter({ has: page.locator("td:nth-child(2)", { hasText: /^5$/ }) });
  await expect(row5.locator("td").nth(2)).toHaveText(String(p5?.committed_offset));
  await expect(row5.locator("td").nth(3)).toHaveText(String(p5?.end_offset));
  expect(before.total_lag, "a dry run commits nothing").toBe(25);
  await expect(total).toHaveText("25");
  await axe(page, "group reset dry run");
  await shot(page, "32-group-reset-dry-run");

  // Applied: committed, the lag is gone, here and for hdictl.
  await page.getByLabel("Dry run (show, do not commit)").uncheck();
  await page.getByRole("button", { name: "Reset offsets" }).click();
  await expect(result.locator("caption")).toHaveText("Offsets committed");
  await expect(total).toHaveText("0");
  expect(describe().total_lag).toBe(0);
  await shot(page, "33-group-reset-applied");

  // Delete: a confirm step first, then the group is gone.
  await page.getByRole("button", { name: `Delete group ${GROUP}…` }).click();
  const confirm = page.getByRole("group", { name: `Delete group ${GROUP}` });
  await expect(confirm).toContainText("removes its committed offsets");
  await axe(page, "group delete confirm");
  await confirm.getByRole("button", { name: `Confirm: delete group ${GROUP}` }).click();
  await expect(page).toHaveURL(/\/consumer-groups$/);
  await expect(page.getByTestId("groups").or(page.getByText("No consumer groups."))).toBeVisible();
  await expect(page.locator(`tr[data-group="${GROUP}"]`)).toHaveCount(0);
  expect(hdictl(["group", "list", KAFKA])).not.toContain(GROUP);
});

/** `ms` as the value of a `datetime-local` input (the browser's and this process's zone). */
function localSecond(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

test("seek the tail by time: only the records written after it", async ({ page, guard }) => {
  void guard;
  await signIn(page, users.admin);
  await page.goto(`/workspaces/${WS}/clusters/${KAFKA}`);
  const bootstrap = (await page.getByTestId("bootstrap").textContent())?.trim() ?? "";
  await page.goto(`/workspaces/${WS}/clusters/${KAFKA}/topics/${TOPIC}`);
  const end5 = page.getByTestId("partitions").locator("tbody tr").nth(5).locator("td").nth(5);
  const endBefore = Number(await end5.textContent());

  // The next whole second: every record so far is older.
  const seekAt = Math.ceil((Date.now() + 1) / 1000) * 1000;
  await page.waitForTimeout(seekAt - Date.now() + 200);
  const values = Array.from({ length: 5 }, (_, i) => `timed-${i}`);
  execFileSync("kcat", ["-P", "-b", bootstrap, "-t", TOPIC, "-p", "5"], { input: values.join("\n") + "\n", timeout: 60_000 });

  await page.getByLabel("From", { exact: true }).selectOption("timestamp");
  await page.getByLabel("Time", { exact: true }).fill(localSecond(seekAt));
  await page.getByRole("button", { name: /Restart tail|Start tail/ }).click();
  const status = page.getByTestId("tail-status");
  await expect(status).toHaveAttribute("data-total", "5", { timeout: 30_000 });
  const rows = page.getByTestId("tail-rows").locator("tbody tr");
  await expect(rows).toHaveCount(5);
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.querySelector(".value")?.textContent ?? "").reverse());
  expect(shown).toEqual(values);

  // While the tail runs, the offsets table follows (every second), without a reload.
  await expect(status).toHaveAttribute("data-running", "true");
  execFileSync("kcat", ["-P", "-b", bootstrap, "-t", TOPIC, "-p", "5"], { input: "timed-5\n", timeout: 60_000 });
  await expect(status).toHaveAttribute("data-total", "6", { timeout: 30_000 });
  await expect(end5).toHaveText(String(endBefore + 6), { timeout: 4000 });
  await axe(page, "tail seek by time");
  await shot(page, "34-tail-seek-by-time");
});
