"""TensorBoard: event files in the run directory itself (``tensorboard --logdir runs`` lists every
run by its directory name). Scalars per epoch; the config and ``results.md`` as text; the run's
PNG plots as images, at the last epoch's step."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from msmtrec.tracking import RunLogger

_PNG_COLOURS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type → channels (grey, RGB, grey+alpha, RGBA)


class TensorBoardLogger(RunLogger):
    """Writes ``events.out.tfevents.*`` into ``run_dir``; a resumed run first drops what an earlier
    writer logged after epoch ``resumed_after`` (the epoch that was cut off)."""

    def __init__(self, run_dir: Path, resumed_after: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir), purge_step=resumed_after + 1 if resumed_after else None)

    def start(self, config: dict[str, Any], config_text: str) -> None:
        self.writer.add_text("config", f"```yaml\n{config_text}```", 0)
        self.writer.flush()

    def epoch(self, step: int, scalars: dict[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # live in TensorBoard, and kept if the run is killed

    def finish(self, step: int, scalars: dict[str, float], files: list[Path], ok: bool) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        for path in files:
            if path.suffix == ".md":
                self.writer.add_text(path.stem, path.read_text(), step)
            elif path.suffix == ".png":
                self.writer.file_writer.add_summary(_png_summary(path.stem, path.read_bytes()), step)
        self.writer.close()


def _png_summary(tag: str, png: bytes) -> Any:
    """An image summary holding the PNG's own bytes (no decoding and re-encoding)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    image = Summary.Image(height=height, width=width, colorspace=_PNG_COLOURS.get(png[25], 4), encoded_image_string=png)
    return Summary(value=[Summary.Value(tag=tag, image=image)])
