"""The Open Data Charter scorecard: every dataset scored on what the platform can check.

``rules`` holds the checks and their reasons, ``scores`` computes and stores scorecards (in the
dataset's own transaction, on every change), ``linkcheck`` is the link checker job, ``league``
the league tables, ``pages`` the pages and their JSON twins. Importing the package registers the
change subscriptions, so the catalogue imports it.
"""

from . import scores as scores  # noqa: F401  (registers the dataset.changed subscription)
