/* The air quality map: the nowcast grid image over the borough outlines (no remote tiles), with the
   uncertainty as a second layer. Without this script the page shows the grid as an image and the
   table of the same estimates per borough. */
(function () {
  "use strict";
  var el = document.getElementById("aq-map");
  if (!el || typeof L === "undefined" || !window.fetch || !el.getAttribute("data-bounds")) { return; }
  var bounds;
  try { bounds = JSON.parse(el.getAttribute("data-bounds")); } catch (e) { return; }
  var image = el.querySelector(".aq-map__image");
  var alt = image ? image.getAttribute("alt") : "";
  if (image) { image.parentNode.removeChild(image); }
  el.classList.add("aq-map--live");
  var map = L.map(el, { zoomControl: true, attributionControl: true, zoomSnap: 0.25 });
  map.fitBounds(bounds, { animate: false });
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution("Boundaries: GLA, OS data © Crown copyright, OGL v3. Readings: LAQN, OGL v2");
  map.createPane("aqBase").style.zIndex = 350;
  map.createPane("aqLines").style.zIndex = 450;
  var mean = L.imageOverlay(el.getAttribute("data-mean"), bounds, { opacity: 0.8, alt: alt });
  var std = L.imageOverlay(el.getAttribute("data-std"), bounds, { opacity: 0.8,
    alt: "Map of the uncertainty (standard deviation) of the estimate" });
  mean.addTo(map);
  var layers = {};
  layers[el.getAttribute("data-mean-label")] = mean;
  layers[el.getAttribute("data-std-label")] = std;
  L.control.layers(layers, null, { collapsed: false }).addTo(map);
  fetch(el.getAttribute("data-outlines"), { headers: { "Accept": "application/json" } }).then(function (r) {
    if (!r.ok) { throw new Error(r.status); }
    return r.json();
  }).then(function (geo) {
    L.geoJSON(geo, { pane: "aqBase", interactive: false,
      style: function () { return { stroke: false, fillColor: "#ffffff", fillOpacity: 1 }; } }).addTo(map);
    L.geoJSON(geo, { pane: "aqLines", interactive: false,
      style: function () { return { color: "#0b0c0c", weight: 1, fill: false }; } }).addTo(map);
  }).catch(function () { /* the outlines are decoration: the grid and the table still show */ });
}());
