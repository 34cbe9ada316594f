"""The demo: deterministic phantom cells, their CytoPacq-style masks, and the end-to-end run."""
