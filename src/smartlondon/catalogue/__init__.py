"""The London Datastore: datasets, resources, search and download."""

from . import charter as _charter  # noqa: E402,F401  (the charter scorecard follows every dataset change)
from . import tabular as _tabular  # noqa: E402,F401  (uploads are loaded into the tabular data store)
