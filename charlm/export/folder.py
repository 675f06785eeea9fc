"""``charlm export``: a checkpoint as a self-describing folder that runs without charlm or
torch (docs/export.md is the folder's contract).

The folder holds ``model.onnx`` (:mod:`charlm.export.graph`), ``model.int8.onnx`` with
``int8``, ``vocab.json``, ``config.json``, ``model.safetensors`` (weights only, no pickle)
and a ``README.md``. It is written into a temporary folder beside the target and renamed
into place when whole, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from charlm import __version__
from charlm.config import RunConfig
from charlm.errors import OutputError
from charlm.export.graph import OPSET, export_step, input_names, output_names
from charlm.metrics import nats_to_bits
from charlm.models.lm import CharLM

logger = logging.getLogger(__name__)

FORMAT, FORMAT_VERSION = "charlm-export", 1
GRAPHS = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


def check_output(output: str | Path, option: str = "--output") -> Path:
    """The export folder, which must not exist yet or be empty (nothing is written over).

    Raises:
        OutputError: if it is a file, or a folder that holds anything; naming ``option``.
    """
    path = Path(output)
    if path.is_dir() and any(path.iterdir()):
        raise OutputError(f"{option} {path} exists and is not empty; name a new folder (an "
                          f"export never writes over files)")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is a file; name a new folder")
    return path


def export_model(model: CharLM, vocab, cfg: RunConfig, output: str | Path, int8: bool = False,
                 val_ids=None, option: str = "--output", web: bool = False) -> dict[str, Any]:
    """Write the export folder of a restored model.

    Args:
        model: the checkpoint's model (any core), on the CPU.
        vocab: its vocabulary (char or byte).
        cfg: its run config (sizes, the ``sample`` defaults).
        output: the folder to create (:func:`check_output`).
        int8: also write ``model.int8.onnx`` (onnxruntime's dynamic int8 quantization).
        val_ids: (N,) encoded val split; when given, the fp32 (and int8) graphs' loss on it
            is measured (:func:`charlm.engine.scoring.score_ids`) and recorded.
        web: also write the page that samples in the browser (:mod:`charlm.export.web`).
    Returns:
        the folder's ``config.json`` as a dict.
    Raises:
        OutputError: if ``output`` exists and is not empty.
        RuntimeError: if no exporter writes a graph that agrees with torch.
    """
    final = check_output(output, option)
    work = final.parent / f".{final.name}.export-{secrets.token_hex(4)}.tmp"
    work.mkdir(parents=True)
    try:
        config = _write(model.cpu().eval(), vocab, cfg, work, int8, val_ids)
        if web:
            from charlm.export.web import write_web
            write_web(work)
        if final.is_dir():
            final.rmdir()  # empty (checked above)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("exported the %s model to %s/ (%s exporter%s)", cfg.model.cell, final,
                config["exporter"], ", int8 too" if int8 else "")
    return config


def _write(model: CharLM, vocab, cfg: RunConfig, work: Path, int8: bool, val_ids
           ) -> dict[str, Any]:
    exporter = export_step(model, work / GRAPHS["fp32"])
    graphs = {"fp32": GRAPHS["fp32"]}
    if int8:
        quantize(work / GRAPHS["fp32"], work / GRAPHS["int8"])
        graphs["int8"] = GRAPHS["int8"]
    save_weights(model, work / "model.safetensors")
    (work / "vocab.json").write_text(json.dumps(vocab_payload(vocab), ensure_ascii=False),
                                     encoding="utf-8")
    config = describe(model, cfg, exporter, graphs)
    write_config(work, config)
    if val_ids is not None:
        config |= measure(work, graphs, val_ids, cfg.train.eval_batch_size)
        write_config(work, config)
    (work / "README.md").write_text(readme(config), encoding="utf-8")
    return config


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """``config.json``, indented."""
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def quantize(fp32: Path, int8: Path) -> None:
    """``int8``: the graph at ``fp32`` with its weights as int8 (onnxruntime's dynamic
    quantization: weights quantized once, activations at run time), same interface."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # its advice on static quantization's pre-processing
    try:
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)


def save_weights(model: CharLM, path: Path) -> None:
    """The state dict as safetensors (readable without pickle), the config in its metadata."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": FORMAT, "cell": model.cell})


def vocab_payload(vocab) -> dict[str, Any]:
    """``{"unit": "char", "tokens": [...]}`` (tokens[i] is id i's character) or
    ``{"unit": "byte", "tokens": [0, ..., 255]}``."""
    if vocab.unit == "byte":
        return {"unit": "byte", "tokens": list(range(256))}
    return {"unit": "char", "tokens": list(vocab.chars)}


def describe(model: CharLM, cfg: RunConfig, exporter: str, graphs: dict[str, str]
             ) -> dict[str, Any]:
    """The folder's ``config.json`` (docs/export.md), before any val figures."""
    m = cfg.model
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "cell": m.cell,
        "vocab_size": model.decoder.out_features, "embedding_size": m.embedding_size,
        "hidden_size": m.hidden_size, "num_layers": m.num_layers,
        "state": list(model.spec.state), "unit": cfg.data.unit,
        "inputs": input_names(model.spec.state), "outputs": output_names(model.spec.state),
        "val_loss_nats": None, "val_bpc": None,
        "charlm_version": __version__, "opset": OPSET, "exporter": exporter, "graphs": graphs,
        "sample": dataclasses.asdict(cfg.sample),
    }


def measure(folder: Path, graphs: dict[str, str], val_ids, batch_size: int) -> dict[str, Any]:
    """The val loss of each exported graph, carried through the split as ``batch_size``
    streams: ``val_loss_nats`` and ``val_bpc`` (fp32), ``val_bpc_int8`` where there is one."""
    from charlm.engine.model import OnnxModel
    from charlm.engine.scoring import score_ids

    found: dict[str, Any] = {}
    for kind in graphs:
        loss, n = score_ids(OnnxModel(folder, kind), val_ids, batch_size)
        if kind == "fp32":
            found |= {"val_loss_nats": loss, "val_bpc": nats_to_bits(loss), "val_chars": n}
        else:
            found[f"val_bpc_{kind}"] = nats_to_bits(loss)
        logger.info("val loss of the %s graph: %.4f nats, %.4f bpc over %d", kind, loss,
                    nats_to_bits(loss), n)
    return found


def readme(config: dict[str, Any]) -> str:
    """The folder's README.md: what each file is and how to run the graph."""
    state = config["state"]
    feeds = ", ".join(f'"{n}": {n}' for n in state)
    outs = ", ".join(f"{n}" for n in state)
    bpc = "" if config.get("val_bpc") is None else \
        f"Val bpc: {config['val_bpc']:.4f} (fp32)" + (
            f", {config['val_bpc_int8']:.4f} (int8)" if "val_bpc_int8" in config else "") + "\n\n"
    return f"""# charlm export: {config['cell']} {config['num_layers']} x {config['hidden_size']}

Written by charlm {config['charlm_version']} (`charlm export`, the {config['exporter']}
exporter, ONNX opset {config['opset']}). {bpc}| file | what |
|---|---|
| `model.onnx` | one step: `ids` int64 (B,), {', '.join(f'`{n}` float32 (L, B, H)' for n in state)} -> `logits` float32 (B, V), {', '.join(f'`{n}_out`' for n in state)} |
| `model.int8.onnx` | (with `--int8`) the same graph, weights as int8 |
| `vocab.json` | `tokens[i]` is id i's character (`unit` char) or byte value (`unit` byte) |
| `config.json` | cell, sizes, state names, val figures, exporter, sampling defaults |
| `model.safetensors` | the weights (the torch state dict), readable without pickle |

The start state is zeros. `logits` are unnormalised, before any temperature.

Sample with charlm (no torch needed): `charlm sample --engine onnx .` (`--engine onnx-int8`
for the int8 graph). Or with onnxruntime alone:

```python
import json, numpy as np, onnxruntime as ort
cfg, vocab = json.load(open("config.json")), json.load(open("vocab.json"))["tokens"]
s = ort.InferenceSession("model.onnx")
L, H = cfg["num_layers"], cfg["hidden_size"]
{outs} = {", ".join("np.zeros((L, 1, H), np.float32)" for _ in state)}
ids, text = np.array([vocab.index("\\n")]), ""
for _ in range(200):
    logits, {outs} = s.run(None, {{"ids": ids, {feeds}}})
    ids = logits.argmax(-1)
    text += vocab[int(ids[0])]
print(text)
```
"""
