"""Bit packing as deployed: channel c in bit c % 32 of word c / 32, bit 1 means -1, unused bits 0."""
import numpy as np

from .graph import words_for


def pack_negative(negative: np.ndarray) -> np.ndarray:
    """bool (..., C) -> uint32 (..., ceil(C/32)); True (a -1) becomes a 1 bit."""
    *lead, channels = negative.shape
    padded = np.zeros((*lead, words_for(channels) * 32), dtype=np.uint64)
    padded[..., :channels] = negative
    weights = np.left_shift(np.uint64(1), np.arange(32, dtype=np.uint64))
    words = (padded.reshape(*lead, -1, 32) * weights).sum(axis=-1)
    return words.astype(np.uint32)


def unpack_negative(words: np.ndarray, channels: int) -> np.ndarray:
    """uint32 (..., W) -> bool (..., C)."""
    shifts = np.arange(32, dtype=np.uint32)
    bits = (words[..., None] >> shifts) & np.uint32(1)
    return bits.reshape(*words.shape[:-1], -1)[..., :channels].astype(bool)
