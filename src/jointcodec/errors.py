"""The project's own error types: everything a user can cause ends in one of these, with a clear message."""


class JointCodecError(Exception):
    """Base class for every error jointcodec raises on bad input; the CLI prints it as one line."""


class DataError(JointCodecError):
    """A data set is missing, unreadable or not in a layout jointcodec understands."""


class CheckpointError(JointCodecError):
    """A checkpoint or shipped model is missing, corrupt, or does not fit the requested model."""


class ConfigError(JointCodecError):
    """An option or preset value is invalid."""


class TrainingDiverged(JointCodecError, FloatingPointError):
    """The training loss stopped being a finite number (too high a learning rate, as a rule); nothing of the
    diverged epoch is saved, so the run's last checkpoint stays the last good one."""
