"""``jointcodec export --split DIR``: a checkpoint as two weight files, one per side of the bitstream.

* ``edge.safetensors``: encoder, quantizer, context model (what writes ``.jcc`` files);
* ``server.safetensors``: quantizer, context model, classifier (what reads and classifies them);
* ``deployment.json``: the fingerprint, preset, levels and which modules each part holds.

Each part carries the full config plus its ``role`` and the model's fingerprint; ``jointcodec.checkpoint.load_model``
reads either one, and a part's absent modules raise a clear error when called.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from jointcodec.checkpoint import CONFIG_METADATA_KEY, PARTS, load_model
from jointcodec.entropy.fixedpoint import model_fingerprint
from jointcodec.utils import atomic_write, atomic_write_json

MANIFEST = "deployment.json"


def export_split(checkpoint: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write ``edge.safetensors`` and ``server.safetensors`` (and ``deployment.json``) into ``out_dir``."""
    model, config = load_model(checkpoint)
    out_dir = Path(out_dir)
    digest = model_fingerprint(model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    written = {}
    for role, parts in PARTS.items():
        part_state = {k: v for k, v in state.items() if k.split(".", 1)[0] in parts}
        part_config = {**config, "role": role, "fingerprint": digest}
        path = out_dir / f"{role}.safetensors"
        metadata = {CONFIG_METADATA_KEY: json.dumps(part_config)}
        atomic_write(path, lambda tmp, s=part_state, m=metadata: save_file(s, tmp, metadata=m))
        written[role] = path
    atomic_write_json(out_dir / MANIFEST, {
        "fingerprint": digest, "preset": config["preset"]["name"], "levels": config["levels"],
        "parts": {role: {"file": path.name, "modules": list(PARTS[role])} for role, path in written.items()}})
    return written


def split_summary(out_dir: str | Path, written: dict[str, Path]) -> str:
    """One line for the command line: the fingerprint and what each part holds."""
    meta = json.loads((Path(out_dir) / MANIFEST).read_text())
    return (f"model {meta['fingerprint']}: edge part {written['edge']} (encoder, quantizer, context model), "
            f"server part {written['server']} (quantizer, context model, classifier)")
