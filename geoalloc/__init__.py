"""geoalloc: geospatial branch allocation for Shenzhen member organisations."""

__version__ = "0.1.0"
