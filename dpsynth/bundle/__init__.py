"""Public outputs: the release bundle (writer, manifest, privacy statement, verification).

Named ``bundle`` rather than ``release`` so that ``dpsynth.release`` stays the function.
"""
