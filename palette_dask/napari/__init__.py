"""The napari plugin (``pip install "palette-dask[napari]"``; docs/napari.md), a shell beside the CLI.

``napari.yaml`` is its npe2 manifest: the widget (:mod:`.widget`), the
reader of stores (:mod:`.reader`), both showing a run through :mod:`.layers`.
"""
