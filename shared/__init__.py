"""Codec core shared by the sender and the receiver: analysis, quantizer, bitstream, protocol."""
