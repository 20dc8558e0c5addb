"""The run: the pipeline's passes, their tasks, the cluster, progress, and choosing k."""
