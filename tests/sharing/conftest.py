"""Fixtures shared by the LODA sharing tests (F owns this file; G and H add fixtures at the end).

An approved agreement, an analyst with a token and a small restricted table are built here so that
no test file rebuilds them.
"""

from __future__ import annotations
