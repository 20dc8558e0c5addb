"""Inputs: what the user named, remote bytes, each format's probe and decoders, lazy arrays and batches."""
