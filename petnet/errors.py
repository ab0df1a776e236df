"""Exception types a user can trigger, each with a message that says what to do."""


class PetNetError(Exception):
    """Base class for every error PetNet raises on purpose."""


class InvalidImageError(PetNetError, ValueError):
    """The input cannot be read as a usable image (not an image, truncated, too large, ...)."""


class DatasetError(PetNetError):
    """The dataset root or one of its files is missing or malformed."""


class WeightsError(PetNetError):
    """Model weights are missing, corrupt or do not match the architecture."""
