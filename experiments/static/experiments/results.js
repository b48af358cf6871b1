// Draws an experiment's results from the JSON the page embeds (json_script), with Chart.js:
// (a) each variant's conversion rate with its interval, (b) each treatment's uplift against
// control with its confidence interval, as floating bars, (c) cumulative exposures per variant
// over time. Figures that are null (see the table's notes) are left out, never drawn as 0.
(function () {
  "use strict";
  const source = document.getElementById("experiment-results-data");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  const data = JSON.parse(source.textContent);
  // Figures to read, not a show: drawn at once (and a recompute reloads the page anyway).
  Chart.defaults.animation = false;
  const COLORS = [
    "65, 118, 144",
    "204, 120, 50",
    "46, 125, 50",
    "142, 68, 173",
    "204, 62, 62",
    "0, 131, 143",
    "121, 85, 72",
    "96, 125, 139",
    "233, 30, 99",
    "130, 119, 23",
  ];
  const color = (index, alpha = 1) => `rgba(${COLORS[index % COLORS.length]}, ${alpha})`;
  const percent = (share) => (share === null || share === undefined ? null : Math.round(share * 10000) / 100);
  const interval = (low, high) => (low === null || high === null ? null : [percent(low), percent(high)]);
  const formatPercent = (value) => (value === null ? "—" : `${value.toFixed(2)} %`);
  const variants = data.variants;
  const keys = variants.map((v) => v.key);

  const rateCanvas = document.getElementById("experiment-rate-chart");
  if (rateCanvas) {
    new Chart(rateCanvas, {
      data: {
        labels: keys,
        datasets: [
          {
            type: "bar",
            label: `${data.confidence} interval of the rate`,
            data: variants.map((v) => interval(v.rate_low, v.rate_high)),
            backgroundColor: variants.map((_, i) => color(i, 0.3)),
            borderColor: variants.map((_, i) => color(i)),
            borderWidth: 1,
            barPercentage: 0.5,
          },
          {
            type: "line",
            label: "Conversion rate",
            data: variants.map((v) => percent(v.rate)),
            showLine: false,
            pointStyle: "rectRot",
            pointRadius: 7,
            pointHoverRadius: 9,
            backgroundColor: variants.map((_, i) => color(i)),
            borderColor: variants.map((_, i) => color(i)),
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, title: { display: true, text: "conversion rate (%)" } } },
        plugins: {
          tooltip: {
            callbacks: {
              label: (item) =>
                Array.isArray(item.raw)
                  ? `${item.dataset.label}: ${formatPercent(item.raw[0])} to ${formatPercent(item.raw[1])}`
                  : `${item.dataset.label}: ${formatPercent(item.raw)}`,
            },
          },
        },
      },
    });
  }

  const upliftCanvas = document.getElementById("experiment-uplift-chart");
  if (upliftCanvas) {
    const treatments = variants.slice(1);
    new Chart(upliftCanvas, {
      data: {
        labels: treatments.map((v) => v.key),
        datasets: [
          {
            type: "bar",
            label: `${data.confidence} confidence interval (${data.method})`,
            data: treatments.map((v) => interval(v.ci_low, v.ci_high)),
            backgroundColor: treatments.map((_, i) => color(i + 1, 0.3)),
            borderColor: treatments.map((_, i) => color(i + 1)),
            borderWidth: 1,
            barPercentage: 0.5,
          },
          {
            type: "line",
            label: "Uplift against control",
            data: treatments.map((v) => percent(v.uplift)),
            showLine: false,
            pointStyle: "rectRot",
            pointRadius: 7,
            pointHoverRadius: 9,
            backgroundColor: treatments.map((_, i) => color(i + 1)),
            borderColor: treatments.map((_, i) => color(i + 1)),
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        scales: {
          y: {
            title: { display: true, text: "uplift against control (%)" },
            // Zero is "no difference": the line an interval must not cross to be significant.
            grid: { color: (ctx) => (ctx.tick && ctx.tick.value === 0 ? "rgba(0, 0, 0, 0.6)" : "rgba(0, 0, 0, 0.1)") },
          },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (item) =>
                Array.isArray(item.raw)
                  ? `${item.dataset.label}: ${formatPercent(item.raw[0])} to ${formatPercent(item.raw[1])}`
                  : `${item.dataset.label}: ${formatPercent(item.raw)}`,
            },
          },
        },
      },
    });
  }

  const exposuresCanvas = document.getElementById("experiment-exposures-chart");
  if (exposuresCanvas) {
    const pad = (n) => String(n).padStart(2, "0");
    const when = (iso) => {
      const t = new Date(iso);
      if (Number.isNaN(t.getTime())) return iso;
      return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}`;
    };
    const history = data.history;
    new Chart(exposuresCanvas, {
      type: "line",
      data: {
        labels: history.map((point) => when(point[0])),
        datasets: keys.map((key, index) => ({
          label: key,
          data: history.map((point) => (Array.isArray(point[1]) && point[1][index] !== undefined ? point[1][index] : null)),
          borderColor: color(index),
          backgroundColor: color(index, 0.2),
          tension: 0.2,
          pointRadius: history.length > 60 ? 0 : 3,
        })),
      },
      options: {
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "units exposed" } } },
      },
    });
  }
})();
