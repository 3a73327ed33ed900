"""hpgc: OGC API - Processes on Slurm supercomputers."""

__version__ = "0.1.0"
