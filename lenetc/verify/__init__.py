"""Stage 6b, verify: a build folder -> the parity report of every runtime against torch float64.

In: the build folder and tolerances. Out: a Report (results.py), verify.json and the terminal
table (table.py). parity.py runs the cases through each adapter of runtimes/ and compares;
divergence.py finds the first spec layer whose output differs when a runtime fails.
"""
