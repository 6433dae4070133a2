"""Stage 1, load: spec.yaml bytes -> a typed, frozen Spec with YAML line numbers.

In: the spec file. Out: `Spec` (load.py): the input shape, `Node`s with explicit inputs, and the
`train:`, `export:`, `verify:` sections as frozen dataclasses (config.py). yamlsafe.py reads YAML
with no tags, NaN, huge or deep files; fields.py turns raw values into typed ones and refuses
unknown keys with the nearest known one. No torch import.
"""
