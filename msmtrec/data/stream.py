"""Batches from a stream of encoded chunks: a shuffle buffer and a read-ahead thread.

The streamed dataset (:class:`msmtrec.data.dataset.StreamedDataset`) reads the train split chunk
by chunk every epoch; this module turns those chunks into shuffled batches of a fixed size. When
the buffer holds ``buffer_rows`` rows it is permuted and everything but a reserve of half the
buffer leaves as batches; what remains at the end is permuted and emptied. A background thread
reads and encodes the next chunks while the model trains on the current batches.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, Iterable, Iterator

import torch

from msmtrec.data.encoded import EncodedData

__all__ = ["prefetched", "shuffled_batches"]


def shuffled_batches(chunks: Iterable[EncodedData], batch_size: int, buffer_rows: int,
                     generator: torch.Generator) -> Iterator[EncodedData]:
    """Batches of ``batch_size`` rows (the last one smaller) drawn through a shuffle buffer."""
    reserve = buffer_rows // 2
    buffer: list[EncodedData] = []
    held = 0
    for chunk in itertools.chain(chunks, [None]):  # None: the end, where the buffer is emptied
        if chunk is not None:
            if len(chunk) == 0:
                continue
            buffer.append(chunk)
            held += len(chunk)
            if held < buffer_rows:
                continue
        elif not held:
            return
        data = EncodedData.concat(buffer)
        perm = torch.randperm(held, generator=generator)
        n_out = held if chunk is None else (held - reserve) // batch_size * batch_size
        for start in range(0, n_out, batch_size):
            yield data.take(perm[start:start + batch_size])
        buffer, held = [data.take(perm[n_out:])], held - n_out


_DONE = object()


def prefetched(it: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run ``it`` in a background thread, ``depth`` items ahead. Errors are re-raised here; a
    consumer that stops early stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # forwarded to the consumer
            q.put(exc)

    thread = threading.Thread(target=work, name="msmtrec-stream", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
