"""The experiment: its settings (specs.json), the paths in its folder, errors, runtime and run safety."""
