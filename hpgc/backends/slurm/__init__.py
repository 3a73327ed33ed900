"""Slurm backend: sbatch scripts (script.py), pooled SSH (ssh.py), one module per remote command (commands/),
Slurm ids (jobid.py) and states (states.py), polls (poller.py), all tied together in backend.py."""
