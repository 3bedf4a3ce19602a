// Consumer groups: a group that kcat consumed with, then fell behind by a burst, shows per
// partition the same committed offset, end offset and lag as `hdictl group describe`.
import { execFileSync } from "node:child_process";
import { WS, axe, expect, shot, signIn, test, users } from "./fixtures";

const KAFKA = "web";
const TOPIC = "events";
const GROUP = "portal-readers";

function hdictl(args: string[]): string {
  const bin = process.env.HDI_HDICTL;
  const config = process.env.HDI_HDICTL_CONFIG;
  if (!bin || !config) throw new Error("HDI_HDICTL and HDI_HDICTL_CONFIG are exported by e2e/tests/portal.rs");
  return execFileSync(bin, ["--config", config, ...args], { encoding: "utf8", timeout: 60_000 });
}

test("consumer-group lag per partition matches hdictl group describe", async ({ page, guard }) => {
  void guard;
  await signIn(page, users.admin);
  await page.goto(`/workspaces/${WS}/clusters/${KAFKA}`);
  const bootstrap = (await page.getByTestId("bootstrap").textContent())?.trim() ?? "";
  // The group reads everything and commits, then 25 more records arrive on partition 5.
  execFileSync(
    "kcat",
    ["-b", bootstrap, "-G", GROUP, "-X", "auto.offset.reset=earliest", "-e", "-q", TOPIC],
    { timeout: 120_000, stdio: ["ignore", "ignore", "pipe"] },
  );
  const more = Array.from({ length: 25 }, (_, i) => `late-${i}`).join("\n") + "\n";
  execFileSync("kcat", ["-P", "-b", bootstrap, "-t", TOPIC, "-p", "5"], { input: more, timeout: 60_000 });

  await page.getByRole("link", { name: "Consumer groups" }).click();
  const row = page.locator(`tr[data-group="${GROUP}"]`);
  await expect(row).toBeVisible();
  await expect(row.getByTestId("total-lag")).toHaveText("25", { timeout: 30_000 });
  await row.getByRole("link", { name: GROUP }).click();
  await expect(page.getByTestId("group-total-lag")).toHaveText("25");

  const described = JSON.parse(hdictl(["group", "describe", KAFKA, GROUP, "-o", "json"])) as {
    total_lag: number;
    offsets: { topic: string; partition: number; committed_offset?: number | null; end_offset?: number | null; lag?: number | null }[];
  };
  expect(described.total_lag).toBe(25);
  const shown = await page
    .getByTestId("group-offsets")
    .locator("tbody tr")
    .evaluateAll((trs) =>
      trs.map((tr) => {
        const cells = [...tr.querySelectorAll("td")].map((td) => td.textContent ?? "");
        return { topic: cells[0], partition: Number(cells[1]), committed: cells[2], end: cells[3], lag: cells[4] };
      }),
    );
  const fromCli = described.offsets.map((o) => ({
    topic: o.topic,
    partition: o.partition,
    committed: String(o.committed_offset ?? "—"),
    end: String(o.end_offset ?? "—"),
    lag: String(o.lag ?? "—"),
  }));
  expect(shown).toEqual(fromCli);
  expect(shown.find((o) => o.partition === 5)?.lag).toBe("25");
  await axe(page, "consumer group");
  await shot(page, "14-consumer-group-lag");
});
