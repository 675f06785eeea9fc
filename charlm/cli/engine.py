"""``charlm sample --engine onnx DIR``: sampling from an export folder with onnxruntime and
numpy; nothing here (nor anything it imports) imports torch."""

from __future__ import annotations

import logging
import secrets

from charlm.cli.common import stream_continuation, text_out

logger = logging.getLogger(__name__)

ENGINES = ("torch", "onnx", "onnx-int8")
GRAPH = {"onnx": "fp32", "onnx-int8": "int8"}
# options of charlm sample that only the torch engine has
TORCH_ONLY = ("beam_width", "length_penalty", "interactive")


def check_engine(engine: str, given: dict) -> None:
    """Refuse the options the onnx engines do not have.

    Raises:
        OptionError: naming the option and the engine.
    """
    from charlm.errors import OptionError

    for name in TORCH_ONLY:
        if given.get(name):
            raise OptionError(f"--{name.replace('_', '-')} needs the torch engine: drop it or "
                              f"--engine {engine}")
    if not given.get("checkpoint"):
        raise OptionError(f"--engine {engine} samples from an export folder: name it "
                          f"(charlm sample --engine {engine} DIR; charlm export makes one)")


def sample_onnx(folder: str, engine: str, *, length, temperature, top_k, top_p, prime,
                drop_unknown, seed, num_samples, stops, strip_stop, max_lines, output) -> None:
    """Sample from an export folder and write as the torch engine does (one sample streams;
    several are drawn as one batch and written when all have ended)."""
    import numpy as np

    from charlm.cli.sample import sample_settings
    from charlm.config import from_dict
    from charlm.engine.model import OnnxModel
    from charlm.engine.sampling import generate
    from charlm.generation.limits import check_top_k
    from charlm.generation.prime import prime_text
    from charlm.generation.stopping import make_stop_rule

    model = OnnxModel(folder, GRAPH[engine])
    vocab = model.vocab
    cfg = from_dict({"sample": model.config.get("sample", {})}, source=f"{folder}/config.json")
    s = sample_settings(cfg, length=length, temperature=temperature, top_k=top_k, top_p=top_p)
    check_top_k(s.top_k, vocab.size)
    rule = make_stop_rule(vocab, stops, max_lines)
    shown, text = prime_text(vocab, prime, drop_unknown)
    if seed is None:
        seed = secrets.randbelow(2**63)
        logger.info("seed %d (--seed %d gives this sample again)", seed, seed)
    steps = generate(model, vocab.encode(text).astype(np.int64), s.length, num_samples,
                     s.temperature, s.top_k, s.top_p, np.random.default_rng(seed))
    with text_out(output) as out:
        write_rows(out, steps, shown, num_samples, rule, strip_stop, vocab)


def write_rows(out, steps, shown: str, num_samples: int, rule, strip: bool, vocab) -> None:
    """One sample streams as its ids come; several are written when all have ended, a blank
    line between them (both engines' samples: ``steps`` yields a (num_samples,) id row per
    step)."""
    from charlm.generation.stopping import continuations

    if num_samples == 1:
        return stream_continuation(out, shown, (int(ids[0]) for ids in steps), vocab, rule,
                                   strip)
    for i, row in enumerate(continuations(steps, num_samples, rule, strip)):
        text = shown + vocab.decode(row)
        out.write(("\n" if i else "") + text + ("" if text.endswith("\n") else "\n"))
