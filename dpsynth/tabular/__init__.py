"""Public schema facts and the tabular data path: schema, encoding, tables, frame and file I/O.

``schema_io.draft_schema`` is the one function here that reads data for convenience; every
fact it derives is marked ``private_inferred``.
"""
