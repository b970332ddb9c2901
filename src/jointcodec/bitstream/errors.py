"""Errors for reading ``.jcc`` bitstreams: each names its cause, all are ``JointCodecError``s."""

from __future__ import annotations

from jointcodec.errors import JointCodecError


class BitstreamError(JointCodecError):
    """A bitstream cannot be read; the subclass says why."""


class CorruptBitstreamError(BitstreamError):
    """Not a jointcodec bitstream, or damaged: bad magic, CRC mismatch, impossible header values."""


class TruncatedBitstreamError(BitstreamError):
    """The file ends before the header, the payloads or the CRC it declares."""


class UnsupportedVersionError(BitstreamError):
    """Written in a container format version this jointcodec does not read."""


class WrongModelError(BitstreamError):
    """Written by a different model (context model weights or quantizer centers differ)."""
