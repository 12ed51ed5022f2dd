"""Test support that users may reuse in their own suites (not part of the shipped runtime).

`satflow.testing.slurm`: a real single-node SLURM on this machine (`LocalSlurm`), as the `slurm`
tests, CI and the cluster benchmark start it.
"""
