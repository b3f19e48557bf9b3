"""The one error hierarchy of ACO: every message says what, where and how to fix."""


class ACOError(Exception):
    """Base class of every error ACO raises on purpose (the CLIs print it as one line)."""


class TraceFormatError(ACOError):
    """A trace line breaks trace format v1."""


class ConfigError(ACOError):
    """A config file or value is missing, malformed or out of range."""


class BundleError(ACOError):
    """A router bundle is missing, tampered with, foreign or unreadable."""


class FeatureVersionError(BundleError):
    """A bundle was built with a feature version this runtime does not compute."""


class BudgetExceededError(ACOError):
    """A step would spend more than the remaining budget and no cheaper tier can pay for it."""


class DataError(ACOError):
    """Input data cannot serve the requested job (empty, no outcomes, overlapping splits)."""
