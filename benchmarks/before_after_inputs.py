"""Inputs of benchmarks/before_after.sh in /tmp/ab: a 16 MP PNG mosaic of four photos, the same pixels as a
zarr array in 500² chunks (read tile by tile), and 600 crops (PNG, JPEG)."""

import os

import numpy as np
import skimage
import zarr
from PIL import Image

os.makedirs("/tmp/ab/crops", exist_ok=True)
photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
tiles = [np.asarray(Image.fromarray(p).resize((500, 500))) for p in photos]
rows = [np.concatenate([tiles[(i + j) % 4] for i in range(8)], axis=1) for j in range(8)]
mosaic = np.concatenate(rows)
Image.fromarray(mosaic).save("/tmp/ab/mosaic16.png")
zarr.create_array("/tmp/ab/mosaic16.zarr", shape=mosaic.shape, chunks=(500, 500, 3), dtype="uint8", overwrite=True)[:] = mosaic
rng = np.random.default_rng(0)
for n in range(600):
    photo = photos[n % 4]
    height, width = photo.shape[:2]
    side = int(rng.integers(64, 256))
    row, col = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
    crop = Image.fromarray(photo[row : row + side, col : col + side])
    crop.save(f"/tmp/ab/crops/{n:04d}.{'png' if n % 2 else 'jpg'}", quality=90)
