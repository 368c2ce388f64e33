// The penalty-ledger dashboard: plain JavaScript, no framework, no network
// but this server's own JSON API. Every figure is written with textContent
// (never innerHTML), so ids and messages from the data cannot inject markup.
// Figures carry their raw value in data-value, so tests and scripts can read
// them without parsing formatted text.
"use strict";

(function () {
  var LANG_KEY = "penalty.lang";
  // Rows of a list page, fetched from the server page by page (`?rows=` in
  // the URL, 1 to 1000, the API's bound).
  var PAGE_ROWS = Math.min(1000, Math.max(1, parseInt(new URLSearchParams(window.location.search).get("rows"), 10) || 100));
  var DEDUCTIONS_SHOWN = 200;
  var NOTICES_SHOWN = 50;
  var FLAGS_SHOWN = 100;
  var app = document.getElementById("app");
  var params = new URLSearchParams(window.location.search);
  var asOf = params.get("as_of") || "";
  // Where the as-of in force comes from: asked in the URL, the end of the
  // data (when it lies in the past, so that rates are not all "—"), or now.
  var asOfSource = asOf ? "asked" : "now";
  var AS_OF_SOURCES = { "asked": "PageAsked", "now": "PageNow", "end of the data": "PageEndOfTheData" };
  // The language: remembered, else the browser's. Labels of codes come from
  // GET /labels (the core's one table); the page's own words from PHRASES.
  var lang = localStorage.getItem(LANG_KEY) || (/^zh\b/i.test(navigator.language || "") ? "zh-CN" : "en");
  var labels = {};
  var me = { role: "operator", shop_id: null, open: true };

  // The page's own words are the core's phrases (penalty_core::labels::
  // phrases), both languages, served as /assets/phrases.js: t() takes a
  // phrase's name, tf() fills its places {0}, {1} as Phrase::fill does. A
  // test of the server fails when a name used here is missing from the core.
  function t(name) {
    var entry = PHRASES[name];
    return entry ? entry[lang] || entry.en : name;
  }
  function tf(name, values) {
    return t(name).replace(/\{(\d+)\}/g, function (place, index) {
      return index < values.length ? String(values[index]) : place;
    });
  }
  function label(set, code) {
    var entry = labels[set + ":" + code];
    return entry ? entry[lang] || entry.en : code;
  }
  // A countdown in words, as penalty_core::explain::time_left.
  function timeLeft(seconds) {
    var minutes = Math.floor(Math.max(0, seconds) / 60);
    var d = Math.floor(minutes / 1440), h = Math.floor(minutes / 60) % 24, m = minutes % 60;
    if (!d && !h && !m) return t("LessThanAMinute");
    if (!d && !h) return tf("LeftMinutes", [m]);
    if (!d) return tf("LeftHoursMinutes", [h, m]);
    return tf("LeftDaysHours", [d, h]);
  }

  // ---- small helpers -------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined) return;
      if (key === "text") node.textContent = String(value);
      else if (key === "class") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function svg(tag, attrs, children) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = String(attrs[key]);
      else node.setAttribute(key, String(attrs[key]));
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function yuan(fen) {
    var sign = fen < 0 ? "-" : "";
    var abs = Math.abs(fen);
    var whole = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var cents = String(abs % 100).padStart(2, "0");
    return sign + "¥" + whole + "." + cents;
  }

  function withAsOf(path) {
    // Only an asked as-of travels with a link: the end of the data is found
    // again by the next page, and says so.
    return asOf && asOfSource === "asked" ? path + (path.indexOf("?") < 0 ? "?" : "&") + "as_of=" + encodeURIComponent(asOf) : path;
  }

  function uiLink(path, text, attrs) {
    var a = el("a", Object.assign({ href: withAsOf(path) }, attrs || {}), [text]);
    return a;
  }

  function figure(id, label, value, display, extraClass) {
    return el("div", { class: "figure" + (extraClass ? " " + extraClass : "") }, [
      el("div", { class: "label", text: label }),
      el("div", { class: "value", id: id, "data-value": value, text: display === undefined ? value : display })
    ]);
  }

  function setCrumbs(parts) {
    var nav = document.getElementById("crumbs");
    nav.textContent = "";
    parts.forEach(function (part, index) {
      if (index > 0) nav.appendChild(document.createTextNode(" / "));
      nav.appendChild(part);
    });
  }

  function showError(message) {
    app.textContent = "";
    app.appendChild(el("p", { class: "error", id: "error", text: message }));
    app.setAttribute("data-state", "error");
  }

  // ---- the API ---------------------------------------------------------------

  function ApiError(status, code, message) {
    this.status = status; this.code = code; this.message = message;
  }

  // The language switch's choice goes with every request: the server words
  // its sentences (an order's explain, an at-risk line) in it.
  function api(path) {
    return send(path, { headers: { Accept: "application/json", "Accept-Language": lang } });
  }

  // The session cookie (HttpOnly, set by POST /session) goes with every
  // request to this server; the page never holds the token.
  function send(path, options) {
    options.credentials = "same-origin";
    return fetch(path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        if (!response.ok) {
          throw new ApiError(response.status, body.error || "error", body.message || response.statusText);
        }
        return body;
      });
    });
  }

  function query(path, extra) {
    var search = new URLSearchParams(extra || {});
    if (asOf) search.set("as_of", asOf);
    var text = search.toString();
    return path + (text ? "?" + text : "");
  }

  // The booked ledger (R14), a server page at a time: the first PAGE_ROWS
  // postings, and "more" appends the next page (GET /shops/{id}/postings is
  // paged with limit and offset). It asks once `after` settles.
  function bookedLedger(shopId, after) {
    var path = "/shops/" + encodeURIComponent(shopId) + "/postings";
    var section = el("section", { id: "shop-booked" }, [el("h2", { text: t("PageBookedLedger") })]);
    var intro = el("p", { class: "muted" });
    var body = el("tbody");
    var more = el("button", { type: "button", id: "postings-more", hidden: "hidden" }, [t("PageMore")]);
    var shown = { rows: 0, corrections: 0, next: 0 };
    section.appendChild(intro);
    // Every posting, as `penalty export postings --shop ID --format csv`.
    section.appendChild(el("a", { id: "postings-csv", class: "button", download: "postings.csv",
      href: query(path + ".csv") }, [t("PageDownloadCsv")]));
    function describeShown(total) {
      var counts = shown.rows < total
        ? tf("PostingsCountSome", [total, shown.rows, shown.corrections])
        : tf("PostingsCountAll", [total, shown.corrections]);
      intro.textContent = tf("BookedIntro", [counts]);
    }
    function load() {
      more.setAttribute("disabled", "disabled");
      return api(query(path, { limit: PAGE_ROWS, offset: shown.next })).then(function (page) {
        if (!page.total) {
          section.setAttribute("data-booked-fen", page.booked_fen);
          section.setAttribute("data-postings", 0);
          section.setAttribute("data-corrections", 0);
          describeShown(0);
          section.appendChild(el("p", { class: "muted", text: t("PageNothingBooked") }));
          return;
        }
        if (!shown.rows) {
          section.appendChild(el("table", { id: "shop-postings" }, [
            el("thead", {}, [el("tr", {}, ["PageRunDate", "PageOrder", "PageJudgment", "PageSettleDate", "PageKind", "PageAmount", "PageCause"].map(function (h) {
              return el("th", { text: t(h) });
            }))]), body]));
          section.appendChild(more);
        }
        page.postings.forEach(function (p) {
          var correction = p.kind !== "charge";
          if (correction) shown.corrections += 1;
          body.appendChild(el("tr", { class: correction ? "correction" : null, "data-kind": p.kind, "data-order-id": p.order_id }, [
            el("td", { text: p.run_date }),
            el("td", {}, [uiLink("/ui/orders/" + encodeURIComponent(p.order_id), p.order_id, { class: "order-link" })]),
            el("td", { class: "num", text: p.judgment }), el("td", { text: p.settle_date }),
            el("td", {}, [el("span", { class: "tag" + (correction ? " correction" : ""), text: label("posting_kind", p.kind) })]),
            el("td", { class: "num", text: yuan(p.amount_fen) }),
            el("td", { class: correction ? "cause" : "muted", text: p.cause })
          ]));
        });
        shown.rows += page.postings.length;
        shown.next = page.next;
        // data-corrections counts the corrections among the rows drawn.
        section.setAttribute("data-booked-fen", page.booked_fen);
        section.setAttribute("data-postings", page.total);
        section.setAttribute("data-corrections", shown.corrections);
        describeShown(page.total);
        more.removeAttribute("disabled");
        if (page.next === null) more.setAttribute("hidden", "hidden"); else more.removeAttribute("hidden");
      });
    }
    more.addEventListener("click", function () { if (shown.next !== null) load(); });
    section.ready = after.then(load);
    return section;
  }

  // ---- session -----------------------------------------------------------------

  function renderSession() {
    var area = document.getElementById("session");
    area.textContent = "";
    area.appendChild(el("button", { type: "button", id: "lang", lang: lang === "zh-CN" ? "en" : "zh-CN", onclick: function () {
      localStorage.setItem(LANG_KEY, lang === "zh-CN" ? "en" : "zh-CN");
      window.location.reload();
    } }, [lang === "zh-CN" ? "English" : "中文"]));
    if (!me.open) {
      area.appendChild(el("span", { id: "who", text: me.role === "seller" ? t("PageSignedInAsShop") + " " + me.shop_id : t("PageSignedInAsOperator") }));
      area.appendChild(el("button", { type: "button", id: "logout", onclick: function () {
        send("/session", { method: "DELETE" }).catch(function () { return null; }).then(function () {
          window.location.assign("/");
        });
      } }, [t("PageSignOut")]));
    }
  }

  function renderLogin(message) {
    app.textContent = "";
    var input = el("input", { type: "password", id: "token", name: "token", autocomplete: "current-password" });
    var note = el("p", { class: "muted", id: "login-message", text: message || t("PageSignInHint") });
    var form = el("form", { id: "login", onsubmit: function (event) {
      event.preventDefault();
      send("/session", { method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ token: input.value.trim() }) }).then(function (who) {
        window.location.assign(who.role === "seller" ? withAsOf("/ui/shops/" + encodeURIComponent(who.shop_id)) : window.location.href);
      }).catch(function () {
        note.textContent = t("PageTokenNotValid");
        note.className = "error";
      });
    } }, [
      el("h1", { text: t("PageSignIn") }),
      note,
      el("label", { for: "token", text: t("PageToken") }),
      input,
      el("button", { type: "submit", id: "sign-in" }, [t("PageSignIn")])
    ]);
    app.appendChild(form);
    app.setAttribute("data-state", "login");
  }

  function fail(error) {
    if (error instanceof ApiError && error.status === 401) {
      renderLogin();
    } else if (error instanceof ApiError) {
      showError(error.message);
    } else {
      showError(tf("PageCannotReach", [error]));
    }
  }

  // ---- pages -------------------------------------------------------------------

  // The operator's shop list, ranked and paged by the server (GET /shops:
  // sort, min_orders, limit, offset; penalty_core::ranking is the one home of
  // the order). A heading's button asks the server for that order, worst
  // first; the page never holds more than PAGE_ROWS shops.
  var SHOP_SORTS = [
    { sort: "shop", label: "PageShopColumn", id: "sort-shop" },
    { sort: "judgments", label: "PageTimeoutsJudgments", id: "sort-timeouts" },
    { sort: "charged", label: "PageCharged", id: "sort-charges" },
    { sort: "rate", label: "PageTimeoutRate30Days", id: "sort-rate" }
  ];
  function shopsPage() {
    setCrumbs([]);
    document.title = t("PageShops") + " — penalty-ledger";
    var view = { sort: params.get("sort") || "shop", minOrders: parseInt(params.get("min_orders"), 10) || 0, offset: 0 };
    app.textContent = "";
    app.appendChild(el("h1", { text: t("PageShops") }));
    var figures = el("div", { class: "figures" });
    var heading = el("h2", { text: t("PageWorstShops") });
    var sortSelect = el("select", { id: "shops-sort", "aria-label": t("PageSortBy") }, SHOP_SORTS.map(function (s) {
      return el("option", { value: s.sort, text: t(s.label) });
    }));
    sortSelect.value = view.sort;
    var minOrders = el("input", { type: "number", id: "shops-min-orders", min: 0, value: view.minOrders, size: 6 });
    var range = el("span", { id: "shops-range", class: "muted" });
    var prev = el("button", { type: "button", id: "shops-prev" }, [t("PagePrevious")]);
    var next = el("button", { type: "button", id: "shops-next" }, [t("PageNext")]);
    var holder = el("div", { id: "shops-holder" });
    app.appendChild(figures);
    app.appendChild(heading);
    app.appendChild(el("div", { class: "controls" }, [
      el("label", { for: "shops-sort" }, [t("PageSortBy")]), sortSelect,
      el("label", { for: "shops-min-orders" }, [t("PageMinOrders")]), minOrders, prev, range, next]));
    app.appendChild(holder);

    var columns = [
      { key: "shop_id", label: "PageShopColumn", sort: "shop", cell: function (s) { return uiLink("/ui/shops/" + encodeURIComponent(s.shop_id), s.shop_id, { class: "shop-link" }); } },
      { key: "orders", label: "PageOrdersColumn", num: true, cell: function (s) { return String(s.orders); } },
      { key: "charged_fen", label: "PageCharged", num: true, sort: "charged", cell: function (s) { return yuan(s.charged_fen); } },
      { key: "waived_fen", label: "PageWaivedCap", num: true, cell: function (s) { return yuan(s.waived_fen); } },
      { key: "judgments", label: "PageTimeoutsJudgments", num: true, sort: "judgments", cell: function (s) { return String(s.judgments); } },
      { key: "timeout_rate", label: "PageTimeoutRate30Days", num: true, sort: "rate",
        cell: function (s) { return s.rating.timeout_rate === null ? "—" : (100 * s.rating.timeout_rate).toFixed(1) + "%"; } },
      { key: "flags", label: "PageClosureFlags", num: true, cell: function (s) { return String(s.closure_review_total); } },
      { key: "bans", label: "PageBannedProducts", num: true, cell: function (s) { return String(s.banned_products_total); } },
      { key: "deposit_balance_fen", label: "PageDeposit", num: true, cell: function (s) { return yuan(s.deposit_balance_fen); } }
    ];

    function load() {
      var extra = { sort: view.sort, limit: PAGE_ROWS, offset: view.offset };
      if (view.minOrders > 0) extra.min_orders = view.minOrders;
      app.setAttribute("data-loading", "true");
      return api(query("/shops", extra)).then(function (page) {
        figures.textContent = "";
        figures.appendChild(figure("shops-count", t("PageShopsFigure"), page.total));
        figures.appendChild(figure("shops-charged", t("PageChargedAllShops"), page.charged_fen, yuan(page.charged_fen)));
        figures.appendChild(figure("shops-as-of", t("PageAsOf"), page.shops.length ? page.shops[0].as_of : (asOf || "now"), undefined, "text"));
        holder.textContent = "";
        if (!page.shops.length) {
          holder.appendChild(el("p", { class: "muted", text: t("PageNoShops") }));
        } else {
          var headRow = el("tr", {}, columns.map(function (c) {
            var sorted = c.sort === view.sort;
            var sorting = SHOP_SORTS.filter(function (s) { return s.sort === c.sort; })[0];
            var content = c.sort ? el("button", { type: "button", id: sorting.id, onclick: function () {
              view.sort = c.sort; view.offset = 0; sortSelect.value = c.sort; load();
            } }, [t(c.label)]) : t(c.label);
            return el("th", { class: c.num ? "num" : null, scope: "col", "data-key": c.key,
              "aria-sort": sorted ? (c.sort === "shop" ? "ascending" : "descending") : null }, [content]);
          }));
          holder.appendChild(el("table", { id: "shops-table", "data-sort": view.sort }, [el("thead", {}, [headRow]),
            el("tbody", {}, page.shops.map(function (s) {
              return el("tr", { "data-id": s.shop_id }, columns.map(function (c) {
                var content = c.cell(s);
                return el("td", { class: c.num ? "num" : null, "data-field": c.key }, [content]);
              }));
            }))]));
        }
        var first = page.shops.length ? view.offset + 1 : 0;
        range.textContent = first + "–" + (view.offset + page.shops.length) + " " + t("PageOf") + " " + page.total;
        holder.setAttribute("data-total", page.total);
        holder.setAttribute("data-offset", view.offset);
        prev.disabled = view.offset === 0;
        next.disabled = page.next === null;
        app.removeAttribute("data-loading");
        app.setAttribute("data-state", "ready");
      }).catch(fail);
    }
    sortSelect.addEventListener("change", function () { view.sort = sortSelect.value; view.offset = 0; load(); });
    minOrders.addEventListener("change", function () { view.minOrders = Math.max(0, parseInt(minOrders.value, 10) || 0); view.offset = 0; load(); });
    prev.addEventListener("click", function () { view.offset = Math.max(0, view.offset - PAGE_ROWS); load(); });
    next.addEventListener("click", function () { view.offset += PAGE_ROWS; load(); });
    return load();
  }

  // GET /shops/{id}/days as the chart's rows: per local day, standing
  // judgments by the day judged, fen charged and cap hits (deductions the
  // daily cap waived in whole or in part, R5) by settle date.
  function chartRows(days) {
    return days.days.map(function (d) {
      return { day: d.date, judgments: d.judgments, charged: d.charged_fen, capHits: d.cap_hits };
    });
  }

  function dayChart(rows) {
    var series = [
      { key: "judgments", label: t("PageJudgments"), cls: "bar-judgments", fmt: String },
      { key: "charged", label: t("PageCharged"), cls: "bar-charged", fmt: yuan },
      { key: "capHits", label: t("PageCapHits"), cls: "bar-cap", fmt: String }
    ];
    var barWidth = 14, gap = 4, left = 70, rowHeight = 70, top = 8;
    var width = left + rows.length * (barWidth + gap) + 10;
    var height = top + series.length * (rowHeight + 16) + 40;
    var root = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height, role: "img",
      "aria-label": t("PagePerDayChart") });
    series.forEach(function (s, index) {
      var baseY = top + index * (rowHeight + 16) + rowHeight;
      var max = Math.max.apply(null, rows.map(function (r) { return r[s.key]; }).concat([1]));
      root.appendChild(svg("text", { x: 4, y: baseY - rowHeight / 2, class: "row-label", text: s.label }));
      root.appendChild(svg("text", { x: 4, y: baseY - rowHeight / 2 + 13, text: "max " + s.fmt(max) }));
      root.appendChild(svg("line", { x1: left, x2: width - 6, y1: baseY + 0.5, y2: baseY + 0.5, stroke: "#cbd2dc" }));
      rows.forEach(function (r, i) {
        var value = r[s.key];
        var h = Math.round((value / max) * rowHeight);
        var x = left + i * (barWidth + gap);
        var rect = svg("rect", { x: x, y: baseY - h, width: barWidth, height: Math.max(h, value ? 1 : 0),
          class: s.cls, "data-day": r.day, "data-series": s.key, "data-value": value });
        rect.appendChild(svg("title", { text: r.day + ": " + s.fmt(value) + " " + s.label }));
        root.appendChild(rect);
      });
    });
    var labelY = top + series.length * (rowHeight + 16) + 4;
    rows.forEach(function (r, i) {
      if (i % Math.max(1, Math.ceil(rows.length / 20)) !== 0) return;
      var x = left + i * (barWidth + gap) + barWidth / 2;
      root.appendChild(svg("text", { x: x, y: labelY, transform: "rotate(60 " + x + " " + labelY + ")", text: r.day.slice(5) }));
    });
    return root;
  }

  // What comes within 24 h unless the seller acts: the seller's first screen.
  function atRiskSection(report) {
    var section = el("section", { id: "at-risk", "data-total": report.total });
    section.appendChild(el("h2", { text: t("PageAtRisk24h") + " (" + report.total + ")" }));
    if (!report.orders.length) {
      section.appendChild(el("p", { class: "muted", text: t("PageNothingAtRisk") }));
      return section;
    }
    section.appendChild(el("table", { id: "at-risk-table" }, [
      el("thead", {}, [el("tr", {}, [t("PageOrder"), t("PageWhatComes"), t("PageWhen"), t("PageTimeLeft"), t("PageCost")].map(function (h) {
        return el("th", { scope: "col", text: h });
      }))]),
      el("tbody", {}, report.orders.map(function (o) {
        var cost = o.next === "judgment" ? (o.deduction_fen ? yuan(o.deduction_fen) : "") + (o.bans_product ? " + " + t("PageBan") + " " + o.product_id : "")
          : o.next === "auto_close" ? yuan(o.refund_due_fen || 0) : t("PageClosureReview");
        return el("tr", { "data-order-id": o.order_id, title: o.line }, [
          el("td", {}, [uiLink("/ui/orders/" + encodeURIComponent(o.order_id), o.order_id, { class: "order-link" })]),
          el("td", { "data-code": o.next, text: label("next_step", o.next) + (o.judgment ? " #" + o.judgment : "") }),
          el("td", { class: "time", text: o.at }),
          el("td", { class: "num countdown", "data-value": o.seconds_left, text: timeLeft(o.seconds_left) }),
          el("td", { class: "num", text: cost })
        ]);
      }))
    ]));
    return section;
  }

  // The notices inbox (R9): the newest NOTICES_SHOWN first, read from the
  // feed backwards (GET /shops/{id}/notices?newest=true, a page of 1000);
  // "more" shows NOTICES_SHOWN older ones, fetching the next older page
  // (before=next) when those drawn run out. It asks once `after` settles.
  function noticesSection(shopId, after) {
    var path = "/shops/" + encodeURIComponent(shopId) + "/notices";
    var section = el("section", { id: "notices" });
    var heading = el("h2", { text: t("PageNotices") });
    var body = el("tbody");
    var more = el("button", { type: "button", id: "notices-more", hidden: "hidden" }, [t("PageMore")]);
    var state = { fetched: [], drawn: 0, next: null, started: false };
    section.appendChild(heading);
    function row(n) {
      return el("tr", { "data-cursor": n.cursor }, [
        el("td", { class: "time", text: n.judged_at }),
        el("td", {}, [uiLink("/ui/orders/" + encodeURIComponent(n.order_id), n.order_id, { class: "order-link" })]),
        el("td", { class: "num", text: n.judgment }),
        el("td", { class: "num", text: n.posting ? yuan(n.posting.amount_fen) : n.deduction_fen === null || n.deduction_fen === undefined ? "" : yuan(n.deduction_fen) }),
        el("td", { class: n.posting ? "cause" : null }, [n.revoked ? el("span", { class: "tag ok", text: t("PageRevoked") }) : "",
          n.posting ? el("span", { class: "tag correction", "data-code": n.posting.kind, title: n.posting.cause, text: label("posting_kind", n.posting.kind) }) : ""])
      ]);
    }
    function draw() {
      var upTo = Math.min(state.fetched.length, state.drawn + NOTICES_SHOWN);
      for (; state.drawn < upTo; state.drawn += 1) body.appendChild(row(state.fetched[state.drawn]));
      // data-count: the notices read so far (every one when `more` is hidden).
      section.setAttribute("data-count", state.fetched.length);
      heading.textContent = t("PageNotices") + " (" + state.fetched.length + (state.next ? "+" : "") + ")";
      if (state.drawn < state.fetched.length || state.next) more.removeAttribute("hidden"); else more.setAttribute("hidden", "hidden");
    }
    function fetchPage() {
      var extra = { limit: 1000 };
      if (state.next) extra.before = state.next; else extra.newest = "true";
      return api(query(path, extra)).then(function (page) {
        state.fetched = state.fetched.concat(page.notices);
        state.next = page.next;
        if (!state.started) {
          state.started = true;
          if (!state.fetched.length) {
            section.appendChild(el("p", { class: "muted", text: t("PageNoNotice") }));
          } else {
            section.appendChild(el("table", { id: "notices-table" }, [
              el("thead", {}, [el("tr", {}, [t("PageJudgedAt"), t("PageOrder"), t("PageJudgment"), t("PageDeduction"), t("Status")].map(function (h) {
                return el("th", { scope: "col", text: h });
              }))]), body]));
            section.appendChild(more);
          }
        }
        draw();
      });
    }
    more.addEventListener("click", function () {
      if (state.drawn < state.fetched.length) draw();
      else if (state.next) { more.setAttribute("disabled", "disabled"); fetchPage().then(function () { more.removeAttribute("disabled"); }); }
    });
    section.ready = after.then(fetchPage);
    return section;
  }

  // One shop's orders, a server page at a time (GET /orders: limit, offset,
  // and the filters status, violating, paid_from, paid_to, capped_day,
  // closure_review), so that no page renders more than PAGE_ROWS rows; the
  // CSV link downloads every row of the same filter (GET /orders.csv).
  function ordersSection(shopId) {
    var view = { offset: 0, sort: "order", status: "", violating: false, paidFrom: "", paidTo: "", capped: false, closure: false };
    var section = el("section", { id: "orders" });
    var heading = el("h2", { text: t("PageOrders") });
    var status = el("select", { id: "orders-status", "aria-label": t("Status") }, [el("option", { value: "", text: t("PageAllStatuses") })].concat(
      ["awaiting_shipment", "shipped", "refunded", "auto_closed"].map(function (code) {
        return el("option", { value: code, text: label("order_status", code) });
      })));
    var violating = el("input", { type: "checkbox", id: "orders-violating" });
    var paidFrom = el("input", { type: "date", id: "orders-paid-from" });
    var paidTo = el("input", { type: "date", id: "orders-paid-to" });
    var capped = el("input", { type: "checkbox", id: "orders-capped" });
    var closure = el("input", { type: "checkbox", id: "orders-closure" });
    var download = el("a", { id: "orders-csv", class: "button", download: "orders.csv" }, [t("PageDownloadCsv")]);
    var range = el("span", { id: "orders-range", class: "muted" });
    var prev = el("button", { type: "button", id: "orders-prev" }, [t("PagePrevious")]);
    var next = el("button", { type: "button", id: "orders-next" }, [t("PageNext")]);
    var holder = el("div", { id: "orders-holder" });
    section.appendChild(heading);
    section.appendChild(el("div", { class: "controls" }, [status,
      el("label", { for: "orders-violating" }, [violating, " " + t("PageOnlyWithAJudgment")]),
      el("label", { for: "orders-paid-from" }, [t("PagePaidFrom") + " ", paidFrom]),
      el("label", { for: "orders-paid-to" }, [t("PagePaidTo") + " ", paidTo]),
      el("label", { for: "orders-capped" }, [capped, " " + t("PageOnlyOnCappedDays")]),
      el("label", { for: "orders-closure" }, [closure, " " + t("PageOnlyUnderClosureReview")]),
      download, prev, range, next]));
    section.appendChild(holder);

    function filters() {
      var extra = { shop: shopId };
      if (view.status) extra.status = view.status;
      if (view.violating) extra.violating = "true";
      if (view.paidFrom) extra.paid_from = view.paidFrom;
      if (view.paidTo) extra.paid_to = view.paidTo;
      if (view.capped) extra.capped_day = "true";
      if (view.closure) extra.closure_review = "true";
      return extra;
    }
    // The page's rows in the server's order (GET /orders?sort=): a sortable
    // column's header asks the server for that order from the first page,
    // so that every page follows it, not only the one on screen.
    var columns = [
      { key: "order_id", sort: "order", label: t("PageOrder"),
        cell: function (o) { return uiLink("/ui/orders/" + encodeURIComponent(o.order_id), o.order_id, { class: "order-link" }); } },
      { key: "status", sort: "status", label: t("Status"), cell: function (o) { return label("order_status", o.status); } },
      { key: "judgments", sort: "judgments", label: t("PageJudgments"), num: true, cell: function (o) { return String(o.judgments); } },
      { key: "charged_fen", sort: "charged", label: t("PageCharged"), num: true, cell: function (o) { return yuan(o.charged_fen); } },
      { key: "waived_fen", label: t("PageWaived"), num: true, cell: function (o) { return yuan(o.waived_fen); } },
      { key: "paid_at", sort: "paid", label: t("PagePaidAt"), cell: function (o) { return o.paid_at; } },
      { key: "product_banned", label: t("PageBan"),
        cell: function (o) { return o.product_banned ? el("span", { class: "tag bad", text: t("PageBanned") }) : ""; } },
      { key: "closure_review", label: t("PageFlag"),
        cell: function (o) { return o.closure_review ? el("span", { class: "tag bad", text: t("PageFlagged") }) : ""; } }
    ];
    // Money and judgments sort most first; the others ascending.
    var DESCENDING = { charged: true, judgments: true };
    function ordersTable(orders) {
      var headRow = el("tr", {}, columns.map(function (c) {
        var content = c.label;
        var attrs = { class: c.num ? "num" : null, "data-key": c.key, scope: "col" };
        if (c.sort) {
          content = el("button", { type: "button", id: "orders-sort-" + c.sort, onclick: function () {
            if (view.sort === c.sort) return;
            view.sort = c.sort; view.offset = 0; load();
          } }, [c.label]);
          attrs["aria-sort"] = c.sort === view.sort ? (DESCENDING[c.sort] ? "descending" : "ascending") : "none";
        }
        return el("th", attrs, [content]);
      }));
      var body = el("tbody", {}, orders.map(function (o) {
        return el("tr", { "data-id": o.order_id }, columns.map(function (c) {
          return el("td", { class: c.num ? "num" : null, "data-field": c.key, "data-value": String(o[c.key]) }, [c.cell(o)]);
        }));
      }));
      return el("table", { id: "shop-orders-table", "data-sort": view.sort }, [el("thead", {}, [headRow]), body]);
    }
    // Only the answer to the latest request is shown: a filter changed
    // twice quickly sends two, and the first may come back last.
    var asked = 0;
    function load() {
      var extra = filters();
      download.setAttribute("href", query("/orders.csv", extra));
      // The CSV keeps the export's order (GET /orders.csv takes no sort).
      if (view.sort !== "order") extra.sort = view.sort;
      extra.limit = PAGE_ROWS;
      extra.offset = view.offset;
      section.setAttribute("data-loading", "true");
      var mine = ++asked;
      return api(query("/orders", extra)).then(function (page) {
        if (mine !== asked) return;
        holder.textContent = "";
        holder.appendChild(ordersTable(page.orders));
        var first = page.orders.length ? view.offset + 1 : 0;
        range.textContent = first + "–" + (view.offset + page.orders.length) + " " + t("PageOf") + " " + page.total;
        section.setAttribute("data-total", page.total);
        section.setAttribute("data-offset", view.offset);
        heading.textContent = t("PageOrders") + " (" + page.total + ")";
        prev.disabled = view.offset === 0;
        next.disabled = page.next === null;
        section.removeAttribute("data-loading");
      }).catch(fail);
    }
    status.addEventListener("change", function () { view.status = status.value; view.offset = 0; load(); });
    violating.addEventListener("change", function () { view.violating = violating.checked; view.offset = 0; load(); });
    paidFrom.addEventListener("change", function () { view.paidFrom = paidFrom.value; view.offset = 0; load(); });
    paidTo.addEventListener("change", function () { view.paidTo = paidTo.value; view.offset = 0; load(); });
    capped.addEventListener("change", function () { view.capped = capped.checked; view.offset = 0; load(); });
    closure.addEventListener("change", function () { view.closure = closure.checked; view.offset = 0; load(); });
    prev.addEventListener("click", function () { view.offset = Math.max(0, view.offset - PAGE_ROWS); load(); });
    next.addEventListener("click", function () { view.offset += PAGE_ROWS; load(); });
    section.setAttribute("data-loading", "true");
    section.ready = load();
    return section;
  }

  // Search by order or shop id, from any page: an order first, then a shop.
  function search(id) {
    var path = "/ui/orders/" + encodeURIComponent(id);
    return api(query("/orders/" + encodeURIComponent(id))).then(function () {
      window.location.assign(withAsOf(path));
    }, function () {
      return api(query("/shops/" + encodeURIComponent(id), { summary: "true" })).then(function () {
        window.location.assign(withAsOf("/ui/shops/" + encodeURIComponent(id)));
      }, function () {
        showError(t("PageNothingFound") + " " + id);
      });
    });
  }

  // A shop's page, drawn a section at a time as each section's own request
  // answers (issue 21: the largest shop's page is usable within 1 s at 1M
  // orders): the figures and the two flag lists from the summary report
  // (no deductions), at-risk, the newest notices, the orders' first page and
  // the booked ledger's first page ask at once; the chart (GET
  // /shops/{id}/days) and the newest deductions (a page of GET
  // /shops/{id}/deductions) ask after those have answered. The page is `data-state=ready` when every
  // section is drawn.
  function shopPage(shopId) {
    document.title = shopId + " — penalty-ledger";
    setCrumbs([uiLink("/", "shops"), el("span", { text: shopId })]);
    var base = "/shops/" + encodeURIComponent(shopId);
    app.textContent = "";
    app.appendChild(el("h1", { id: "shop-title", "data-shop-id": shopId, text: t("PageShopCrumb") + " " + shopId }));
    // A section's place, kept in page order until its answer replaces it.
    function slot() {
      var holder = el("div", { class: "muted loading", text: t("PageLoading") });
      app.appendChild(holder);
      return holder;
    }
    // "first N / total" under a list drawn only in part.
    function shownOf(id, total) {
      return total > FLAGS_SHOWN ? el("p", { class: "muted", id: id, text: t("PageFirst") + " " + FLAGS_SHOWN + " / " + total }) : null;
    }
    function fill(holder, nodes) {
      nodes.forEach(function (node) { holder.parentNode.insertBefore(node, holder); });
      holder.parentNode.removeChild(holder);
    }
    // The orders' first page asks first: on a busy server the lighter
    // sections below the first screen (notices, booked ledger) wait for it.
    var ordersPart = ordersSection(shopId);
    var ordersAnswered = ordersPart.ready.catch(function () { return null; });
    var figuresSlot = slot(), atRiskSlot = slot(), noticesPart = noticesSection(shopId, ordersAnswered);
    app.appendChild(noticesPart);
    var chartSlot = slot(), flagsSlot = slot();
    app.appendChild(ordersPart);
    var deductionsSlot = slot();
    var bookedPart = bookedLedger(shopId, ordersAnswered);
    app.appendChild(bookedPart);

    var summary = api(query(base, { summary: "true", limit: FLAGS_SHOWN })).then(function (report) {
      fill(figuresSlot, [el("div", { class: "figures" }, [
        figure("shop-orders", t("PagePaidOrders"), report.orders),
        figure("shop-judgments", t("PageJudgmentsStanding"), report.judgments),
        figure("shop-violating", t("PageOrdersJudged"), report.violating_orders),
        figure("shop-charged", t("PageCharged"), report.charged_fen, yuan(report.charged_fen)),
        figure("shop-waived", t("PageWaivedByDailyCap"), report.waived_fen, yuan(report.waived_fen)),
        figure("shop-pending", t("PagePending"), report.pending_fen, yuan(report.pending_fen)),
        figure("shop-booked-fen", t("PageBooked"), report.booked_fen, yuan(report.booked_fen)),
        figure("shop-deposit", t("PageDepositBalance"), report.deposit_balance_fen, yuan(report.deposit_balance_fen),
          report.deposit_balance_fen < 0 ? "negative" : null),
        figure("shop-timeout-rate", tf("PageTimeoutRateDays", [report.rating.window_days]),
          report.rating.timeout_rate === null ? "" : report.rating.timeout_rate,
          report.rating.timeout_rate === null ? "—" : (100 * report.rating.timeout_rate).toFixed(1) + "%")
      ])]);
      fill(flagsSlot, [el("div", { class: "columns" }, [
        el("section", {}, [
          el("h2", { text: t("BannedProducts") }),
          report.banned_products.length
            ? el("table", { id: "shop-bans" }, [
                el("thead", {}, [el("tr", {}, [el("th", { text: t("PageProduct") }), el("th", { text: t("PageBannedAt") }), el("th", { text: t("PageByOrder") })])]),
                el("tbody", {}, report.banned_products.slice(0, FLAGS_SHOWN).map(function (b) {
                  return el("tr", { "data-product-id": b.product_id }, [el("td", { text: b.product_id }), el("td", { text: b.banned_at }),
                    el("td", {}, [uiLink("/ui/orders/" + encodeURIComponent(b.order_id), b.order_id, { class: "order-link" })])]);
                }))])
            : el("p", { class: "muted", id: "shop-bans", text: t("PageNone") }),
          shownOf("shop-bans-shown", report.banned_products_total)
        ]),
        el("section", {}, [
          el("h2", { text: t("PageClosureReviewFlags") }),
          report.closure_review.length
            ? el("table", { id: "shop-flags" }, [
                el("thead", {}, [el("tr", {}, [el("th", { text: t("PageOrder") }), el("th", { text: t("PageFlaggedAt") })])]),
                el("tbody", {}, report.closure_review.slice(0, FLAGS_SHOWN).map(function (f) {
                  return el("tr", { "data-order-id": f.order_id }, [
                    el("td", {}, [uiLink("/ui/orders/" + encodeURIComponent(f.order_id), f.order_id, { class: "order-link" })]),
                    el("td", { text: f.flagged_at })]);
                }))])
            : el("p", { class: "muted", id: "shop-flags", text: t("PageNone") }),
          // Every flagged order: the orders section's closure-review filter.
          shownOf("shop-flags-shown", report.closure_review_total)
        ])
      ])]);
    });
    var atRisk = api(query(base + "/at-risk", { within: "24h", limit: 200 })).then(function (report) {
      fill(atRiskSlot, [atRiskSection(report)]);
    });
    // The chart and the deductions start once the page's first screen has
    // answered, so that they do not compete with it for the server.
    var first = Promise.all([summary, atRisk, noticesPart.ready, ordersPart.ready].map(function (p) {
      return p.catch(function () { return null; });
    }));
    var history = first.then(function () {
      return Promise.all([api(query(base + "/days")),
        api(query(base + "/deductions", { newest: "true", limit: DEDUCTIONS_SHOWN }))]);
    }).then(function (results) {
      var days = chartRows(results[0]), page = results[1];
      var totals = days.reduce(function (t, d) {
        return { judgments: t.judgments + d.judgments, charged: t.charged + d.charged, capHits: t.capHits + d.capHits };
      }, { judgments: 0, charged: 0, capHits: 0 });
      var chart = el("div", { class: "chart", id: "shop-chart", "data-days": days.length,
        "data-total-judgments": totals.judgments, "data-total-charged": totals.charged, "data-total-cap-hits": totals.capHits });
      if (days.length) chart.appendChild(dayChart(days));
      else chart.appendChild(el("p", { class: "muted", text: t("PageNoJudgment") }));
      fill(chartSlot, [el("h2", { text: t("PagePerDay") }),
        el("p", { class: "legend muted" }, [
          el("span", {}, [el("i", { class: "sw-judgments" }), t("PageJudgmentsByDayJudged")]),
          el("span", {}, [el("i", { class: "sw-charged" }), t("PageChargedBySettleDate")]),
          el("span", {}, [el("i", { class: "sw-cap" }), t("PageCapHitsLegend")])
        ]), chart]);

      var parts = [el("h2", { text: t("DeductionsRules") })];
      // The newest DEDUCTIONS_SHOWN only: a large shop has thousands.
      var deductions = page.deductions;
      if (page.total > deductions.length) {
        parts.push(el("p", { class: "muted", id: "deductions-shown", text: t("PageNewest") + " " + deductions.length + " / " + page.total }));
      }
      parts.push(deductions.length ? el("table", { id: "shop-deductions" }, [
        el("thead", {}, [el("tr", {}, ["PageOrder", "PageJudgment", "PageJudgedAt", "PageSettleDate", "PageAmount", "PageCharged", "PageWaived", "Status"].map(function (h) {
          return el("th", { text: t(h) });
        }))]),
        el("tbody", {}, deductions.map(function (d) {
          return el("tr", {}, [
            el("td", {}, [uiLink("/ui/orders/" + encodeURIComponent(d.order_id), d.order_id, { class: "order-link" })]),
            el("td", { class: "num", text: d.judgment }), el("td", { text: d.judged_at }), el("td", { text: d.settle_date }),
            el("td", { class: "num", text: yuan(d.amount_fen) }), el("td", { class: "num", text: yuan(d.charged_fen) }),
            el("td", { class: "num", text: yuan(d.waived_fen) }), el("td", {}, [el("span", { class: "tag", "data-code": d.status, text: label("deduction_status", d.status) })])
          ]);
        }))
      ]) : el("p", { class: "muted", text: t("PageNone") }));
      fill(deductionsSlot, parts);
    });
    // An unknown shop (or a refused one) fails the page as before; the
    // sections' own requests would fail the same way.
    return Promise.all([summary, atRisk, noticesPart.ready, ordersPart.ready, bookedPart.ready, history]).then(function () {
      app.setAttribute("data-state", "ready");
    });
  }

  function describe(event) {
    var parts = [];
    ["shop_id", "product_id", "tracking_no", "carrier", "judgment", "reason", "ship_by"].forEach(function (key) {
      if (event[key] !== undefined && event[key] !== null) parts.push(key + " " + event[key]);
    });
    if (event.amount_fen !== undefined) parts.push(yuan(event.amount_fen));
    return parts.join(", ");
  }

  // An RFC 3339 instant written in `offset` (±HH:MM): the same instant,
  // only its wall-clock digits change. Milliseconds are kept, finer digits
  // only when the offset already matches.
  function inOffset(text, offset) {
    if (text.slice(-6) === offset) return text;
    var ms = Date.parse(text);
    if (isNaN(ms)) return text;
    var minutes = (offset[0] === "-" ? -1 : 1) * (parseInt(offset.slice(1, 3), 10) * 60 + parseInt(offset.slice(4, 6), 10));
    return new Date(ms + minutes * 60000).toISOString().replace(".000Z", "Z").replace("Z", offset);
  }

  function orderPage(orderId) {
    document.title = orderId + " — penalty-ledger";
    var base = "/orders/" + encodeURIComponent(orderId);
    return Promise.all([api(query(base)), api(query(base + "/events"))]).then(function (results) {
      var report = results[0], timeline = results[1].events;
      setCrumbs([uiLink("/", "shops"), uiLink("/ui/shops/" + encodeURIComponent(report.shop_id), report.shop_id, { id: "order-shop-link" }),
        el("span", { text: orderId })]);
      var charged = report.deductions.reduce(function (sum, d) { return sum + d.charged_fen; }, 0);
      var waived = report.deductions.reduce(function (sum, d) { return sum + d.waived_fen; }, 0);
      var standing = report.judgments.filter(function (j) { return !j.revoked; }).length;
      app.textContent = "";
      app.appendChild(el("h1", { id: "order-title", "data-order-id": report.order_id, "data-shop-id": report.shop_id,
        text: "Order " + report.order_id }));
      app.appendChild(el("div", { class: "figures" }, [
        figure("order-status", t("Status"), report.status, label("order_status", report.status), "text"),
        figure("order-judgments", t("PageJudgmentsStanding"), standing),
        figure("order-charged", t("PageCharged"), charged, yuan(charged)),
        figure("order-waived", t("PageWaivedByCap"), waived, yuan(waived)),
        figure("order-amount", t("PagePaid"), report.amount_fen, yuan(report.amount_fen)),
        figure("order-deadline", t("PageDeadline"), report.deadline, undefined, "text"),
        figure("order-refund-due", t("PageRefundDue"), report.refund_due_fen, yuan(report.refund_due_fen)),
        figure("order-product", t("PageProduct"), report.product_id, report.product_id + (report.product_banned ? " (banned)" : ""), "text")
      ]));

      app.appendChild(el("h2", { text: t("PageWhy") }));
      app.appendChild(el("ol", { class: "explain", id: "order-explain" }, report.explain.map(function (line) {
        return el("li", { text: line });
      })));

      // The timeline: stored events and, marked apart, the judgments the
      // rules derived from them, in time order.
      // Events keep the offset they were written in; show them in the
      // policy's offset (that of the report's as_of), never the browser's.
      var offset = /[+-]\d\d:\d\d$/.test(report.as_of) ? report.as_of.slice(-6) : "+00:00";
      var entries = timeline.map(function (t) {
        return { at: inOffset(t.event.at, offset), when: Date.parse(t.event.at), kind: label("event_type", t.event.type), detail: describe(t.event),
          seq: t.seq, recorded: t.recorded_at, derived: false };
      });
      report.judgments.forEach(function (j) {
        entries.push({ at: j.judged_at, when: Date.parse(j.judged_at), kind: tf(j.revoked ? "PageJudgmentRevoked" : "PageJudgmentNumbered", [j.judgment]),
          detail: t("PageDerivedByRules"), seq: "", recorded: "", derived: true });
      });
      entries.sort(function (a, b) { return a.when - b.when || (a.derived ? 1 : 0) - (b.derived ? 1 : 0); });
      app.appendChild(el("h2", { text: t("PageTimeline") }));
      app.appendChild(el("table", { id: "order-timeline", "data-events": timeline.length }, [
        el("thead", {}, [el("tr", {}, ["PageAt", "PageWhat", "PageDetails", "PageLogSeq", "PageRecordedAt"].map(function (h) { return el("th", { text: t(h) }); }))]),
        el("tbody", {}, entries.map(function (e) {
          return el("tr", { class: e.derived ? "derived" : "event" }, [
            el("td", { text: e.at }), el("td", { text: e.kind }), el("td", { text: e.detail }),
            el("td", { class: "num", text: e.seq }), el("td", { class: "muted", text: e.recorded })
          ]);
        }))
      ]));

      app.appendChild(el("h2", { text: t("Deductions") }));
      app.appendChild(report.deductions.length ? el("table", { id: "order-deductions" }, [
        el("thead", {}, [el("tr", {}, ["PageJudgment", "PageJudgedAt", "PageSettleDate", "PageAmount", "PageCharged", "PageWaived", "Status"].map(function (h) {
          return el("th", { text: t(h) });
        }))]),
        el("tbody", {}, report.deductions.map(function (d) {
          return el("tr", {}, [el("td", { class: "num", text: d.judgment }), el("td", { text: d.judged_at }), el("td", { text: d.settle_date }),
            el("td", { class: "num", text: yuan(d.amount_fen) }), el("td", { class: "num", "data-value": d.charged_fen, text: yuan(d.charged_fen) }),
            el("td", { class: "num", text: yuan(d.waived_fen) }), el("td", {}, [el("span", { class: "tag", "data-code": d.status, text: label("deduction_status", d.status) })])]);
        }))
      ]) : el("p", { class: "muted", text: t("PageNone") }));
      app.setAttribute("data-state", "ready");
    });
  }

  // "data from … to …" (GET /data-range, in the policy's offset) and the
  // as-of in force: asked, else the end of the data when the data lies in
  // the past, else now.
  function dataStamp(range, input) {
    if (!asOf && range.to && Date.parse(range.to) < Date.now()) {
      asOf = range.to;
      asOfSource = "end of the data";
      input.value = asOf;
    }
    var shown = function (text) { return text.replace("T", " "); };
    var stamp = document.getElementById("data-stamp");
    stamp.textContent = (range.from ? t("PageDataFrom") + " " + shown(range.from) + " " + t("PageTo") + " " + shown(range.to) : t("PageNoDataYet")) +
      " · " + t("PageAsOf") + " " + (asOf ? shown(asOf) : t("PageNow")) + " (" + t(AS_OF_SOURCES[asOfSource]) + ")";
    stamp.setAttribute("data-from", range.from || "");
    stamp.setAttribute("data-to", range.to || "");
    stamp.setAttribute("data-as-of", asOf);
    stamp.setAttribute("data-as-of-source", asOfSource);
  }

  // ---- routing -----------------------------------------------------------------

  function route() {
    var input = document.getElementById("as-of");
    input.value = asOf;
    document.getElementById("as-of-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var next = new URLSearchParams(window.location.search);
      if (input.value.trim()) next.set("as_of", input.value.trim()); else next.delete("as_of");
      var text = next.toString();
      window.location.assign(window.location.pathname + (text ? "?" + text : ""));
    });
    document.documentElement.setAttribute("lang", lang);
    var searchInput = document.getElementById("search-id");
    searchInput.setAttribute("placeholder", t("PageSearchPrompt"));
    document.querySelector("label[for=search-id]").textContent = t("PageSearchPrompt");
    document.querySelector("#search-form button").textContent = t("PageSearch");
    document.getElementById("search-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var id = searchInput.value.trim();
      if (id) search(id);
    });
    document.querySelector("label[for=as-of]").textContent = t("PageAsOf");
    document.querySelector("#as-of-form button").textContent = t("PageShow");
    var path = window.location.pathname;
    Promise.all([api("/labels"), api("/session")]).then(function (results) {
      results[0].forEach(function (entry) { labels[entry.set + ":" + entry.code] = entry; });
      me = results[1];
      renderSession();
      return api("/data-range");
    }).then(function (range) {
      dataStamp(range, input);
      var match;
      // A seller lands on its own shop.
      if (me.role === "seller" && (path === "/" || path === "/ui" || path === "/ui/" || path === "/ui/shops")) {
        window.location.replace(withAsOf("/ui/shops/" + encodeURIComponent(me.shop_id)));
        return null;
      }
      if ((match = path.match(/^\/ui\/shops\/([^/]+)\/?$/))) return shopPage(decodeURIComponent(match[1]));
      if ((match = path.match(/^\/ui\/orders\/([^/]+)\/?$/))) return orderPage(decodeURIComponent(match[1]));
      if (path === "/" || path === "/ui" || path === "/ui/" || path === "/ui/shops") return shopsPage();
      showError(tf("PageNoSuchPage", [path]));
      return null;
    }).catch(function (error) {
      renderSession();
      fail(error);
    });
  }

  route();
})();
