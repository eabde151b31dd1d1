"""Glue for the runners: DVC stage rendering, Slurm request checks."""
