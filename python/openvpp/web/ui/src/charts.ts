// Hourly bar and line charts (Chart.js), each with its numbers as a table
// beside it for screen readers and keyboard users.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";
import { h } from "./dom";

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, Legend, Tooltip);
Chart.defaults.animation = false;
Chart.defaults.font.family = "system-ui, sans-serif";

export interface Line {
  label: string;
  values: number[];
  color: string;
  kind?: "bar" | "line";
}

export function chart(title: string, labels: string[], lines: Line[], unit: string): HTMLElement {
  const canvas = h("canvas", { role: "img", "aria-label": `${title}, per hour, in ${unit}` });
  const figure = h("figure", { class: "chart" }, h("div", { class: "plot" }, canvas));
  new Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: lines.map((l) => ({
        type: l.kind ?? "bar",
        label: l.label,
        data: l.values,
        backgroundColor: l.color,
        borderColor: l.color,
      })) as any,
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      scales: { y: { beginAtZero: true, title: { display: true, text: unit } } },
      plugins: { legend: { position: "bottom" } },
    },
  });
  const rows = labels.map((label, i) => h("tr", {}, h("th", { scope: "row" }, label), ...lines.map((l) => h("td", {}, String(l.values[i])))));
  figure.append(
    h(
      "details",
      {},
      h("summary", {}, `${title}: the numbers`),
      h(
        "div",
        { class: "scroll" },
        h("table", {}, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Hour"), ...lines.map((l) => h("th", { scope: "col" }, `${l.label} (${unit})`)))), h("tbody", {}, ...rows)),
      ),
    ),
  );
  return figure;
}

export function hourLabel(seconds: number): string {
  return new Date(seconds * 1000).toLocaleString("en-US", { month: "short", day: "numeric", hour: "numeric" });
}

/** Values per hour over [start, end), zero where nothing was recorded. */
export function hourly<T>(start: number, end: number, rows: T[], hour: (r: T) => number, value: (r: T) => number): number[] {
  const out = new Array(Math.max(0, (end - start) / 3600)).fill(0);
  for (const row of rows) {
    const i = (hour(row) - start) / 3600;
    if (i >= 0 && i < out.length) out[i] += value(row);
  }
  return out;
}
