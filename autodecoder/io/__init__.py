"""Input and output: SDF sequence files, finding inputs, masks to SDFs, exports, pictures."""
