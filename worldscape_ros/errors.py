"""One narrow exception type per subsystem, all under WorldScapeError so the CLI can report them."""


class WorldScapeError(Exception):
    """Base of every error the project raises on purpose (a user mistake or bad input)."""


class ConfigError(WorldScapeError, ValueError):
    """A model, training or node configuration is invalid or unknown."""


class CheckpointError(WorldScapeError):
    """A checkpoint is missing, truncated, corrupt or does not match its config."""


class WanImportError(CheckpointError):
    """A Wan2.1 folder cannot be imported: wrong architecture, missing shard, or a tensor missing, extra or of the
    wrong shape."""


class EpisodeFormatError(WorldScapeError):
    """An episode on disk is corrupt, truncated, or of an unsupported format version."""


class DatagenError(WorldScapeError):
    """Synthetic data generation cannot proceed (bad arguments, unwritable output)."""


class EvalError(WorldScapeError):
    """An evaluation suite or scenario is invalid."""


class TrainError(WorldScapeError):
    """A training or distillation run cannot proceed."""


class BagImportError(WorldScapeError):
    """A bag cannot be turned into episodes: a missing topic, a TF gap, a frame rate too low, bad messages."""
