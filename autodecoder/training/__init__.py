"""Training: the data and its samples, schedules and formulas, the loss, the loop, several processes."""
