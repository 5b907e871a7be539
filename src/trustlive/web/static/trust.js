/* Score drill-down page: the score's history as a line chart (Chart.js, vendored at
   /static/vendor/chart.umd.min.js; no CDN). The server puts the points in a JSON script tag
   (data-trust-history); this only reads them and draws: no markup is built from data. */

function drawHistory(canvas) {
  const source = document.querySelector("[data-trust-history]");
  if (!source || !window.Chart || canvas.dataset.drawn) return;
  const data = JSON.parse(source.textContent);
  // A day with a score but none either side (the first day scored, or a gap) has no line to
  // show it: draw it as a dot; so is the latest score.
  const values = data.values;
  const last = values.reduce((at, v, i) => (v === null ? at : i), -1);
  const radius = values.map((v, i) =>
    v !== null && (i === last || ((values[i - 1] ?? null) === null && (values[i + 1] ?? null) === null)) ? 3 : 0);
  new window.Chart(canvas, {
    type: "line",
    data: {
      labels: data.labels,
      datasets: [{
        label: data.label,
        data: data.values,
        borderColor: "#0d8a5f",
        backgroundColor: "rgba(13, 138, 95, 0.12)",
        fill: true,
        spanGaps: false,
        stepped: false,
        tension: 0.2,
        pointRadius: radius,
        pointBackgroundColor: "#0d8a5f",
        pointHitRadius: 8,
        borderWidth: 2,
      }],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        y: { min: 0, max: 5, ticks: { stepSize: 1 } },
        x: { ticks: { maxTicksLimit: 6, maxRotation: 0, autoSkip: true } },
      },
      plugins: { legend: { display: false } },
    },
  });
  canvas.dataset.drawn = "true";
}

function start() {
  document.querySelectorAll("[data-trust-chart]").forEach(drawHistory);
}

// Chart.js loads as a deferred classic script; modules run after it, but wait for it to be sure.
if (window.Chart) start();
else window.addEventListener("load", start, { once: true });
