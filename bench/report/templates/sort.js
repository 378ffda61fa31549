// Sorts any table.sortable by a clicked header, keeps wide tables in a sideways scroller
// and filters the leaderboard; no server needed.
(function () {
  // Pages whose templates do not wrap their tables get the same sideways scroller, so a
  // wide table never widens the page on a phone (.kv tables wrap their text instead).
  document.querySelectorAll("table:not(.kv)").forEach(function (table) {
    if (table.closest(".scroll-x")) return;
    var wrapper = document.createElement("div");
    wrapper.className = "scroll-x";
    table.parentNode.insertBefore(wrapper, table);
    wrapper.appendChild(table);
  });
  function key(cell, type) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) raw = cell.textContent.trim();
    if (type === "num" || type === "rank") {
      var n = parseFloat(raw);
      return isNaN(n) ? Infinity : n;
    }
    return raw.toLowerCase();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, index) {
      th.addEventListener("click", function () {
        var ascending = !th.classList.contains("sorted-asc");
        headers.forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
        var type = th.getAttribute("data-type");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[index], type), y = key(b.cells[index], type);
          if (x === y) return 0;
          return (x < y ? -1 : 1) * (ascending ? 1 : -1);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  var filter = document.getElementById("filter");
  if (filter) {
    filter.addEventListener("input", function () {
      var needle = filter.value.toLowerCase();
      document.querySelectorAll("#leaderboard tbody tr").forEach(function (row) {
        row.style.display = row.textContent.toLowerCase().indexOf(needle) >= 0 ? "" : "none";
      });
    });
  }
})();
