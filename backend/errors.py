"""Errors the user can act on. The CLI prints them as one sentence; the service returns them as JSON."""


class KeyDiff3DError(Exception):
    """A failure with an actionable one-sentence message (missing file, bad input, bad config)."""

    code = "error"


class InputError(KeyDiff3DError):
    """The caller's input is invalid (bad mesh, bad keypoints, bad image, bad option)."""

    code = "bad_input"


class TooLargeError(InputError):
    """The input exceeds a size limit (bytes, pixels, faces)."""

    code = "too_large"


class UnsupportedFormatError(InputError):
    """The input is not in a format the pipeline reads."""

    code = "unsupported_format"


class MissingWeightsError(KeyDiff3DError):
    """A model weight file the user must supply is missing or is not the expected file."""

    code = "missing_weights"


class ConfigError(KeyDiff3DError):
    """A preset, training config or checkpoint does not match what the code expects."""

    code = "bad_config"


class DeviceError(KeyDiff3DError):
    """A CUDA-only stage was asked for on a machine without CUDA."""

    code = "device_unavailable"


class Cancelled(Exception):
    """Raised at a cancellation point after the user asked to cancel."""
