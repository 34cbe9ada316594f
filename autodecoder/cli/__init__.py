"""The command lines, all built one way (:mod:`autodecoder.cli.base`)."""
