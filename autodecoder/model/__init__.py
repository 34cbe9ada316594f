"""The network: the decoder and its options, the forward pass, points and rotations, checkpoints."""
