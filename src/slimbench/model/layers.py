"""The names of a YOLO detector's layers, as the per-layer latency attribution reports them, and the rule that maps a
torch module path or an exported graph node's name back to one of them.

A row is a top-level layer of the ``DetectionModel`` (``model.model[i]``: index and module type, ``4 C2f``), except
the head, which is split into its parts: the box towers (``cv2``), the class towers (``cv3``), YOLO26's one-to-one
towers (``one2one_cv2``, ``one2one_cv3``), the DFL (softmax and its fixed 1x1 conv) and ``decode``: what the head does
besides (concatenating the towers' outputs, anchors, dist2bbox, the class sigmoid, YOLO26's top-k). The towers are
summed over the scales (P3, P4, P5).

The same rule names torch modules (``model.22.cv2.0.1.conv``), ONNX nodes (``/model.22/cv2.0/cv2.0.1/conv/Conv``)
and OpenVINO layers, which keep the ONNX node names when the IR is read from the ONNX export: ultralytics' exporter
names every node by the module path that produced it. A node that belongs to no module (a layout reorder a runtime
inserted) has no layer; the profiling parsers name it as an extra.

Parts that pruning cannot move (:data:`FIXED_PARTS`): the DFL and decode work on tensors sized by ``reg_max``, the
class count and the anchor count, never by channel widths, so a pruned model spends the same time there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

HEAD_PARTS: dict[str, str] = {
    "cv2": "box towers (cv2)",
    "cv3": "class towers (cv3)",
    "one2one_cv2": "one-to-one box towers (one2one_cv2)",
    "one2one_cv3": "one-to-one class towers (one2one_cv3)",
    "dfl": "DFL (softmax + fixed conv)",
    "decode": "decode (concat, anchors, dist2bbox, sigmoid)",
}
"""Head part -> how the report names it, in the order the rows show them."""
END2END_DECODE = "decode (concat, anchors, dist2bbox, sigmoid, top-k)"
"""The decode of an end-to-end head (YOLO26's one-to-one towers): no NMS, a top-k instead."""
FIXED_PARTS = frozenset({"dfl", "decode"})
"""Head parts whose work no channel pruning changes (see the module doc)."""

_NODE = re.compile(r"^/?model[./](\d+)(?:[./](.*))?$")


@dataclass(frozen=True)
class LayerName:
    """One row of the attribution: a top-level layer, or one part of the head."""

    key: str  # "4" or "22.cv2": unique in a model, the same in a pruned copy of it
    index: int
    module: str  # the top-level module's class name: "C2f", "Detect"
    part: str = ""  # a head part (:data:`HEAD_PARTS`), "" for a plain layer
    what: str = ""  # what the part does, as the report says it (:data:`HEAD_PARTS`)

    @property
    def label(self) -> str:
        """``4 C2f`` or ``22 Detect: box towers (cv2)``."""
        return f"{self.index} {self.module}" + (
            f": {self.what or HEAD_PARTS.get(self.part, self.part)}" if self.part else ""
        )

    @property
    def fixed(self) -> bool:
        """Whether pruning cannot move this part's work (:data:`FIXED_PARTS`)."""
        return self.part in FIXED_PARTS

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "index": self.index, "module": self.module, "part": self.part, "label": self.label}


def layers_of(net: nn.Module) -> nn.Sequential:
    """The ``Sequential`` of top-level layers of a ``DetectionModel`` (or of the one an ``ultralytics.YOLO`` holds)."""
    from torch import nn

    from slimbench.core.errors import SlimbenchError
    from slimbench.model.static_metrics import unwrap

    layers = getattr(unwrap(net), "model", None)
    if not isinstance(layers, nn.Sequential) or not len(layers):
        raise SlimbenchError(f"expected an ultralytics DetectionModel, got {type(net).__name__}")
    return layers


def is_head(module: nn.Module) -> bool:
    """Whether a top-level layer is a detection head (ultralytics' ``Detect`` or a subclass)."""
    from ultralytics.nn.modules.head import Detect

    return isinstance(module, Detect)


def head_parts(head: nn.Module) -> dict[str, list[nn.Module]]:
    """The head's towers and DFL present in this model, part -> modules (one tower per scale); ``decode`` is not a
    module (it is the head's time less its parts'). A fused YOLO26 keeps only its one-to-one towers; a head without a
    DFL (``reg_max`` 1: an ``Identity``) has none."""
    from torch import nn

    parts: dict[str, list[nn.Module]] = {}
    for part in HEAD_PARTS:
        value = getattr(head, part, None)
        if isinstance(value, nn.ModuleList) and len(value):
            parts[part] = list(value)
        elif part == "dfl" and isinstance(value, nn.Module) and not isinstance(value, nn.Identity):
            parts[part] = [value]
    return parts


def layer_names(net: nn.Module) -> list[LayerName]:
    """Every row of ``net`` in model order: the top-level layers, the head's parts present, then its decode."""
    out: list[LayerName] = []
    for i, m in enumerate(layers_of(net)):
        kind = type(m).__name__
        if is_head(m):
            parts = head_parts(m)
            out += [LayerName(f"{i}.{p}", i, kind, p, HEAD_PARTS[p]) for p in parts]
            end2end = bool(getattr(m, "end2end", False)) and "one2one_cv2" in parts
            out.append(LayerName(f"{i}.decode", i, kind, "decode", END2END_DECODE if end2end else HEAD_PARTS["decode"]))
        else:
            out.append(LayerName(str(i), i, kind))
    return out


def head_index(names: Iterable[LayerName]) -> int | None:
    """The index of the head among the rows, or None (a model without one)."""
    return next((n.index for n in names if n.part), None)


def key_of_path(path: str, names: Iterable[LayerName]) -> str | None:
    """The row a module path or graph node name belongs to, or None.

    ``model.4.m.0.cv1.conv`` and ``/model.4/m.0/cv1/conv/Conv`` -> ``4``; ``/model.22/cv2.1/cv2.1.0/conv/Conv`` ->
    ``22.cv2``; ``/model.22/Concat_3`` (an op of the head itself) -> ``22.decode``; a path naming no layer of ``names``
    (``ReorderInput_token_17``) -> None.
    """
    m = _NODE.match(path)
    if not m:
        return None
    names = list(names)
    index, rest = int(m.group(1)), m.group(2) or ""
    if index != head_index(names):
        return str(index) if any(n.key == str(index) for n in names) else None
    parts = {n.part for n in names if n.index == index}
    segments = re.split(r"[./]", rest)
    # a head part is a module, so more follows its name; a bare name is one of the head's own ops (decode)
    if len(segments) > 1 and segments[0] in parts:
        return f"{index}.{segments[0]}"
    return f"{index}.decode"
