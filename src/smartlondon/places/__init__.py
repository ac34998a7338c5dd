"""The places register: names, identifiers and footprints of London's places (docs/places.md)."""
