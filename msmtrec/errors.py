"""Library exceptions. Every error a user can cause is a :class:`MsmtrecError` whose message names
what was wrong and where (file, column, key), what was expected and what was found. The CLI prints
the message without a traceback and exits non-zero."""


class MsmtrecError(Exception):
    """Base class for errors caused by input (data, spec, config, run directory)."""


class SpecError(MsmtrecError):
    """A dataset spec or config is invalid (unknown key, wrong type, missing field)."""


class DataError(MsmtrecError):
    """Data does not match its spec (missing column, non-binary label, empty split, ...)."""


class ConfigError(MsmtrecError):
    """A training/model option is unknown or has an invalid value."""


class CheckpointError(MsmtrecError):
    """A run directory or checkpoint is missing, incomplete or corrupt."""


class ExportError(MsmtrecError):
    """An export folder cannot be written, or is missing, incomplete, modified or not runnable here."""


class DataWarning(UserWarning):
    """Data that can be used but probably does not say what was meant (e.g. ids the model never saw)."""
