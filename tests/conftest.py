"""Shared test set-up: hypothesis profiles.

``ci`` (the default) is derandomized, so every run draws the same examples and a failure
reproduces exactly; ``dev`` searches harder. Pick one with ``HYPOTHESIS_PROFILE=dev pytest``.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=50, database=None,
                          print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=500)

_profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if _profile not in ("ci", "dev"):
    raise ValueError(f"HYPOTHESIS_PROFILE must be 'ci' or 'dev', got {_profile!r}")
settings.load_profile(_profile)
