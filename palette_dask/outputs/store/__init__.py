"""Store: the zarr v3 group that holds a run's palette and histograms.

Three parts, each with one job:

- :mod:`.layout`: the layout, declared once (each array's name, dimensions,
  dtype and meaning; the attributes), from which arrays are created and
  checked and the docs' tables are generated;
- :mod:`.paths`: where a store lives (a folder, or a URL of object storage)
  and what may be done there (create, replace, resume, remove), nothing else;
- :mod:`.arrays`: the arrays, created from the layout and written a batch at
  a time (each chunk whole, once, by the driver; statuses last), finished.

Every array names its dimensions, so xarray reads the group too.
"""

from .arrays import (
    DONE,
    FAILED,
    FAILED_TRANSIENT,
    FAILURES,
    MAX_BATCH_SIZE,
    PENDING,
    append_images,
    batches,
    create_store,
    default_batch_size,
    dims,
    failed_images,
    finish_store,
    is_failed,
    list_labels,
    open_store,
    read_centers_rgb,
    rounded_colours,
    write_batch,
    write_image_failed,
    write_palette,
)
from .layout import ARRAYS, check_layout, layout_table
from .paths import (
    check_store_path,
    is_store,
    is_url,
    remove_partial_writes,
    remove_remnant,
    remove_store,
    store_exists,
    store_path,
    task_writes,
    zarr_store,
)

__all__ = [
    "ARRAYS", "DONE", "FAILED", "FAILED_TRANSIENT", "FAILURES", "MAX_BATCH_SIZE", "PENDING",
    "append_images", "batches", "check_layout", "check_store_path", "create_store", "default_batch_size",
    "dims", "failed_images", "finish_store", "is_failed", "is_store", "is_url", "layout_table", "list_labels",
    "open_store", "read_centers_rgb",
    "remove_partial_writes", "remove_remnant", "remove_store", "rounded_colours", "store_exists",
    "store_path", "task_writes", "write_batch", "write_image_failed", "write_palette", "zarr_store",
]  # fmt: skip
