"""Video IO (PyAV), users' folders of videos, and the probe that checks them.

Names are loaded on first use, so `from spacetime.data.video import read_video` (and the CLI)
does not pay for importing torch, which only the folder data set needs.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "FolderVideoDataset": "folder",
    "load_captions": "folder",
    "load_media": "media",
    "probe_folder": "probe",
    "VideoReadError": "decode",
    "export_to_video": "video",
    "frames_to_tensor": "video",
    "read_video": "video",
    "tensor_to_frames": "video",
    "to_uint8_frames": "video",
    "write_video": "video",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'spacetime.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"spacetime.data.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
