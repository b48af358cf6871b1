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
})();
