"""Stage 5, export (the .pt2 guard): a model.pt2 -> why it is not what lenetc's export writes,
before torch.export.load reads it.

torch.export.load unpickles with weights_only=False (its documentation: never load an untrusted
file): weights and constants marked `use_pickle`, custom and opaque objects, and any embedded .pt
(sample inputs, the older archive format) that weights_only refuses, and an archive may carry
compiled AOTInductor code. torch.export.save, as lenetc's export calls it, writes none of that:
JSON (the program, the payload configs), raw tensors (weight_N, tensor_N) and sample inputs that
torch.load reads with weights_only=True, every member stored uncompressed. `pt2_problem` checks
exactly that, member by member, and returns why a file is something else, or None: also for a
file that is no zip at all, which torch.export.load refuses without unpickling anything.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

# Each member of the archive, below its one top-level folder, as torch.export.save names it.
MEMBERS = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/\w+\.json"
    r"|data/weights/\w+_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/\w+_constants_config\.json|data/constants/tensor_\d+"
    r"|data/sample_inputs/\w+\.pt"
)
RAW_TENSOR = re.compile(r"(weight|tensor)_\d+")


def pt2_problem(path: Path) -> str | None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return None  # the loader's own error names it; nothing is unpickled
    with archive:
        roots = set()
        for info in archive.infolist():
            root, _, rest = info.filename.partition("/")
            roots.add(root)
            if not MEMBERS.fullmatch(rest) or len(roots) > 1:
                return f"holds {info.filename}, which lenetc's export never writes"
            if info.compress_type != zipfile.ZIP_STORED:
                return f"holds {info.filename} compressed; lenetc's export stores every member"
            if rest.endswith("_config.json"):
                why = _config_problem(archive.read(info))
            elif rest.endswith(".pt"):
                why = _pickle_problem(archive.read(info))
            else:
                continue
            if why:
                return f"its {rest} {why}"
    return None


def _config_problem(data: bytes) -> str | None:
    """Every payload a raw tensor: no `use_pickle`, no custom or opaque object."""
    try:
        config = json.loads(data)["config"]
        entries = [(str(k), v["use_pickle"], str(v["path_name"])) for k, v in config.items()]
    except (ValueError, KeyError, TypeError, AttributeError):
        return "is not a payload config"
    for key, pickled, name in entries:
        if pickled is not False or not RAW_TENSOR.fullmatch(name):
            return f"stores {key} as a pickled object ({name})"
    return None


def _pickle_problem(data: bytes) -> str | None:
    """torch.export.load retries a .pt that weights_only refuses with weights_only=False."""
    import torch

    from ..artifacts import pt_error

    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign file
        return f"is not plain tensors ({pt_error(exc)})"
    return None
