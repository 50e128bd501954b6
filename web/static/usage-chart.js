/* Draws the usage page's chart with the vendored uPlot from the page's JSON data block
   (#usage-data): no inline script, as the Content-Security-Policy requires. */
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#a40e26", "#116329"];

  function draw() {
    var holder = document.getElementById("usage-chart");
    var source = document.getElementById("usage-data");
    if (!holder || !source || typeof uPlot === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var series = [{}];
    var columns = [data.x];
    data.series.forEach(function (s, i) {
      series.push({ label: s.label, stroke: COLOURS[i % COLOURS.length], width: 2, points: { show: true } });
      columns.push(s.values);
    });
    var width = function () { return Math.max(280, Math.min(holder.clientWidth || 600, 1100)); };
    var chart = new uPlot({
      width: width(),
      height: 280,
      series: series,
      axes: [{}, { label: "hours" }],
      scales: { x: { time: true } }
    }, columns, holder);
    holder.setAttribute("data-series", String(data.series.length));
    window.addEventListener("resize", function () { chart.setSize({ width: width(), height: 280 }); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
