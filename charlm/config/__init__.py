"""Typed run configuration: the schema (:mod:`.schema`), resolving files and overrides
(:mod:`.resolve`) and the config of runs that start from a checkpoint (:mod:`.overrides`)."""

from charlm.config.resolve import (
                                   build_config,
                                   changed_keys,
                                   describe_keys,
                                   dump_yaml,
                                   from_dict,
                                   load_yaml,
                                   parse_set,
                                   validate,
)
from charlm.config.schema import (
                                   SECTIONS,
                                   DataConfig,
                                   ModelConfig,
                                   OptimConfig,
                                   RunConfig,
                                   SampleConfig,
                                   TrainConfig,
                                   keys,
)
from charlm.errors import ConfigError

__all__ = ["SECTIONS", "ConfigError", "DataConfig", "ModelConfig", "OptimConfig", "RunConfig",
           "SampleConfig", "TrainConfig", "build_config", "changed_keys", "describe_keys",
           "from_dict", "keys", "load_yaml", "parse_set", "dump_yaml", "validate"]
