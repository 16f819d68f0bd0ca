/* The planner's console: plain JavaScript on the API's own endpoints (no framework, no CDN).
 * Every text from the server reaches the page through textContent, never as markup. */
(function () {
  "use strict";

  var T = {
    zh: {
      title: "支部分配", nav_signin: "登录", nav_roster: "花名册", nav_run: "生成方案", nav_plan: "方案与地图",
      nav_compare: "比较方案", nav_relocate: "成员迁居", signin_h: "使用密钥登录",
      signin_p: "密钥由管理员用 geoalloc keys create 生成。密钥只保存在本浏览器标签页中。", key: "密钥",
      signin_go: "登录", signout: "退出", roster_h: "导入花名册",
      roster_p: "CSV（UTF-8）或 Excel（.xlsx）。每一行都会检查，问题按行号、字段和原因列出；有问题的行不会导入，也不会丢失。",
      roster_go: "上传并检查", col_row: "行", col_member: "成员编号", col_field: "字段", col_reason: "原因",
      col_from: "原支部", col_to: "新支部", run_h: "生成新方案", min_size: "每支部最少人数", max_size: "每支部最多人数",
      min_full: "每支部最少正式党员", n_branches: "支部数（留空：按人数上限最少）", time_limit: "计算时间（秒）",
      seed: "随机种子", run_go: "开始计算", sites: "服务中心（可选，CSV）",
      sites_p: "服务中心表的列：site_id, name, lon, lat，可选 datum, district_zh, capacity。给出后支部只在这些地点活动。",
      sites_read: "服务中心 {n} 个", sites_bad: "服务中心表无法读取：{e}", plan_h: "方案与地图", plan_pick: "方案",
      dl_xlsx: "下载 Excel（plan.xlsx）", dl_gpkg: "下载 GeoPackage（plan.gpkg）", dl_map: "下载地图（map.html）",
      compare_h: "比较两个方案", plan_a: "原方案", plan_b: "新方案", compare_go: "比较", relocate_h: "成员迁居",
      relocate_p: "输入成员编号和新住址：只在需要时调整他人，任何支部都不会超出人数限制。", address: "新住址",
      relocate_go: "迁居", lang: "English",
      signed_in: "已登录：{n} 个方案", bad_key: "密钥无效或已撤销", need_key: "请先登录",
      uploading: "正在上传和检查……", imported: "共 {rows} 行：有效 {valid}，有问题 {rejected}；新增 {created}，更新 {updated}，未变 {unchanged}。",
      no_rejects: "所有行均通过检查。", started: "已开始计算（任务 {id}）", job_done: "方案 {id} 已生成",
      job_failed: "计算失败：{e}", queued: "排队中", running: "计算中", loading: "正在加载……",
      plan_label: "#{id} {kind} · {n} 个支部 · {t}", kind_form: "新方案", kind_rebalance: "调整", newest: "（最新）",
      no_plans: "还没有方案：先生成一个。", figures: "主要数字",
      compared: "调整 {moved} 人；新增支部 {opened} 个，撤销 {closed} 个，人数变化的支部 {changed} 个。",
      by_reason: "按原因：", moves_more: "（只列出前 {n} 人）", relocated: "已迁居",
      r_member: "成员", r_from: "原支部", r_to: "新支部", r_action: "处理", r_reason: "说明", r_distance: "到支部距离",
      r_status: "状态", r_geo: "定位", downloaded: "已下载 {f}", none: "无", m: " 米"
    },
    en: {
      title: "Branch planner", nav_signin: "Sign in", nav_roster: "Roster", nav_run: "New plan", nav_plan: "Plan & map",
      nav_compare: "Compare", nav_relocate: "Relocate", signin_h: "Sign in with a key",
      signin_p: "An administrator creates keys with geoalloc keys create. The key is kept in this browser tab only.",
      key: "Key", signin_go: "Sign in", signout: "Sign out", roster_h: "Import a roster",
      roster_p: "CSV (UTF-8) or Excel (.xlsx). Every row is checked; problems are listed by row, field and reason. Bad rows are not imported and not lost.",
      roster_go: "Upload and check", col_row: "Row", col_member: "Member", col_field: "Field", col_reason: "Reason",
      col_from: "From branch", col_to: "To branch", run_h: "Make a new plan", min_size: "Fewest members per branch",
      max_size: "Most members per branch", min_full: "Fewest full members", n_branches: "Branches (empty: the fewest the limits allow)",
      time_limit: "Time limit (s)", seed: "Seed", run_go: "Start", sites: "Service centres (optional, CSV)",
      sites_p: "Columns: site_id, name, lon, lat, optionally datum, district_zh, capacity. Branches then meet only at these sites.",
      sites_read: "{n} service centres", sites_bad: "The site table cannot be read: {e}", plan_h: "Plan & map", plan_pick: "Plan",
      dl_xlsx: "Download Excel (plan.xlsx)", dl_gpkg: "Download GeoPackage (plan.gpkg)", dl_map: "Download map (map.html)",
      compare_h: "Compare two plans", plan_a: "Old plan", plan_b: "New plan", compare_go: "Compare",
      relocate_h: "Relocate a member", relocate_p: "Give the member and the new address: others move only when needed, and no branch leaves its limits.",
      address: "New address", relocate_go: "Relocate", lang: "中文",
      signed_in: "Signed in: {n} plans", bad_key: "The key is unknown or revoked", need_key: "Sign in first",
      uploading: "Uploading and checking…", imported: "{rows} rows: {valid} valid, {rejected} with problems; {created} new, {updated} updated, {unchanged} unchanged.",
      no_rejects: "Every row passed.", started: "Started (job {id})", job_done: "Plan {id} is ready",
      job_failed: "The job failed: {e}", queued: "queued", running: "running", loading: "Loading…",
      plan_label: "#{id} {kind} · {n} branches · {t}", kind_form: "plan", kind_rebalance: "rebalance", newest: " (newest)",
      no_plans: "No plan yet: make one first.", figures: "Key figures",
      compared: "{moved} members moved; {opened} branches opened, {closed} closed, {changed} changed size.",
      by_reason: "By reason: ", moves_more: "(first {n} shown)", relocated: "Relocated",
      r_member: "Member", r_from: "From", r_to: "To", r_action: "Action", r_reason: "Why", r_distance: "Distance to branch",
      r_status: "Status", r_geo: "Located", downloaded: "Downloaded {f}", none: "none", m: " m"
    }
  };
  var REASONS = {
    zh: { oversized: "支部超编", undersized: "支部人数不足", relocated: "成员迁居", closed_branch: "支部撤销",
          improvement: "缩短距离", changed: "支部变更", joined: "新成员", left: "离开" },
    en: { oversized: "branch too big", undersized: "branch too small", relocated: "moved home", closed_branch: "branch closed",
          improvement: "shorter distance", changed: "changed", joined: "joined", left: "left" }
  };

  var state = { lang: localStorage.getItem("geoalloc.lang") || "zh", key: sessionStorage.getItem("geoalloc.key") || "",
                plans: [], plan: null, map: null, page: "signin" };
  var $ = function (sel) { return document.querySelector(sel); };
  window.geoallocConsole = state;  // for people and tests: what the console holds

  function t(k, vars) {
    var s = (T[state.lang] && T[state.lang][k]) || T.zh[k] || k;
    if (vars) Object.keys(vars).forEach(function (v) { s = s.split("{" + v + "}").join(String(vars[v])); });
    return s;
  }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function say(text, kind) { var s = $("#status"); s.textContent = text || ""; s.className = kind || ""; }

  function applyLang() {
    document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
    document.title = "geoalloc · " + t("title");
    document.querySelectorAll("[data-t]").forEach(function (e) { e.textContent = t(e.getAttribute("data-t")); });
    $("#lang").textContent = t("lang");
  }

  async function api(path, opts) {
    opts = opts || {};
    var headers = Object.assign({}, opts.headers || {});
    if (state.key) headers.Authorization = "Bearer " + state.key;
    var res = await fetch(path, Object.assign({}, opts, { headers: headers }));
    if (!res.ok) {
      var detail = res.status + " " + res.statusText;
      try { var p = await res.json(); detail = p.detail || p.title || detail; } catch (e) { /* not JSON */ }
      var err = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
      err.status = res.status;
      throw err;
    }
    return res;
  }
  async function json(path, opts) { return (await api(path, opts)).json(); }

  function show(page) {
    if (page !== "signin" && !state.key) { say(t("need_key"), "error"); page = "signin"; }
    state.page = page;
    document.querySelectorAll(".page").forEach(function (s) { s.hidden = s.id !== "page-" + page; });
    document.querySelectorAll("nav button").forEach(function (b) { b.classList.toggle("active", b.dataset.page === page); });
    if (page === "plan") loadPlans().then(function () { if (state.plan) openPlan(state.plan); });
    if (page === "compare") loadPlans();
  }
  function keyState() {
    document.querySelectorAll(".needs-key").forEach(function (b) { b.disabled = !state.key; });
    $("#who").textContent = state.key ? t("key") + " " + state.key.slice(0, 8) + "…" : "";
  }

  // --- sign in ------------------------------------------------------------------------------
  async function signIn(key) {
    state.key = key;
    try {
      var plans = await json("/plans");
      sessionStorage.setItem("geoalloc.key", key);
      state.plans = plans;
      keyState();
      say(t("signed_in", { n: plans.length }), "ok");
      if (plans.length) state.plan = plans[0].plan_id;
      show(plans.length ? "plan" : "roster");
    } catch (e) {
      state.key = "";
      sessionStorage.removeItem("geoalloc.key");
      keyState();
      say(e.status === 401 ? t("bad_key") : e.message, "error");
    }
  }

  // --- roster -------------------------------------------------------------------------------
  async function uploadRoster(file) {
    say(t("uploading"));
    var form = new FormData();
    form.append("file", file, file.name);
    var tbody = $("#rejects tbody");
    tbody.textContent = "";
    $("#roster-summary").textContent = "";
    try {
      var r = await json("/members/import", { method: "POST", body: form });
      var s = r.summary || {};
      $("#roster-summary").appendChild(el("p", t("imported", { rows: s.rows, valid: s.valid, rejected: s.rejected,
        created: r.created, updated: r.updated, unchanged: r.unchanged }), "figure"));
      r.rejects.forEach(function (x) {
        var tr = el("tr");
        [x.row, x.member_id, x.field, x.reason].forEach(function (v) { tr.appendChild(el("td", v)); });
        tbody.appendChild(tr);
      });
      $("#rejects").hidden = r.rejects.length === 0;
      if (!r.rejects.length) $("#roster-summary").appendChild(el("p", t("no_rejects")));
      say("");
    } catch (e) { say(e.message, "error"); }
  }

  // --- a new plan ---------------------------------------------------------------------------
  function parseCsv(text) {
    // RFC 4180: quoted fields may hold commas, quotes ("") and line breaks
    var rows = [], row = [], field = "", q = false, i = 0;
    text = text.replace(/^\uFEFF/, "");
    for (; i < text.length; i++) {
      var c = text[i];
      if (q) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') q = false; else field += c;
      } else if (c === '"') q = true;
      else if (c === ",") { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
    }
    if (field !== "" || row.length) { row.push(field); rows.push(row); }
    return rows.filter(function (r) { return r.some(function (v) { return v.trim() !== ""; }); });
  }
  function sitesFrom(text) {
    var rows = parseCsv(text);
    if (rows.length < 2) throw new Error("no rows");
    var head = rows[0].map(function (h) { return h.trim().toLowerCase(); });
    return rows.slice(1).map(function (r) {
      var o = {};
      head.forEach(function (h, k) {
        var v = (r[k] || "").trim();
        if (v === "") return;
        o[h] = (h === "lon" || h === "lat" || h === "capacity") && !isNaN(Number(v)) ? Number(v) : v;
      });
      return o;
    });
  }
  async function runPlan(form) {
    var body = {};
    ["min_size", "max_size", "min_full", "n_branches", "time_limit", "seed"].forEach(function (k) {
      var v = form.elements[k].value;
      if (v !== "") body[k] = Number(v);
    });
    var file = form.elements.sites.files[0];
    if (file) {
      try { body.sites = sitesFrom(await file.text()); } catch (e) { say(t("sites_bad", { e: e.message }), "error"); return; }
      say(t("sites_read", { n: body.sites.length }));
    }
    try {
      var job = await json("/plans", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      $("#job").hidden = false;
      say(t("started", { id: job.job_id }));
      await follow(job.job_id);
    } catch (e) {
      // the schema names a site by its list index: say it as the CSV row (the header is row 1)
      say(e.message.replace(/body\.sites\.(\d+)\.(\w+)/g, function (_, i, f) {
        return "row " + (Number(i) + 2) + ", field '" + f + "'";
      }), "error");
    }
  }
  async function follow(id) {
    var bar = $("#job-progress"), text = $("#job-text");
    for (;;) {
      var job = await json("/jobs/" + encodeURIComponent(id));
      bar.value = job.progress || 0;
      text.textContent = Math.round((job.progress || 0) * 100) + "% · " + (job.message || t(job.status));
      if (job.status === "succeeded") {
        bar.value = 1;
        say(t("job_done", { id: job.plan_id }), "ok");
        state.plan = job.plan_id;
        show("plan");
        return;
      }
      if (job.status === "failed") { say(t("job_failed", { e: job.error || "" }), "error"); return; }
      await new Promise(function (r) { setTimeout(r, 300); });
    }
  }

  // --- plans, map and summary ---------------------------------------------------------------
  async function loadPlans() {
    try { state.plans = await json("/plans"); } catch (e) { say(e.message, "error"); return; }
    ["#plan-select", "#compare-a", "#compare-b"].forEach(function (sel) {
      var s = $(sel), keep = s.value;
      s.textContent = "";
      state.plans.forEach(function (p) {
        var o = el("option", t("plan_label", { id: p.plan_id, kind: T[state.lang]["kind_" + p.kind] || p.kind,
          n: p.n_branches, t: String(p.created_at).slice(0, 16).replace("T", " ") }) + (p.newest ? t("newest") : ""));
        o.value = p.plan_id;
        s.appendChild(o);
      });
      if (keep) s.value = keep;
      if (sel === "#plan-select" && state.plan) s.value = state.plan;
      if (sel === "#compare-a" && !keep && state.plans.length > 1) s.value = state.plans[1].plan_id;
    });
    if (!state.plans.length) say(t("no_plans"));
  }

  async function openPlan(id) {
    state.plan = Number(id);
    $("#plan-select").value = id;
    say(t("loading"));
    try {
      var both = await Promise.all([json("/plans/" + id + "/summary?lang=" + state.lang),
                                    json("/plans/" + id + "/map-data?lang=" + state.lang)]);
      renderSummary(both[0]);
      drawMap(both[1]);
      say("");
    } catch (e) { say(e.message, "error"); }
  }

  function renderSummary(s) {
    var box = $("#summary");
    box.textContent = "";
    s.sections.forEach(function (sec) {
      box.appendChild(el("h3", sec.title));
      var ul = el("ul");
      sec.lines.forEach(function (line) { ul.appendChild(el("li", line)); });
      box.appendChild(ul);
    });
    box.appendChild(el("h3", t("figures")));
    var table = el("table", null, "data");
    s.figures.forEach(function (f) {
      var tr = el("tr");
      tr.appendChild(el("td", f.label));
      tr.appendChild(el("td", f.value === null ? "–" : f.value));
      table.appendChild(tr);
    });
    box.appendChild(table);
  }

  function drawMap(data) {
    if (state.map) { state.map.remove(); state.map = null; }
    var map = L.map("map", { preferCanvas: true, zoomControl: true });
    state.map = map;
    L.tileLayer(data.tiles.url, { subdomains: data.tiles.subdomains, attribution: data.tiles.attr, maxZoom: 18 }).addTo(map);
    var d = geoalloc.plan("console", data.payload, data.labels, map);
    var layers = {};
    ["districts", "hulls", "members", "unassigned", "branches"].forEach(function (k) {
      layers[data.labels[k]] = geoalloc.layer(k, d).addTo(map);
    });
    ["lines", "zones"].forEach(function (k) { layers[data.labels[k]] = geoalloc.layer(k, d); });
    L.control.layers(null, layers, { position: "bottomright", collapsed: true }).addTo(map);
    geoalloc.controls(d, data.panel, "");
    if (data.bounds) map.fitBounds(data.bounds, { padding: [20, 20] }); else map.setView([22.6, 114.05], 11);
  }

  async function download(path, filename) {
    try {
      var blob = await (await api(path)).blob();
      var url = URL.createObjectURL(blob), a = el("a");
      a.href = url; a.download = filename;
      document.body.appendChild(a); a.click(); a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      say(t("downloaded", { f: filename }), "ok");
    } catch (e) { say(e.message, "error"); }
  }

  // --- compare ------------------------------------------------------------------------------
  async function compare(a, b) {
    var box = $("#compare-result"), tbody = $("#moves tbody");
    box.textContent = ""; tbody.textContent = "";
    try {
      var d = await json("/plans/" + a + "/diff/" + b);
      box.appendChild(el("p", t("compared", { moved: d.moved, opened: d.branches_opened.length,
        closed: d.branches_closed.length, changed: Object.keys(d.size_changes).length }), "figure"));
      var reasons = Object.keys(d.by_reason).map(function (k) {
        return (REASONS[state.lang][k] || k) + " " + d.by_reason[k];
      });
      box.appendChild(el("p", t("by_reason") + (reasons.join(state.lang === "zh" ? "、" : ", ") || t("none"))));
      var shown = d.moves.slice(0, 200);
      shown.forEach(function (m) {
        var tr = el("tr");
        [m.member_id, m.from_branch || "–", m.to_branch || "–", REASONS[state.lang][m.reason] || m.reason || ""]
          .forEach(function (v) { tr.appendChild(el("td", v)); });
        tbody.appendChild(tr);
      });
      if (d.moves.length > shown.length) box.appendChild(el("p", t("moves_more", { n: shown.length })));
      $("#moves").hidden = shown.length === 0;
    } catch (e) { say(e.message, "error"); }
  }

  // --- relocate -----------------------------------------------------------------------------
  async function relocate(form) {
    var id = form.elements.member_id.value.trim(), dl = $("#relocate-result");
    dl.textContent = "";
    try {
      var r = await json("/members/" + encodeURIComponent(id) + "/relocate", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ address: form.elements.address.value })
      });
      [["r_member", r.member_id], ["r_from", r.from_branch || "–"], ["r_to", r.to_branch || "–"],
       ["r_action", r.action], ["r_reason", r.reason],
       ["r_distance", r.distance_m === null ? "–" : Math.round(r.distance_m) + t("m")],
       ["r_status", r.status], ["r_geo", r.geo_status + " · " + r.geo_precision]].forEach(function (kv) {
        dl.appendChild(el("dt", t(kv[0]))); dl.appendChild(el("dd", kv[1]));
      });
      say(t("relocated"), "ok");
    } catch (e) { say(e.message, "error"); }
  }

  // --- wiring -------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    applyLang();
    keyState();
    document.querySelectorAll("nav button").forEach(function (b) {
      b.addEventListener("click", function () { show(b.dataset.page); });
    });
    $("#lang").addEventListener("click", function () {
      state.lang = state.lang === "zh" ? "en" : "zh";
      localStorage.setItem("geoalloc.lang", state.lang);
      applyLang();
      show(state.page);
    });
    $("#signin-form").addEventListener("submit", function (e) { e.preventDefault(); signIn($("#key").value.trim()); });
    $("#signout").addEventListener("click", function () {
      state.key = ""; sessionStorage.removeItem("geoalloc.key"); keyState(); say(""); show("signin");
    });
    $("#roster-form").addEventListener("submit", function (e) {
      e.preventDefault();
      var f = $("#roster-file").files[0];
      if (f) uploadRoster(f);
    });
    $("#run-form").addEventListener("submit", function (e) { e.preventDefault(); runPlan(e.target); });
    $("#plan-select").addEventListener("change", function (e) { openPlan(e.target.value); });
    $("#dl-xlsx").addEventListener("click", function () {
      download("/plans/" + state.plan + "/export?format=xlsx&lang=" + state.lang, "plan-" + state.plan + ".xlsx");
    });
    $("#dl-gpkg").addEventListener("click", function () {
      download("/plans/" + state.plan + "/export?format=gpkg", "plan-" + state.plan + ".gpkg");
    });
    $("#dl-map").addEventListener("click", function () {
      download("/plans/" + state.plan + "/map", "map-" + state.plan + ".html");
    });
    $("#compare-form").addEventListener("submit", function (e) {
      e.preventDefault(); compare($("#compare-a").value, $("#compare-b").value);
    });
    $("#relocate-form").addEventListener("submit", function (e) { e.preventDefault(); relocate(e.target); });
    if (state.key) signIn(state.key); else show("signin");
  });
})();
