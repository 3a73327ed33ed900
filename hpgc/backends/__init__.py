"""Backends run RunSpecs: `local` (subprocesses on this machine) and `slurm` (sbatch over SSH)."""
