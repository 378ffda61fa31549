// The sample explorer (bench/report/samples.py writes its data): filters run over the
// task's index; a page's samples come from <script src> shards (file:// allows no fetch).
// Every stored text is set as textContent, never as HTML.
(function () {
  "use strict";
  var root = document.getElementById("sample-explorer");
  var dir = root.getAttribute("data-dir");
  var pageSize = parseInt(root.getAttribute("data-page-size"), 10) || 50;
  var filterBox = document.getElementById("sample-filter");
  var searchBox = document.getElementById("sample-search");
  var modelBoxes = Array.prototype.slice.call(document.querySelectorAll(".sample-model"));
  var data = null; // {models, shards, rows: [[doc_id, shard, classes, wrongs]]}
  var records = {}; // doc_id -> record, from the shards loaded so far
  var loading = {}; // shard -> promise
  var rows = []; // the index rows the filters keep
  var page = 0;
  var linked = null; // the doc_id of a permalink being opened
  var generation = 0; // a newer refresh wins over one still loading

  window.benchSamples = {
    index: function (value) {
      data = value;
      start();
    },
    shard: function (n, list) {
      list.forEach(function (record) { records[record.d] = record; });
    },
  };

  function loadShard(n) {
    if (!loading[n]) {
      loading[n] = new Promise(function (resolve, reject) {
        var script = document.createElement("script");
        script.src = dir + "/" + n + ".js";
        script.onload = resolve;
        script.onerror = function () { reject(new Error("cannot load " + script.src)); };
        document.body.appendChild(script);
      });
    }
    return loading[n];
  }

  function allShards() {
    var all = [];
    for (var n = 0; n < data.shards; n++) all.push(loadShard(n));
    return Promise.all(all);
  }

  function chosenModels() {
    return modelBoxes.filter(function (b) { return b.checked; }).map(function (b) {
      return parseInt(b.value, 10);
    });
  }

  // An answer's class, or null where the model has no sample or no answer to compare.
  function answerClass(row, i) {
    var c = row[2][i];
    if (typeof c === "number") return c < 0 ? null : c;
    return c === "-" || c === "?" ? null : c;
  }

  function keep(row, filter, models) {
    if (filter === "disagree") {
      var seen = null;
      for (var k = 0; k < models.length; k++) {
        var c = answerClass(row, models[k]);
        if (c === null) continue;
        if (seen === null) seen = c;
        else if (c !== seen) return true;
      }
      return false;
    }
    if (filter === "allwrong") {
      var any = false;
      for (var j = 0; j < models.length; j++) {
        var w = row[3][models[j]];
        if (w === "-") continue;
        if (w !== "1") return false;
        any = true;
      }
      return any;
    }
    if (filter.indexOf("only:") === 0) {
      var x = parseInt(filter.slice(5), 10);
      if (row[3][x] !== "1") return false;
      return models.every(function (i) { return i === x || row[3][i] !== "1"; });
    }
    return true;
  }

  function searchable(record, models) {
    var parts = [record.p, record.t];
    models.forEach(function (i) {
      var a = record.a[i];
      if (a && a.x !== null) parts.push(a.x);
    });
    return parts.join("\n").toLowerCase();
  }

  function refresh() {
    var token = ++generation;
    root.setAttribute("data-state", "loading");
    var filter = filterBox.value;
    var models = chosenModels();
    var query = searchBox.value.trim().toLowerCase();
    var kept = data.rows.filter(function (row) { return keep(row, filter, models); });
    var ready = query
      ? allShards().then(function () {
          return kept.filter(function (row) {
            return searchable(records[row[0]], models).indexOf(query) >= 0;
          });
        })
      : Promise.resolve(kept);
    ready.then(function (list) {
      if (token !== generation) return;
      rows = list;
      if (linked !== null) {
        var at = rows.findIndex(function (row) { return row[0] === linked; });
        page = at < 0 ? 0 : Math.floor(at / pageSize);
      }
      render(token, models);
    });
  }

  function render(token, models) {
    root.setAttribute("data-state", "loading");
    var pages = Math.max(1, Math.ceil(rows.length / pageSize));
    page = Math.min(Math.max(page, 0), pages - 1);
    var slice = rows.slice(page * pageSize, (page + 1) * pageSize);
    var needed = {};
    slice.forEach(function (row) { needed[row[1]] = true; });
    Promise.all(Object.keys(needed).map(function (n) { return loadShard(parseInt(n, 10)); }))
      .then(function () {
        if (token !== generation) return;
        var box = document.getElementById("samples");
        box.textContent = "";
        slice.forEach(function (row) { box.appendChild(card(records[row[0]], models)); });
        document.getElementById("sample-count").textContent =
          rows.length + " of " + data.rows.length + " samples";
        document.getElementById("sample-page").textContent = "page " + (page + 1) + " of " + pages;
        document.getElementById("sample-prev").disabled = page === 0;
        document.getElementById("sample-next").disabled = page >= pages - 1;
        if (linked !== null) {
          var target = document.getElementById("doc-" + linked);
          if (target) {
            target.classList.add("linked");
            target.scrollIntoView();
          }
        }
        root.setAttribute("data-state", "ready");
      });
  }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function card(record, models) {
    var article = el("article", null, "sample");
    article.id = "doc-" + record.d;
    var heading = el("h3");
    var link = el("a", "doc " + record.d);
    link.href = "#doc-" + record.d;
    heading.appendChild(link);
    article.appendChild(heading);

    var lines = record.p.split("\n").length;
    if (record.p.length > 400 || lines > 6) {
      var details = el("details", null, "prompt");
      details.appendChild(el("summary", "prompt (" + record.p.length + " characters, " + lines + " lines)"));
      details.appendChild(el("pre", record.p));
      article.appendChild(details);
    } else {
      article.appendChild(el("div", "prompt"));
      article.appendChild(el("pre", record.p, "prompt"));
    }
    article.appendChild(el("div", "target"));
    var target = record.t + (record.g !== null ? "  (choice " + record.g + ")" : "");
    article.appendChild(el("pre", target, "target"));

    var withLls = record.a.some(function (a) { return a && a.l; });
    var table = el("table", null, "answers");
    var head = el("tr");
    ["model", "answer", "score"].concat(withLls ? ["loglikelihood per choice"] : [])
      .forEach(function (name) { head.appendChild(el("th", name)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    models.forEach(function (i) {
      var a = record.a[i];
      var tr = el("tr", null, a && a.w === true ? "wrong" : a && a.w === false ? "right" : "");
      tr.setAttribute("data-model", i);
      tr.appendChild(el("td", data.models[i]));
      if (!a) {
        tr.appendChild(el("td", "no sample in this run"));
        body.appendChild(tr);
        return;
      }
      var cell = el("td");
      cell.appendChild(el("pre", a.x === null ? "—" : a.x, "answer"));
      if (a.r !== null && a.r !== undefined) {
        var raw = el("details");
        raw.appendChild(el("summary", "before filters"));
        raw.appendChild(el("pre", a.r));
        cell.appendChild(raw);
      }
      tr.appendChild(cell);
      tr.appendChild(el("td", a.s, "num"));
      if (withLls) {
        var lls = el("td", null, "lls");
        if (a.l) {
          a.l.forEach(function (value, j) {
            var cls = (j === a.c ? "chosen " : "") + (j === record.g ? "gold" : "");
            lls.appendChild(el("span", j + ": " + value.toFixed(3), cls.trim()));
          });
        }
        tr.appendChild(lls);
      }
      body.appendChild(tr);
    });
    var scroller = el("div", null, "scroll-x"); // a wide answer scrolls here, not the page
    scroller.appendChild(table);
    article.appendChild(scroller);
    return article;
  }

  function readHash() {
    var hash = location.hash.slice(1);
    linked = null;
    if (/^doc-\d+$/.test(hash)) {
      linked = parseInt(hash.slice(4), 10);
      filterBox.value = "all";
      searchBox.value = "";
      modelBoxes.forEach(function (b) { b.checked = true; });
      return;
    }
    var params = new URLSearchParams(location.hash.slice(1));
    var filter = params.get("filter") || "all";
    if (Array.prototype.some.call(filterBox.options, function (o) { return o.value === filter; })) {
      filterBox.value = filter;
    }
    searchBox.value = params.get("q") || "";
    var wanted = params.getAll("m");
    modelBoxes.forEach(function (b) {
      b.checked = wanted.length === 0 || wanted.indexOf(data.models[parseInt(b.value, 10)]) >= 0;
    });
  }

  function writeHash() {
    var params = new URLSearchParams();
    if (filterBox.value !== "all") params.set("filter", filterBox.value);
    if (searchBox.value.trim()) params.set("q", searchBox.value.trim());
    if (modelBoxes.some(function (b) { return !b.checked; })) {
      chosenModels().forEach(function (i) { params.append("m", data.models[i]); });
    }
    var text = params.toString();
    try {
      history.replaceState(null, "", text ? "#" + text : location.pathname);
    } catch (err) {
      // Some browsers refuse history changes on file://; the page works without them.
    }
  }

  function changed() {
    linked = null;
    page = 0;
    writeHash();
    refresh();
  }

  function start() {
    readHash();
    filterBox.addEventListener("change", changed);
    searchBox.addEventListener("input", changed);
    modelBoxes.forEach(function (b) { b.addEventListener("change", changed); });
    document.getElementById("sample-prev").addEventListener("click", function () {
      linked = null;
      page -= 1;
      render(++generation, chosenModels());
    });
    document.getElementById("sample-next").addEventListener("click", function () {
      linked = null;
      page += 1;
      render(++generation, chosenModels());
    });
    window.addEventListener("hashchange", function () {
      readHash();
      refresh();
    });
    refresh();
  }
})();
