"""smartlondon: the open-source city data platform of Smarter London Together."""

__version__ = "0.1.0"
