/* The sensor map: borough outlines as the base layer (no remote tiles), a marker per sensor site.
   The list beside the map holds the same sites and works without this script. */
(function () {
  "use strict";
  var el = document.getElementById("sensor-map");
  if (!el || typeof L === "undefined" || !window.fetch) { return; }
  var map = L.map(el, { zoomControl: true, attributionControl: true, zoomSnap: 0.25 });
  map.setView([51.5, -0.12], 10);
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution("Boundaries: GLA, OS data © Crown copyright, OGL v3. Sensors: LAQN, OGL v2");
  var fallback = el.querySelector(".sensors-map__fallback");
  if (fallback) { fallback.parentNode.removeChild(fallback); }
  function getJSON(url) {
    return fetch(url, { headers: { "Accept": "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }
  // the outlines first (they set the view), then the markers on top: nothing moves once drawn
  var outlines = getJSON(el.getAttribute("data-boroughs")).then(function (geo) {
    var layer = L.geoJSON(geo, {
      style: function () { return { color: "#505a5f", weight: 1, fillColor: "#ffffff", fillOpacity: 1 }; },
      interactive: false
    }).addTo(map);
    map.fitBounds(layer.getBounds(), { animate: false });
  }).catch(function () { /* the outlines are decoration: the markers still show */ });
  outlines.then(function () { return getJSON(el.getAttribute("data-sensors")); }).then(function (data) {
    (data.sensors || []).forEach(function (s) {
      if (s.latitude === null || s.longitude === null) { return; }
      var marker = L.circleMarker([s.latitude, s.longitude], {
        radius: 6, color: "#0b0c0c", weight: 1, fillColor: s.no2 ? "#1d70b8" : "#b1b4b6", fillOpacity: 0.9
      }).addTo(map);
      var box = document.createElement("div");
      var link = document.createElement("a");
      link.href = s.href; link.className = "govuk-link"; link.textContent = s.name;
      box.appendChild(link);
      var info = document.createElement("p");
      info.className = "govuk-body-s";
      info.textContent = [s.borough, s.siteType].filter(Boolean).join(", ") +
        (s.no2 ? ". Latest NO2: " + s.no2.result + " " + s.no2.unit + " at " + s.no2.label : "");
      box.appendChild(info);
      marker.bindPopup(box);
    });
  }).catch(function () { /* the list beside the map has every site */ });
}());
