"""Outputs: the zarr store, label GeoTIFFs, the bar and table, the HTML report, colour names, search."""
