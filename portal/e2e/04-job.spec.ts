// Jobs: SQL with an error is refused and the editor marks the error's line and column; a
// windowed job over the rate source then runs, its charts keep moving (their point counts grow
// across polls) and its preview table fills.
import { WS, axe, expect, shot, signIn, test, users } from "./fixtures";

const SPARK = process.env.HDI_PORTAL_SPARK ?? "etl";

const BAD_SQL = [
  "CREATE TABLE ticks (ts TIMESTAMP, value BIGINT) WITH (connector = 'rate', rows_per_second = '10');",
  "CREATE TABLE out WITH (connector = 'memory');",
  "INSERT INTO out",
  "SELECT ts, valeu FROM ticks;",
].join("\n");

const GOOD_SQL = [
  "CREATE TABLE ticks (ts TIMESTAMP, value BIGINT, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)",
  "  WITH (connector = 'rate', rows_per_second = '200');",
  "CREATE TABLE counts WITH (connector = 'memory');",
  "SET trigger = 'processing_time 1s';",
  "INSERT INTO counts",
  "SELECT window_start, window_end, count(*) AS n, sum(value) AS total",
  "FROM TUMBLE(ticks, ts, INTERVAL '2' SECOND)",
  "GROUP BY window_start, window_end;",
].join("\n");

test("an SQL error marks its line; a running job's charts keep moving", async ({ page, guard }) => {
  guard.expectHttp(400, /\/jobs$/);
  await signIn(page, users.admin);
  await page.goto(`/workspaces/${WS}/clusters/${SPARK}/jobs`);
  await expect(page.getByRole("heading", { name: "Submit a job" })).toBeVisible();
  await page.getByLabel("Job name").fill("bad-sql");
  await page.getByLabel("SQL", { exact: true }).fill(BAD_SQL);
  await page.getByRole("button", { name: "Submit job" }).click();
  const error = page.getByTestId("sql-error");
  await expect(error).toBeVisible();
  await expect(error).toHaveAttribute("data-line", "4");
  await expect(page.locator(".gutter li.error-line")).toHaveText("4");
  await expect(page.getByText("invalid_sql")).toBeVisible();
  await axe(page, "job submit with an SQL error");
  await shot(page, "10-job-sql-error");

  await page.getByLabel("Job name").fill("window-counts");
  await page.getByLabel("SQL", { exact: true }).fill(GOOD_SQL);
  await page.getByRole("button", { name: "Submit job" }).click();
  await expect(page.getByRole("heading", { name: "Job window-counts" })).toBeVisible();
  const jobState = page.locator(".title-row", { has: page.getByRole("heading", { name: "Job window-counts" }) }).locator(".badge");
  await expect(jobState).toHaveText("Running", { timeout: 60_000 });

  const rates = page.getByTestId("chart-rates");
  const points = async () => Number(await rates.getAttribute("data-points"));
  await expect.poll(points, { timeout: 60_000 }).toBeGreaterThanOrEqual(2);
  const first = await points();
  // Polled every 2 s: more batches appear without a reload.
  await expect.poll(points, { timeout: 30_000 }).toBeGreaterThan(first);
  for (const id of ["chart-durations", "chart-watermark", "chart-state"]) {
    await expect.poll(async () => Number(await page.getByTestId(id).getAttribute("data-points"))).toBeGreaterThan(first);
  }
  await expect(page.locator(".facts dd").nth(1)).not.toHaveText("0.0 rows/s");
  await expect(page.getByTestId("preview").locator("tbody tr").first()).toBeVisible({ timeout: 60_000 });
  await axe(page, "job detail");
  await shot(page, "11-job-charts");
});
