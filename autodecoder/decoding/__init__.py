"""Decoding a trained model: points and grids (dense or adaptive), the output types of test.py, latent space, fitting."""
