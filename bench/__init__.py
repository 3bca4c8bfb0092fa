"""Benchmarks of xgrad against the raw backend (the hand-written floor) and its peers.

``python bench/run.py`` runs the suite, ``python bench/overhead.py`` the per-operation overhead
check; ``bench/RESULTS.md`` records the latest runs.
"""
