"""Calibrating new raw Observations as they are stored: the hook ``sensors/service.py`` calls after an INSERT."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from .models import Calibration


def calibrate_on_ingest(writer: Any, rows: list[dict[str, Any]]) -> None:
    """Write calibrated Observations for the new rows of Datastreams with an active calibration."""
    streams = {row["datastream_id"] for row in rows if row.get("datastream_id") is not None}
    if not streams:
        return
    active = list(writer.session.scalars(select(Calibration).where(
        Calibration.datastream_id.in_(sorted(streams)), Calibration.active.is_(True),
        Calibration.derived_datastream_id.is_not(None))))
    if not active:
        return
    from .service import write_calibrated  # late: service imports sensors.service, which imports this module

    for calibration in active:
        write_calibrated(writer, calibration, [r for r in rows if r.get("datastream_id") == calibration.datastream_id])
