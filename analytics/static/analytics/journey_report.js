// Draws the admin journey report from the JSON the page embeds (json_script), with Chart.js.
(function () {
  "use strict";
  const source = document.getElementById("journey-report-data");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  const report = JSON.parse(source.textContent);
  const label = (stage) => stage.charAt(0).toUpperCase() + stage.slice(1);

  const stagesCanvas = document.getElementById("journey-stages-chart");
  if (stagesCanvas) {
    new Chart(stagesCanvas, {
      data: {
        labels: report.stages.map((s) => label(s.stage)),
        datasets: [
          {
            type: "bar",
            label: "Drop-off from the previous stage (%)",
            data: report.stages.map((s) => (s.drop_off === null ? null : Math.round(s.drop_off * 1000) / 10)),
            yAxisID: "dropOff",
            backgroundColor: "rgba(204, 62, 62, 0.7)",
          },
          {
            type: "bar",
            label: "Subjects",
            data: report.stages.map((s) => s.uniques),
            yAxisID: "subjects",
            backgroundColor: "rgba(65, 118, 144, 0.7)",
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        scales: {
          dropOff: { type: "linear", position: "right", title: { display: true, text: "%" } },
          subjects: { type: "linear", position: "left", beginAtZero: true, title: { display: true, text: "subjects" } },
        },
      },
    });
  }

  const seriesCanvas = document.getElementById("journey-timeseries-chart");
  if (seriesCanvas) {
    const hourly = report.interval === "hour";
    new Chart(seriesCanvas, {
      type: "line",
      data: {
        labels: report.series.map((p) => (hourly ? p.bucket.slice(0, 16).replace("T", " ") : p.bucket.slice(0, 10))),
        datasets: [
          {
            label: report.event,
            data: report.series.map((p) => p.count),
            borderColor: "rgb(65, 118, 144)",
            backgroundColor: "rgba(65, 118, 144, 0.2)",
            fill: true,
            tension: 0.2,
            pointRadius: report.series.length > 60 ? 0 : 3,
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }

  // NPS over time: the score as a line (-100 to 100, a gap where nobody answered), the number of
  // answers as bars. A click anywhere in a period's column opens that period's journey report.
  const nps = report.nps;
  const npsCanvas = document.getElementById("nps-series-chart");
  if (nps && npsCanvas) {
    const periods = nps.series;
    new Chart(npsCanvas, {
      data: {
        labels: periods.map((p) => p.label),
        datasets: [
          {
            type: "line",
            label: "NPS",
            data: periods.map((p) => p.nps),
            yAxisID: "nps",
            borderColor: "rgb(65, 118, 144)",
            backgroundColor: "rgb(65, 118, 144)",
            tension: 0.2,
            spanGaps: false,
            pointRadius: periods.length > 60 ? 1 : 4,
            order: 0,
          },
          {
            type: "bar",
            label: "Answers",
            data: periods.map((p) => p.responses),
            yAxisID: "answers",
            backgroundColor: "rgba(121, 174, 200, 0.35)",
            order: 1,
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          nps: { type: "linear", position: "left", min: -100, max: 100, title: { display: true, text: "NPS" } },
          answers: {
            type: "linear",
            position: "right",
            beginAtZero: true,
            ticks: { precision: 0 },
            grid: { drawOnChartArea: false },
            title: { display: true, text: "answers" },
          },
        },
        plugins: {
          tooltip: {
            callbacks: {
              title: (items) => (items.length ? periods[items[0].dataIndex].period : ""),
              footer: () => "Click to see this period's journey report",
            },
          },
        },
        onHover: (event, elements) => {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
        onClick: (event, elements) => {
          if (elements.length) {
            window.location.assign(periods[elements[0].index].href);
          }
        },
      },
    });
  }

  // NPS by the respondents' lifecycle stage when they answered: green above zero, red below.
  const npsStagesCanvas = document.getElementById("nps-stages-chart");
  if (nps && npsStagesCanvas) {
    const stages = nps.by_stage;
    new Chart(npsStagesCanvas, {
      type: "bar",
      data: {
        labels: stages.map((s) => s.label),
        datasets: [
          {
            label: "NPS",
            data: stages.map((s) => s.nps),
            backgroundColor: stages.map((s) => (s.nps < 0 ? "rgba(204, 62, 62, 0.7)" : "rgba(58, 145, 88, 0.7)")),
          },
        ],
      },
      options: {
        maintainAspectRatio: false,
        scales: { y: { min: -100, max: 100, title: { display: true, text: "NPS" } } },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              afterLabel: (item) => `${stages[item.dataIndex].responses} answers`,
            },
          },
        },
      },
    });
  }
})();
