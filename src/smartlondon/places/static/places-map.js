/* A place's map: borough outlines as the base layer (no remote tiles), the place's footprint on top, and
   markers for the sensors about it. Without this script the server's SVG drawing stays, and the tables
   on the page hold the same facts. */
(function () {
  "use strict";
  var maps = document.querySelectorAll("[data-place-map]");
  if (!maps.length || typeof L === "undefined" || !window.fetch) { return; }
  function getJSON(url) {
    return fetch(url, { headers: { "Accept": "application/json" } }).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }
  Array.prototype.forEach.call(maps, function (el) {
    Promise.all([getJSON(el.getAttribute("data-boroughs")).catch(function () { return null; }),
                 getJSON(el.getAttribute("data-place-map"))]).then(function (got) {
      var outlines = got[0], data = got[1];
      var features = data.type === "FeatureCollection" ? data.features : [{ type: "Feature", geometry: data.geometry,
        properties: { name: data.name, href: data.uid ? "/places/" + data.uid : null } }];
      features = features.filter(function (f) { return f.geometry; });
      if (!features.length) { return; }
      el.innerHTML = "";
      el.classList.add("app-place-map--live");
      var map = L.map(el, { zoomControl: true, attributionControl: true, zoomSnap: 0.25 });
      map.setView([51.5, -0.12], 10);  // a view first: Leaflet draws vector layers only on a map that has one
      map.attributionControl.setPrefix(false);
      map.attributionControl.addAttribution("Boundaries: GLA, OS data © Crown copyright, OGL v3");
      if (outlines) {
        L.geoJSON(outlines, { interactive: false,
          style: function () { return { color: "#505a5f", weight: 1, fillColor: "#ffffff", fillOpacity: 1 }; } }).addTo(map);
      }
      var layer = L.geoJSON({ type: "FeatureCollection", features: features }, {
        style: function () { return { color: "#1d70b8", weight: 2, fillOpacity: 0.25 }; },
        pointToLayer: function (f, at) {
          return L.circleMarker(at, { radius: 7, color: "#0b0c0c", weight: 1, fillColor: "#1d70b8", fillOpacity: 0.9 });
        },
        onEachFeature: function (f, lyr) {
          var p = f.properties || {};
          var href = p.href || (f.id ? "/places/" + f.id : null);
          if (!href) { return; }
          var link = document.createElement("a");
          link.href = href; link.className = "govuk-link"; link.textContent = p.name || f.id;
          lyr.bindPopup(link);
        }
      }).addTo(map);
      ((data.sensors && data.sensors.items) || []).forEach(function (s) {
        if (s.lat === null || s.lon === null) { return; }
        var link = document.createElement("a");
        link.href = s.href; link.className = "govuk-link"; link.textContent = s.name;
        L.circleMarker([s.lat, s.lon], { radius: 5, color: "#0b0c0c", weight: 1, fillColor: "#f47738", fillOpacity: 0.9 })
          .bindPopup(link).addTo(map);
      });
      var bounds = layer.getBounds();
      if (bounds.isValid() && bounds.getNorthEast().equals(bounds.getSouthWest())) {
        map.setView(bounds.getCenter(), 15);
      } else if (bounds.isValid()) {
        map.fitBounds(bounds, { animate: false, padding: [30, 30], maxZoom: 16 });
      }
    }).catch(function () { /* the drawing and the tables stay */ });
  });
}());
