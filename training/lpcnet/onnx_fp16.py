"""Store an ONNX model's large float32 initializers as float16 (half the file size).

Each such initializer ``W`` becomes ``W__f16`` plus a ``Cast(to=FLOAT)`` node producing ``W`` at
the top of the main graph, so every consumer (Loop bodies included, through outer scope) still
sees float32 and the arithmetic stays float32; only the stored weights are rounded.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 256  # small constants (biases of tiny layers, scalars) stay float32


def halve_initializers(model: onnx.ModelProto, min_elements: int = MIN_ELEMENTS) -> onnx.ModelProto:
    graph = model.graph
    keep, casts = [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            arr = numpy_helper.to_array(init).astype(np.float16)
            keep.append(numpy_helper.from_array(arr, name=f"{init.name}__f16"))
            casts.append(helper.make_node("Cast", [f"{init.name}__f16"], [init.name], to=TensorProto.FLOAT,
                                          name=f"cast_{init.name}"))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model
