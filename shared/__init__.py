"""Codec core shared by the sender and the receiver: constants, audio I/O, analysis, quantizer,
bitstream, the .pnsc file and where models and shared data live."""
