"""The composition root: what runs, the CLI, bringing the stack up and down."""
