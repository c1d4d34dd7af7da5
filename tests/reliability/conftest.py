"""Reliability scenarios: real ``loopgate`` processes against the fakes (see ``harness.py``).

Short forms run in the suite; ``bench/chaos.py`` runs the same scenarios at full size."""
