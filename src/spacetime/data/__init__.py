"""Video IO (PyAV), users' folders of videos, and the probe that checks them."""

from spacetime.data.folder import FolderVideoDataset, load_captions
from spacetime.data.probe import probe_folder
from spacetime.data.video import (
    VideoReadError,
    export_to_video,
    frames_to_tensor,
    read_video,
    tensor_to_frames,
    to_uint8_frames,
    write_video,
)

__all__ = [
    "FolderVideoDataset", "VideoReadError", "export_to_video", "frames_to_tensor", "load_captions",
    "probe_folder", "read_video", "tensor_to_frames", "to_uint8_frames", "write_video",
]
