"""Calibration of low-cost sensors against co-located reference monitors (docs/sensors-calibration.md).

* ``estimators``: the models (``fit``/``predict``, ``params``, ``fit_stats``), linear with humidity
  and temperature terms and a robust (Huber) variant;
* ``models``: the ``sta_calibration`` table (one row per fitted, versioned model);
* ``service``: fitting a low-cost/reference pair over a window, applying a model (a derived
  calibrated Datastream), listing;
* ``ingest``: calibrating new raw Observations as they are stored (called by ``sensors/service.py``);
* ``api``: ``GET/POST /sta/v1.1/ext/calibrations``.

Kept free of imports at package level: ``sensors/service.py`` imports ``ingest`` while loading.
"""
