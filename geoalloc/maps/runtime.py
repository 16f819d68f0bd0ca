"""The browser side of the maps: one small script and style sheet shared by every map.

Why hand-written JavaScript instead of folium markers: members are drawn from the compact
payload on a canvas renderer, layers that are off by default (lines, heat, clusters) are
built only when switched on, and all roster text reaches the page through ``esc()``
(or ``textContent``), never as markup. ``window.geoalloc`` exposes what was drawn
(``geoalloc.maps[key].drawn``) so tests and people can inspect a map from the console.
"""

from __future__ import annotations

RUNTIME_CSS = """
.leaflet-container, .ga-panel, .ga-search, .leaflet-popup-content {
  font-family: "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC",
               "WenQuanYi Micro Hei", "Source Han Sans SC", system-ui, sans-serif;
}
.ga-panel { background: rgba(255,255,255,.94); padding: 6px 10px; border-radius: 6px;
  box-shadow: 0 1px 5px rgba(0,0,0,.35); max-width: 290px; max-height: 60vh; overflow-y: auto;
  font-size: 12px; line-height: 1.45; color: #1f2937; }
.ga-panel h3 { margin: 0 0 4px 0; font-size: 14px; }
.ga-panel h4 { margin: 6px 0 2px 0; font-size: 12px; color: #374151; }
.ga-panel summary { cursor: pointer; font-weight: 600; font-size: 13px; }
.ga-panel table { border-collapse: collapse; }
.ga-panel td { padding: 0 6px 0 0; vertical-align: top; }
.ga-panel .ga-num { text-align: right; font-variant-numeric: tabular-nums; }
.ga-panel .ga-bar { display: inline-block; height: 9px; background: #2563eb; vertical-align: middle; }
.ga-panel .ga-note { color: #6b7280; font-size: 11px; }
.ga-panel .ga-bad { color: #b91c1c; }
.ga-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  vertical-align: middle; margin-right: 4px; border: 1px solid rgba(0,0,0,.25); }
.ga-swatch { display: inline-block; width: 14px; height: 9px; vertical-align: middle; margin-right: 4px; }
.ga-search { background: #fff; padding: 4px; border-radius: 4px; box-shadow: 0 1px 5px rgba(0,0,0,.35); }
.ga-search input { width: 150px; font-size: 13px; }
.ga-search .ga-msg { color: #b91c1c; font-size: 11px; }
.ga-label { background: transparent; border: none; box-shadow: none; font-weight: 600;
  color: #374151; text-shadow: 0 0 3px #fff, 0 0 3px #fff, 0 0 3px #fff; white-space: nowrap; }
.ga-label-zone { font-weight: 400; font-size: 10px; color: #6b7280; }
.ga-title { font-size: 15px; font-weight: 700; background: rgba(255,255,255,.9); padding: 3px 8px;
  border-radius: 4px; box-shadow: 0 1px 4px rgba(0,0,0,.3); }
.ga-popup th { text-align: left; padding-right: 8px; color: #4b5563; font-weight: 400; white-space: nowrap; vertical-align: top; }
.ga-popup td { word-break: break-all; }
"""

RUNTIME_JS = r"""
(function () {
  "use strict";
  var G = window.geoalloc = window.geoalloc || { maps: {}, errors: [] };
  window.addEventListener("error", function (e) { G.errors.push(String(e.message || e)); });

  var ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  G.esc = function (s) { return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); };

  function ll(d, x, y) { return [d.origin[1] + y / d.scale, d.origin[0] + x / d.scale]; }
  function ringLatLngs(d, ring) { var out = []; for (var k = 0; k < ring.length; k += 2) out.push(ll(d, ring[k], ring[k + 1])); return out; }
  function dist(d, m) {
    if (m === null || m === undefined) return "–";
    return m < 1000 ? m + " " + d.L.m : (m / 1000).toFixed(1) + " " + d.L.km;
  }
  function row(k, v) { return "<tr><th>" + G.esc(k) + "</th><td>" + G.esc(v) + "</td></tr>"; }
  function pane(map, name, z) {
    if (!map.getPane(name)) { map.createPane(name); map.getPane(name).style.zIndex = z; }
    return name;
  }

  G.plan = function (key, d, labels, map) {
    d.key = key; d.L = labels; d.map = map;
    d.drawn = { branches: 0, members: 0, unassigned: 0, hulls: 0, moved: 0, lines: 0, heat: 0, cluster: 0, districts: 0, zones: 0 };
    pane(map, "gaAreas", 350); pane(map, "gaLines", 390); pane(map, "gaBranches", 450); pane(map, "gaMoved", 440);
    d.canvas = L.canvas({ padding: 0.3 });
    d.linesCanvas = L.canvas({ padding: 0.3, pane: "gaLines" });
    d.branchCanvas = L.canvas({ padding: 0.3, pane: "gaBranches" });
    d.movedCanvas = L.canvas({ padding: 0.3, pane: "gaMoved" });
    G.maps[key] = d;
    return d;
  };

  function branchColour(d, b) { return b >= 0 ? d.palette[d.branches.colour[b] % d.palette.length] : "#6b7280"; }
  function memberColour(d, i) { return branchColour(d, d.members.b[i]); }
  function branchLatLng(d, b) { return ll(d, d.branches.x[b], d.branches.y[b]); }

  function branchHtml(d, i) {
    var B = d.branches, L_ = d.L, st = ["under", "within", "over"][B.state[i]];
    var h = '<div class="ga-popup"><b>' + G.esc(L_.branch + " " + B.id[i]) + "</b><table>";
    h += row(L_.district, B.district[i]);
    h += "<tr><th>" + G.esc(L_.size) + '</th><td><span class="ga-dot" style="background:' + d.stateColours[B.state[i]] + '"></span>' +
         G.esc(B.size[i] + " " + L_.persons + L_.lparen + L_[st] + L_.rparen) + "</td></tr>";
    if (B.full[i] !== null) h += row(L_.n_full, B.full[i]);
    h += row(L_.mean_distance, dist(d, B.mean[i]));
    h += row(L_.max_distance, dist(d, B.max[i]));
    if (B.site && B.site[i]) h += row(L_.site, B.site[i]);
    if (B.secretary && B.secretary[i]) h += row(L_.secretary, B.secretary[i]);
    if (B.joint[i]) h += row(L_.joint, "✓");
    return h + "</table></div>";
  }

  function memberHtml(d, i) {
    var M = d.members, L_ = d.L, b = M.b[i], h = '<div class="ga-popup"><table>';
    if (M.id) h += row(L_.member_id, M.id[i]);
    if (M.name) h += row(L_.name, M.name[i]);
    h += row(L_.branch, b >= 0 ? d.branches.id[b] : "–");
    if (b >= 0) h += row(L_.distance, dist(d, M.d[i]));
    h += row(L_.precision, L_["precision_" + d.precisions[M.p[i]]]);
    h += row(L_.status, L_["status_" + d.statuses[M.s[i]]] || d.statuses[M.s[i]]);
    if (M.mv && M.mv[i]) h += row(L_.moved, "✓");
    return h + "</table></div>";
  }
  G.memberHtml = memberHtml;
  G.branchHtml = branchHtml;

  function memberMarker(d, i, canvas) {
    var M = d.members, approx = M.p[i] >= 3;  // subdistrict/district centroids: faint
    return L.circleMarker(ll(d, M.x[i], M.y[i]), {
      renderer: canvas, radius: 3.2, stroke: false, fillColor: memberColour(d, i),
      fillOpacity: approx ? 0.4 : 0.85, gi: i
    });
  }

  function memberPopups(d, group) {
    group.on("click", function (e) {
      var i = e.layer.options.gi;
      if (i === undefined) return;
      L.popup().setLatLng(e.latlng).setContent(memberHtml(d, i)).openOn(d.map);
    });
  }

  function lazy(build) {
    var g = L.featureGroup(), built = false;
    g.on("add", function () { if (!built) { built = true; build(g); } });
    return g;
  }

  function outlines(d, items, cls, style, counter) {
    var g = L.featureGroup();
    items.forEach(function (it) {
      it.rings.forEach(function (r) {
        g.addLayer(L.polygon(ringLatLngs(d, r), Object.assign({ pane: "gaAreas", interactive: false, fill: false }, style)));
      });
      g.addLayer(L.marker(ll(d, it.label[0], it.label[1]), {
        interactive: false, keyboard: false,
        icon: L.divIcon({ className: "ga-label " + cls, html: G.esc(it.name), iconSize: null })
      }));
      d.drawn[counter] += 1;
    });
    return g;
  }

  var builders = {
    districts: function (d) { return outlines(d, d.districts || [], "", { color: "#374151", weight: 2, opacity: 0.8 }, "districts"); },
    zones: function (d) {
      return lazy(function (g) {
        outlines(d, d.zones || [], "ga-label-zone", { color: "#6b7280", weight: 1, opacity: 0.8, dashArray: "4 4" }, "zones").eachLayer(function (l) { g.addLayer(l); });
      });
    },
    hulls: function (d) {
      var g = L.featureGroup();
      d.hulls.forEach(function (h) {
        var c = branchColour(d, h[0]);
        g.addLayer(L.polygon(ringLatLngs(d, h[1]), { pane: "gaAreas", interactive: false, color: c, weight: 1, opacity: 0.45, fillColor: c, fillOpacity: 0.08 }));
        d.drawn.hulls += 1;
      });
      return g;
    },
    branches: function (d) {
      var B = d.branches, g = L.featureGroup();
      d.branchMarkers = [];
      for (var i = 0; i < B.id.length; i++) {
        var mk = L.circleMarker(branchLatLng(d, i), {
          renderer: d.branchCanvas, radius: B.r[i], color: "#ffffff", weight: 1.5,
          fillColor: d.stateColours[B.state[i]], fillOpacity: 0.8, gb: i
        });
        mk.bindPopup(branchHtml(d, i));
        mk.bindTooltip(G.esc(B.id[i] + " · " + B.size[i] + " " + d.L.persons), { direction: "top" });
        g.addLayer(mk);
        d.branchMarkers.push(mk);
        d.drawn.branches += 1;
      }
      return g;
    },
    members: function (d) {
      var M = d.members, g = L.featureGroup();
      for (var i = 0; i < M.x.length; i++) {
        if (M.b[i] < 0) continue;
        g.addLayer(memberMarker(d, i, d.canvas));
        d.drawn.members += 1;
      }
      memberPopups(d, g);
      return g;
    },
    unassigned: function (d) {
      var M = d.members, g = L.featureGroup();
      for (var i = 0; i < M.x.length; i++) {
        if (M.b[i] >= 0) continue;
        g.addLayer(L.circleMarker(ll(d, M.x[i], M.y[i]), { renderer: d.canvas, radius: 3.5, color: "#374151", weight: 1, fillColor: "#ffffff", fillOpacity: 0.9, gi: i }));
        d.drawn.unassigned += 1;
      }
      memberPopups(d, g);
      return g;
    },
    moved: function (d) {
      var M = d.members, g = L.featureGroup();
      if (!M.mv) return g;
      for (var i = 0; i < M.x.length; i++) {
        if (!M.mv[i]) continue;
        g.addLayer(L.circleMarker(ll(d, M.x[i], M.y[i]), { renderer: d.movedCanvas, radius: 6, color: d.movedColour, weight: 2.5, fill: true, fillOpacity: 0, gi: i }));
        d.drawn.moved += 1;
      }
      memberPopups(d, g);
      return g;
    },
    lines: function (d) {
      return lazy(function (g) {
        var M = d.members;
        for (var i = 0; i < M.x.length; i++) {
          var b = M.b[i];
          if (b < 0) continue;
          g.addLayer(L.polyline([ll(d, M.x[i], M.y[i]), branchLatLng(d, b)], { renderer: d.linesCanvas, color: branchColour(d, b), weight: 1, opacity: 0.5, interactive: false }));
          d.drawn.lines += 1;
        }
      });
    },
    heat: function (d) {
      return lazy(function (g) {
        var M = d.members, pts = [];
        for (var i = 0; i < M.x.length; i++) pts.push(ll(d, M.x[i], M.y[i]).concat([1]));
        g.addLayer(L.heatLayer(pts, { radius: 14, blur: 18, minOpacity: 0.3 }));
        d.drawn.heat = pts.length;
      });
    },
    cluster: function (d) {
      return lazy(function (g) {
        var M = d.members, mc = L.markerClusterGroup({ chunkedLoading: true, animate: false, disableClusteringAtZoom: 15, showCoverageOnHover: false });
        var list = [];
        for (var i = 0; i < M.x.length; i++) if (M.b[i] >= 0) list.push(memberMarker(d, i, d.canvas));
        mc.addLayers(list);
        memberPopups(d, mc);
        g.addLayer(mc);
        d.drawn.cluster = list.length;
      });
    }
  };

  G.layer = function (kind, d) { return builders[kind](d); };

  G.findBranch = function (d, q) {
    var ids = d.branches.id, s = String(q || "").trim();
    if (!s) return -1;
    var i = ids.indexOf(s);
    if (i < 0) {
      var low = s.toLowerCase(), hits = [];
      for (var k = 0; k < ids.length; k++) if (ids[k].toLowerCase().indexOf(low) >= 0) hits.push(k);
      if (hits.length === 1) i = hits[0];
    }
    if (i >= 0 && d.branchMarkers) {
      d.map.setView(branchLatLng(d, i), Math.max(d.map.getZoom(), 14));
      d.branchMarkers[i].openPopup();
    }
    return i;
  };

  G.controls = function (d, panelHtml, title) {
    var map = d.map, L_ = d.L;
    if (title) {
      var t = L.control({ position: "topright" });
      t.onAdd = function () { var div = L.DomUtil.create("div", "ga-title"); div.textContent = title; return div; };
      t.addTo(map);
    }
    L.control.scale({ imperial: false }).addTo(map);
    var panel = L.control({ position: "bottomleft" });
    panel.onAdd = function () {
      var div = L.DomUtil.create("div", "ga-panel");
      div.innerHTML = panelHtml;  // built and escaped in Python
      L.DomEvent.disableClickPropagation(div); L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    panel.addTo(map);

    var search = L.control({ position: "topleft" });
    search.onAdd = function () {
      var div = L.DomUtil.create("div", "ga-search"), form = L.DomUtil.create("form", "", div);
      var listId = d.key + "_branch_ids";
      var input = L.DomUtil.create("input", "", form), btn = L.DomUtil.create("button", "", form), msg = L.DomUtil.create("div", "ga-msg", div);
      input.type = "search"; input.placeholder = L_.search; input.setAttribute("list", listId); input.setAttribute("aria-label", L_.search);
      btn.type = "submit"; btn.textContent = L_.search_go;
      var dl = L.DomUtil.create("datalist", "", div); dl.id = listId;
      d.branches.id.forEach(function (id) { var o = document.createElement("option"); o.value = id; dl.appendChild(o); });
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var i = G.findBranch(d, input.value);
        msg.textContent = i < 0 ? L_.not_found : "";
      });
      L.DomEvent.disableClickPropagation(div); L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    search.addTo(map);
  };
})();
"""
