"""Siamese GRU speaker encoder (paper sec. 2.2), speaker grouping by k-means (sec. 2.3), ONNX export."""
