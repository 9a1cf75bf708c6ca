"""Run configuration: schema, YAML loading with ``base`` composition, and ``--set`` overrides."""

from dmlkit.config.loading import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dump_yaml,
    load_config,
    merge_configs,
    read_config_file,
    read_yaml,
)
from dmlkit.config.schema import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    SchedulerConfig,
    TrainerConfig,
)

__all__ = [
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimizerConfig",
    "RunConfig",
    "SchedulerConfig",
    "TrainerConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dump_yaml",
    "load_config",
    "merge_configs",
    "read_config_file",
    "read_yaml",
]
