"""Slurm backend: sbatch scripts (script.py), pooled SSH (ssh.py), batched sacct polling (sacct.py)."""
