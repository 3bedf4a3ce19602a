/**
 * A uPlot line chart: created once, fed with `setData` on change. The number of points is
 * exposed as `data-points` so tests can see the chart move without reading pixels.
 */
import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartSeries {
  label: string;
  values: (number | null)[];
  color: string;
}

const WIDTH = 520;
const HEIGHT = 200;

export function Chart({
  title,
  testId,
  time,
  series,
  unit,
}: {
  title: string;
  testId: string;
  time: number[];
  series: ChartSeries[];
  unit?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const labels = series.map((s) => s.label).join("|");

  useEffect(() => {
    if (!box.current) return;
    const opts: uPlot.Options = {
      width: WIDTH,
      height: HEIGHT,
      legend: { show: true },
      cursor: { show: true },
      scales: { x: { time: true } },
      axes: [{ stroke: "#333" }, { stroke: "#333", label: unit, size: 60 }],
      series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, spanGaps: true }))],
    };
    plot.current = new uPlot(opts, [time, ...series.map((s) => s.values)] as uPlot.AlignedData, box.current);
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
    // Rebuilt only when the set of series changes; data goes through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [labels, unit]);

  useEffect(() => {
    plot.current?.setData([time, ...series.map((s) => s.values)] as uPlot.AlignedData);
  }, [time, series]);

  return (
    <figure className="chart" data-testid={testId} data-points={time.length}>
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${time.length} points`} />
    </figure>
  );
}
