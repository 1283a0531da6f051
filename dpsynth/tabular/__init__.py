"""Public schema facts and the tabular data path: schema, encoding, tables, frame and file I/O.

``columns`` holds the column kinds, ``schema`` the schema container and its file format,
``schema_io`` the SDV/Private-PGM converters, ``reading`` the input files, ``encoding`` and
``decoding`` the frame ↔ code mappings, ``table`` the coded table and ``io`` the outputs.
``draft.draft_schema`` is the one function here that reads data for convenience; every fact
it derives is marked ``private_inferred``.
"""
