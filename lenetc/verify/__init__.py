"""Stage 6b, verify: a build folder -> the parity report of every runtime against torch float64.

In: the build folder and tolerances. Out: a Report (results.py), verify.json and the terminal
table (table.py). integrity.py first checks the folder against its manifest and its files against
each other (exit 4); parity.py runs the cases through each adapter of runtimes/ and compares;
divergence.py finds the first spec layer whose output differs when a runtime fails; folder.py is
the `verify` command (the folder's lock, integrity, parity, the manifest kept consistent).
"""
