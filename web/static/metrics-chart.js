/* Draws a cluster's or service's charts with the vendored uPlot from the page's JSON data block
   (#metrics-data), then refreshes them by polling the JSON at #metrics[data-source] every
   data-refresh seconds: no inline script (the Content-Security-Policy), no reload. Each chart's
   holder gets data-points (how many values it has) once drawn; its #latest-<key> line says
   the newest values in words. */
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#a40e26", "#116329", "#8a4b00"];
  var charts = {};

  function width(holder) { return Math.max(260, Math.min(holder.clientWidth || 600, 1100)); }

  function count(values) {
    var n = 0;
    values.forEach(function (v) { if (v !== null) { n += 1; } });
    return n;
  }

  function draw(data) {
    document.getElementById("metrics-empty").hidden = !data.empty;
    data.charts.forEach(function (c) {
      var holder = document.querySelector('[data-chart="' + c.key + '"]');
      if (!holder) { return; }
      var columns = [data.x];
      var points = 0;
      c.series.forEach(function (s) { columns.push(s.values); points += count(s.values); });
      var chart = charts[c.key];
      if (chart) {
        chart.setData(columns);
      } else {
        var series = [{}];
        c.series.forEach(function (s, i) {
          series.push({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: false });
        });
        charts[c.key] = new uPlot({
          width: width(holder),
          height: 220,
          series: series,
          axes: [{}, { label: c.unit, size: 60 }],
          scales: { x: { time: true } }
        }, columns, holder);
      }
      holder.setAttribute("data-points", String(points));
      var said = document.getElementById("latest-" + c.key);
      if (said) { said.textContent = c.latest; }
    });
  }

  function poll(root) {
    var seconds = parseInt(root.getAttribute("data-refresh"), 10) || 15;
    var status = document.getElementById("metrics-status");
    var timer = window.setInterval(function () {
      fetch(root.getAttribute("data-source"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (r.status === 401) {
            window.clearInterval(timer);
            status.textContent = "You are signed out: reload the page to see new figures.";
            return null;
          }
          return r.ok ? r.json() : null;
        })
        .then(function (data) { if (data) { draw(data); status.textContent = ""; } })
        .catch(function () { status.textContent = "Could not refresh the figures; trying again."; });
    }, seconds * 1000);
  }

  function start() {
    var root = document.getElementById("metrics");
    var source = document.getElementById("metrics-data");
    if (!root || !source || typeof uPlot === "undefined") { return; }
    draw(JSON.parse(source.textContent));
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (key) {
        var holder = document.querySelector('[data-chart="' + key + '"]');
        charts[key].setSize({ width: width(holder), height: 220 });
      });
    });
    poll(root);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
