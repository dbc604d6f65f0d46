"""LPCNet / PLPCNet decoders: model, data, noise injection, budgeted DDP training, ONNX export."""
