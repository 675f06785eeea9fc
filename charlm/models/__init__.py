"""Models: the character LM (:mod:`.lm`), its recurrent cores (:mod:`.fused`), the reference
cells that step through them (:mod:`.reference`) and hidden-state helpers (:mod:`.state`)."""

from charlm.models.lm import CharLM, create_model, eval_mode
from charlm.models.state import Hidden, detach_hidden, map_hidden, output_state

__all__ = ["CharLM", "Hidden", "create_model", "detach_hidden", "eval_mode", "map_hidden",
           "output_state"]
