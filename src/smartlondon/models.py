"""Imports every capability's tables so that the metadata is complete."""


def load_all_models() -> None:
    """Import every models module (for migrations and ``create_all`` in tests)."""
    from .catalogue import models as _catalogue  # noqa: F401
    from .catalogue.charter import models as _charter  # noqa: F401
    from .catalogue.harvest import models as _harvest  # noqa: F401
    from .catalogue.tabular import models as _tabular  # noqa: F401
    from .core import models as _core  # noqa: F401
    from .insights import models as _insights  # noqa: F401  (the air quality nowcast)
    from .places import models as _places  # noqa: F401
    from .sensors import models as _sensors  # noqa: F401
    from .sensors.calibration import models as _calibration  # noqa: F401
    from .sensors import archive as _sensors_archive  # noqa: F401
    from .sharing import models as _sharing  # noqa: F401
    from .sharing.disclosure import models as _disclosure  # noqa: F401
    from .sharing.privacy import models as _privacy  # noqa: F401
