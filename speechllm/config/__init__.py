"""Structured, validated configs: YAML + dotlist overrides → one OmegaConf config.

Unknown keys (anywhere in the schema, or among a component's constructor options) are errors that
name the key and list the valid ones; they are found before any weights load. The sections and
their defaults: :mod:`~speechllm.config.schema`; reading YAML and overrides:
:mod:`~speechllm.config.loading`; relative paths (relative to the file that names them):
:mod:`~speechllm.config.paths`; the checks: :mod:`~speechllm.config.validation`.
"""

from speechllm.config.loading import import_locations, import_user_modules, load_config, read_yaml
from speechllm.config.schema import (
    Config,
    DataConfig,
    EvalConfig,
    ManifestConfig,
    ModelConfig,
    OptimConfig,
    PreAlignConfig,
    TrainerConfig,
)
from speechllm.config.validation import validate_components, validate_prealign, validate_values
from speechllm.errors import ConfigError
from speechllm.registry import constructor_options, required_options

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ManifestConfig",
    "ModelConfig",
    "OptimConfig",
    "PreAlignConfig",
    "TrainerConfig",
    "constructor_options",
    "import_locations",
    "import_user_modules",
    "load_config",
    "read_yaml",
    "required_options",
    "validate_components",
    "validate_prealign",
    "validate_values",
]
