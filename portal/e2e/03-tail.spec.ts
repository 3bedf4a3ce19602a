// The live tail: 200 records produced by kcat while the page tails the topic appear in order,
// the view stays put while paused, and the stream says why it ended.
import { execFileSync } from "node:child_process";
import { WS, axe, expect, shot, signIn, test, users } from "./fixtures";

const KAFKA = "web";
const TOPIC = "events";

test("a 200-record burst appears in the live tail in order", async ({ page, guard }) => {
  void guard;
  await signIn(page, users.admin);
  await page.goto(`/workspaces/${WS}/clusters/${KAFKA}`);
  const bootstrap = (await page.getByTestId("bootstrap").textContent())?.trim() ?? "";
  expect(bootstrap).toContain(":");
  await page.goto(`/workspaces/${WS}/clusters/${KAFKA}/topics/${TOPIC}`);
  await page.getByLabel("From", { exact: true }).selectOption("latest");
  await page.getByLabel("Partition", { exact: true }).selectOption("5");
  await page.getByRole("button", { name: "Start tail" }).click();
  await expect(page.getByTestId("tail-status")).toHaveAttribute("data-running", "true");
  // Let the server reach the end offsets before the burst.
  await page.waitForTimeout(1500);

  const values = Array.from({ length: 200 }, (_, i) => `burst-${String(i).padStart(3, "0")}`);
  execFileSync("kcat", ["-P", "-b", bootstrap, "-t", TOPIC, "-p", "5"], {
    input: values.join("\n") + "\n",
    timeout: 60_000,
  });

  const status = page.getByTestId("tail-status");
  await expect(status).toHaveAttribute("data-total", "200", { timeout: 30_000 });
  const rows = page.getByTestId("tail-rows").locator("tbody tr");
  await expect(rows).toHaveCount(200);
  // Newest first: reversed, the values and offsets are the burst in order.
  const shown = await rows.evaluateAll((trs) =>
    trs.map((tr) => ({ offset: Number(tr.getAttribute("data-offset")), value: tr.querySelector(".value")?.textContent ?? "" })),
  );
  shown.reverse();
  expect(shown.map((r) => r.value)).toEqual(values);
  for (let i = 1; i < shown.length; i++) expect(shown[i].offset).toBe(shown[i - 1].offset + 1);
  await axe(page, "topic tail");
  await shot(page, "08-topic-tail-200");

  // Pause keeps the rows on screen while more arrive; resuming shows them.
  await page.getByRole("button", { name: "Pause view" }).click();
  execFileSync("kcat", ["-P", "-b", bootstrap, "-t", TOPIC, "-p", "5"], { input: "after-pause\n", timeout: 60_000 });
  await expect(status).toHaveAttribute("data-total", "201", { timeout: 30_000 });
  await expect(rows).toHaveCount(200);
  await expect(rows.first()).toContainText("burst-199");
  await page.getByRole("button", { name: "Resume view" }).click();
  await expect(rows.first()).toContainText("after-pause");

  // Seek to an offset with a value filter and a record limit: the stream ends and says why.
  await page.getByLabel("From", { exact: true }).selectOption("offset");
  await page.getByLabel("Offset", { exact: true }).fill(String(shown[100].offset));
  await page.getByLabel("Value contains").fill("burst-1");
  await page.getByLabel("Stop after records").fill("10");
  await page.getByRole("button", { name: /Restart tail|Start tail/ }).click();
  const end = page.getByTestId("tail-end");
  await expect(end).toHaveAttribute("data-reason", "max_records", { timeout: 30_000 });
  await expect(rows).toHaveCount(10);
  const seeked = await rows.evaluateAll((trs) => trs.map((tr) => tr.querySelector(".value")?.textContent ?? "").reverse());
  expect(seeked).toEqual(values.slice(100, 110));
  await shot(page, "09-topic-tail-seek-filter");

  // Produce a record from the page.
  await page.getByLabel("Key", { exact: true }).fill("k1");
  await page.getByLabel("Value", { exact: true }).fill("from-the-portal");
  await page.getByRole("button", { name: "Produce" }).click();
  await expect(page.getByText(/Written to partition \d+ at offset \d+/)).toBeVisible();
});
