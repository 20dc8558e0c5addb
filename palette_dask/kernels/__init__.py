"""Kernels: pixels to features, colour spaces, the sample, the fit, the counting loop, per-image palettes."""
