"""The privacy core: budgets, events, accounting, the ledger, DP noise and the private-data gate.

Trust level: the guarantee rests on this package. It imports nothing of dpsynth but
:mod:`dpsynth.errors` (tests/test_import_layers.py checks it).
"""
