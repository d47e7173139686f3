"""Entire-space probability composition (ESMM, ESM², AEM²TL §IV-B4).

The behaviour graph of an impression: impression → {click, no click}; click → {related action
("RAction"), no action}; every branch may end in a conversion (install, purchase). A model predicts
the five conditional sub-targets below and composes them into probabilities over the *entire*
impression space, so every loss can be computed on all impressions (no sample-selection bias):

========  ==============================  ==========================================
 symbol    meaning                          switched off (≡ 0) when
========  ==============================  ==========================================
 ``y1``    p(click | impression)            never (every entire-space model has it)
 ``y2``    p(conv | click, no action)       the data has no conversion task
 ``y3``    p(conv | no click)               conversions always need a click
 ``y4``    p(action | click)                the data has no action (RAction) task
 ``y5``    p(conv | click, action)          no action task or no conversion task
========  ==============================  ==========================================

Composition (AEM²TL Eq. 15–21):

- ``p_ctr   = y1``                                      (Eq. 15)
- ``p_ctavr = y1 · y4``                                 (Eq. 18; no action without a click)
- ``p_cvr   = y2 (1 − y4) + y4 y5``                     (Eq. 19; post-click conversion)
- ``p_ctcvr = y1 · p_cvr``                              (Eq. 20; click and conversion)
- ``p_xcvr  = p_ctcvr + (1 − y1) y3``                   (Eq. 21; conversion by either path)

With ``y3 ≡ 0`` and ``y4 ≡ 0`` this is ESMM (``p_xcvr = p_ctcvr = y1 · y2``); with ``y3 ≡ 0`` it
is the ESM² post-click decomposition. Every composed value is a convex combination or product of
probabilities, so it lies in ``[0, 1]`` and ``p_ctcvr ≤ p_ctr``, ``p_ctavr ≤ p_ctr`` hold exactly.
"""

from __future__ import annotations

import torch


def compose_entire_space(y1: torch.Tensor, y2: torch.Tensor | None = None, y3: torch.Tensor | None = None,
                         y4: torch.Tensor | None = None, y5: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Compose sub-target probabilities (each ``[B]``; ``None`` = branch switched off, i.e. ≡ 0)
    into the entire-space probabilities.

    Returns a dict with ``ctr`` always; ``ctavr`` when ``y4`` is given; ``cvr``, ``ctcvr`` and
    ``xcvr`` when a conversion sub-target (``y2``) is given. ``y5`` (conversion after an action) is
    required exactly when both ``y2`` and ``y4`` are given.
    """
    out = {"ctr": y1}
    if y4 is not None:
        out["ctavr"] = y1 * y4
    if y2 is None:
        if y3 is not None or y5 is not None:
            raise ValueError("y3 / y5 are conversion sub-targets and need y2 (conversion after a click)")
        return out
    if (y4 is not None) != (y5 is not None):
        raise ValueError("y5 (conversion after an action) is needed exactly when y4 (action) is given")
    cvr = y2 if y4 is None else y2 * (1 - y4) + y4 * y5
    ctcvr = y1 * cvr
    out["cvr"] = cvr
    out["ctcvr"] = ctcvr
    out["xcvr"] = ctcvr if y3 is None else ctcvr + (1 - y1) * y3
    return out
